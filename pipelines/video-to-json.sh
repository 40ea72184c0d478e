#!/bin/sh
# Shows an emotion track for a recorded video: facedetect + feremotion + feremotionexport write one JSON line per frame.
#
#   FER_MODEL=M.safetensors pipelines/video-to-json.sh INPUT OUTPUT.jsonl
#   pipelines/video-to-json.sh --model M.safetensors INPUT OUTPUT.jsonl
#
# INPUT is anything decodebin plays (WebM, Matroska, MP4, AVI/MJPEG...).
# The model defaults to the shipped models/feremotion-resnet18-fer2013.safetensors.
# shellcheck source=pipelines/common.sh
. "$(dirname "$0")/common.sh"
[ $# -eq 2 ] || die "usage: $prog [--model M.safetensors] INPUT OUTPUT.jsonl"
input=$1
output=$2
require_model
[ -f "$input" ] || die "input $input: no such file"

require_element feremotion
require_element facedetect

log=$(mktemp "${TMPDIR:-/tmp}/video-to-json.XXXXXX")
trap 'rm -f "$log"' EXIT

# mode=roi: frames without a detected face get an empty "faces" list
# instead of the whole frame classified as a face. Faces under 48 pixels,
# the model's input size, are too blurred to read; min-neighbors=5 rather
# than 3 drops weak detections (at 3, a JPEG copy of astronaut.png gets a
# second "face" on her suit). fakesink does not sync to the clock, so the
# file is processed as fast as inference allows and no frame is skipped
# as late. Interrupted, the file keeps a whole line for every frame done
# and the script exits 130 (INT) or 143 (TERM).
if ! run_pipeline \
    filesrc location="$input" ! decodebin ! videoconvert \
    ! facedetect display=false min-size-width=48 min-size-height=48 min-neighbors=5 \
    ! feremotion model="$model" mode=roi \
    ! feremotionexport location="$output" ! fakesink >"$log" 2>&1; then
  launch_errors "$log"
  echo "$prog: the pipeline failed on $input" >&2
  exit 1
fi

frames=$(wc -l <"$output")
with_faces=$(grep -c '"label"' "$output" || true)
faces=$(grep -o '"label"' "$output" | wc -l)
echo "wrote $output: $frames frame(s), $with_faces with faces, $faces face(s) in all"
