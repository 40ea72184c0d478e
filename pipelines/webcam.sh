#!/bin/sh
# Shows live emotions on a webcam: facedetect finds faces, feremotion classifies them, feremotionoverlay draws boxes, labels and bars.
#
#   FER_MODEL=M.safetensors pipelines/webcam.sh [--device /dev/videoN]
#   pipelines/webcam.sh --model M.safetensors [--device /dev/videoN]
#
# FER_SOURCE and FER_SINK replace the camera and the window (each a
# gst-launch-1.0 fragment without spaces inside values), e.g.
#   FER_SOURCE="videotestsrc num-buffers=1" FER_SINK=fakesink
# The model defaults to the shipped models/feremotion-resnet18-fer2013.safetensors.
# shellcheck source=pipelines/common.sh
. "$(dirname "$0")/common.sh"
device=/dev/video0
while [ $# -gt 0 ]; do
  case $1 in
    --model) [ $# -ge 2 ] || die "--model needs a file"; model=$2; shift 2 ;;
    --device) [ $# -ge 2 ] || die "--device needs a path"; device=$2; shift 2 ;;
    *) die "usage: $prog [--model M.safetensors] [--device /dev/videoN]" ;;
  esac
done
require_model
if [ -z "${FER_SOURCE:-}" ]; then
  [ -e "$device" ] || die "no camera at $device (pass --device /dev/videoN)"
fi
source=${FER_SOURCE:-v4l2src device=$device}
sink=${FER_SINK:-autovideosink}

require_element feremotion
require_element facedetect

# mode=roi: frames without a detected face are shown without a label
# rather than the whole picture classified as one face. smoothing keeps a
# face's label from flickering between frames. qos (on by default)
# lets the window's QoS pass frames on unclassified when inference falls
# behind, so the picture stays live.
# Closing the window ends with status 0, Ctrl-C with 130.
# shellcheck disable=SC2086 # source and sink are gst-launch fragments
run_pipeline \
    $source ! videoconvert \
    ! facedetect display=false min-size-width=48 min-size-height=48 min-neighbors=5 \
    ! feremotion model="$model" mode=roi smoothing=0.6 \
    ! videoconvert ! feremotionoverlay show-bars=true ! videoconvert \
    ! $sink
