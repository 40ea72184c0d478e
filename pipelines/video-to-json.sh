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
# shellcheck disable=SC2119 # no extra elements
video_setup

# mode=roi: frames without a detected face get an empty "faces" list
# instead of the whole frame classified as a face ($detect: common.sh).
# fakesink does not sync to the clock, so the file is processed as fast as
# inference allows and no frame is skipped as late. Interrupted, the file
# keeps a whole line for every frame done and the script exits 130 (INT)
# or 143 (TERM).
# shellcheck disable=SC2086 # $detect is gst-launch-1.0 words
run_pipeline \
    filesrc location="$input" ! decodebin ! videoconvert ! $detect \
    ! feremotion model="$model" mode=roi \
    ! feremotionexport location="$output" ! fakesink >"$log" 2>&1 \
  || pipeline_failed

frames=$(wc -l <"$output")
with_faces=$(grep -c '"label"' "$output" || true)
faces=$(grep -o '"label"' "$output" | wc -l)
echo "wrote $output: $frames frame(s), $with_faces with faces, $faces face(s) in all"
