#!/bin/sh
# Shows live emotions on a webcam: facedetect finds faces, feremotion classifies them, feremotionoverlay draws boxes, labels and bars.
#
#   FER_MODEL=M.safetensors pipelines/webcam.sh [--device /dev/videoN]
#   pipelines/webcam.sh --model M.safetensors [--device /dev/videoN]
#
# FER_SOURCE and FER_SINK replace the camera and the window (each a
# gst-launch-1.0 fragment without spaces inside values), e.g.
#   FER_SOURCE="videotestsrc num-buffers=1" FER_SINK=fakesink
# No trained model ships yet: with a random one from
# `fer-init --out M.safetensors` the labels are meaningless.
set -eu

prog=$(basename "$0")
die () { echo "$prog: $*" >&2; exit 2; }

model=${FER_MODEL:-}
device=/dev/video0
while [ $# -gt 0 ]; do
  case $1 in
    --model) [ $# -ge 2 ] || die "--model needs a file"; model=$2; shift 2 ;;
    --device) [ $# -ge 2 ] || die "--device needs a path"; device=$2; shift 2 ;;
    *) die "usage: $prog [--model M.safetensors] [--device /dev/videoN]" ;;
  esac
done
[ -n "$model" ] || die "no model: set FER_MODEL or pass --model M.safetensors (no trained model ships yet; make a random one with build/nn/tools/fer-init --out M.safetensors)"
[ -f "$model" ] || die "model $model: no such file"
if [ -z "${FER_SOURCE:-}" ]; then
  [ -e "$device" ] || die "no camera at $device (pass --device /dev/videoN)"
fi
source=${FER_SOURCE:-v4l2src device=$device}
sink=${FER_SINK:-autovideosink}

# From a checkout, use the plugin just built rather than an installed one.
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${FER_BUILD_DIR:-$repo/build}
if [ -d "$build/gst" ]; then
  GST_PLUGIN_PATH=$build/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}
  export GST_PLUGIN_PATH
fi
# facedetect loads nose/mouth/eye cascades that Debian's opencv-data does
# not ship; OpenCV logs each miss as an error although only the face
# cascade (which is shipped) is needed here.
OPENCV_LOG_LEVEL=${OPENCV_LOG_LEVEL:-FATAL}
export OPENCV_LOG_LEVEL

gst-inspect-1.0 feremotion >/dev/null 2>&1 \
  || die "GStreamer element feremotion not found: build the project (meson setup build && ninja -C build) or set GST_PLUGIN_PATH"
gst-inspect-1.0 facedetect >/dev/null 2>&1 \
  || die "GStreamer element facedetect not found: install gstreamer1.0-opencv"

# mode=roi: frames without a detected face are shown without a label
# rather than the whole picture classified as one face. smoothing keeps a
# face's label from flickering between frames. skip-late (on by default)
# lets the window's QoS pass frames on unclassified when inference falls
# behind, so the picture stays live.
# shellcheck disable=SC2086 # source and sink are gst-launch fragments
exec gst-launch-1.0 \
    $source ! videoconvert \
    ! facedetect display=false min-size-width=48 min-size-height=48 min-neighbors=5 \
    ! feremotion model="$model" mode=roi smoothing=0.6 \
    ! videoconvert ! feremotionoverlay show-bars=true ! videoconvert \
    ! $sink
