#!/bin/sh
# Records a video with its emotions inside: facedetect + feremotion, then feremotionexport's text pads muxed by matroskamux as two subtitle tracks next to the VP8 video.
#
#   FER_MODEL=M.safetensors pipelines/video-to-mkv.sh INPUT OUTPUT.mkv [OUTPUT.jsonl]
#   pipelines/video-to-mkv.sh --model M.safetensors INPUT OUTPUT.mkv [OUTPUT.jsonl]
#
# OUTPUT.mkv holds the video (VP8), a subtitle track "Emotions" that any
# player shows ("happy 83%" per face) and a track "Emotions (JSON lines)"
# with feremotionexport's JSON line for every frame;
# pipelines/mkv-emotions.py reads the JSON lines back. OUTPUT.jsonl, when
# given, gets the same lines as a file. INPUT is anything decodebin plays.
# shellcheck source=pipelines/common.sh
. "$(dirname "$0")/common.sh"
[ $# -eq 2 ] || [ $# -eq 3 ] \
  || die "usage: $prog [--model M.safetensors] INPUT OUTPUT.mkv [OUTPUT.jsonl]"
input=$1
output=$2
jsonl=${3:-}
video_setup vp8enc matroskamux

# The text pads are pushed from the video's thread before each frame goes
# on to the encoder: the queues let the muxer wait for the encoded frame
# while the text waits in them (without them the pipeline would stall at
# the first frame). They hold up to 10 s, more than any encoder keeps back.
# Frames without a face are GAP events on the subtitle track (nothing is
# shown) and "faces":[] lines on the JSON track.
# shellcheck disable=SC2086 # $detect is gst-launch-1.0 words
run_pipeline \
    filesrc location="$input" ! decodebin ! videoconvert ! $detect \
    ! feremotion model="$model" mode=roi \
    ! feremotionexport name=export ${jsonl:+location="$jsonl"} \
    ! videoconvert ! vp8enc deadline=1 ! matroskamux name=mux \
    ! filesink location="$output" \
    export.subtitle_src ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=10000000000 ! mux.subtitle_%u \
    export.json_src ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=10000000000 ! mux.subtitle_%u \
    >"$log" 2>&1 \
  || pipeline_failed
echo "wrote $output${jsonl:+ and $jsonl}"
