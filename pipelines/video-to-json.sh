#!/bin/sh
# Shows an emotion track for a recorded video: facedetect + feremotion + feremotionexport write one JSON line per frame.
#
#   FER_MODEL=M.safetensors pipelines/video-to-json.sh INPUT OUTPUT.jsonl
#   pipelines/video-to-json.sh --model M.safetensors INPUT OUTPUT.jsonl
#
# INPUT is anything decodebin plays (WebM, Matroska, MP4, AVI/MJPEG...).
# No trained model ships yet: with a random one from
# `fer-init --out M.safetensors` the labels are meaningless.
set -eu

prog=$(basename "$0")
die () { echo "$prog: $*" >&2; exit 2; }

model=${FER_MODEL:-}
if [ "${1:-}" = --model ]; then
  [ $# -ge 2 ] || die "--model needs a file"
  model=$2
  shift 2
fi
[ $# -eq 2 ] || die "usage: $prog [--model M.safetensors] INPUT OUTPUT.jsonl"
input=$1
output=$2
[ -n "$model" ] || die "no model: set FER_MODEL or pass --model M.safetensors (no trained model ships yet; make a random one with build/nn/tools/fer-init --out M.safetensors)"
[ -f "$model" ] || die "model $model: no such file"
[ -f "$input" ] || die "input $input: no such file"

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

log=$(mktemp "${TMPDIR:-/tmp}/video-to-json.XXXXXX")
trap 'rm -f "$log"' EXIT INT TERM

# mode=roi: frames without a detected face get an empty "faces" list
# instead of the whole frame classified as a face. Faces under 48 pixels,
# the model's input size, are too blurred to read; min-neighbors=5 rather
# than 3 drops weak detections (at 3, a JPEG copy of astronaut.png gets a
# second "face" on her suit). fakesink does not sync to the clock, so the
# file is processed as fast as inference allows and no frame is skipped
# as late.
if ! gst-launch-1.0 \
    filesrc location="$input" ! decodebin ! videoconvert \
    ! facedetect display=false min-size-width=48 min-size-height=48 min-neighbors=5 \
    ! feremotion model="$model" mode=roi \
    ! feremotionexport location="$output" ! fakesink >"$log" 2>&1; then
  # what is left once the progress lines go is the error and its cause
  grep -v -E '^(Setting pipeline|Pipeline is|Redistribute|New clock|Execution ended|Freeing pipeline)' "$log" >&2
  echo "$prog: the pipeline failed on $input" >&2
  exit 1
fi

frames=$(wc -l <"$output")
with_faces=$(grep -c '"label"' "$output" || true)
faces=$(grep -o '"label"' "$output" | wc -l)
echo "wrote $output: $frames frame(s), $with_faces with faces, $faces face(s) in all"
