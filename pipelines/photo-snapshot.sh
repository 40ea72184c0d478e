#!/bin/sh
# Shows one photo through facedetect + feremotion + feremotionoverlay: writes the annotated PNG and prints each face's emotion.
#
#   FER_MODEL=M.safetensors pipelines/photo-snapshot.sh PHOTO OUT.png
#   pipelines/photo-snapshot.sh --model M.safetensors PHOTO OUT.png
#
# Prints "PHOTO: face X,Y WxH: LABEL (CONFIDENCE)" per face, or
# "PHOTO: no face found". No trained model ships yet: with a random one
# from `fer-init --out M.safetensors` the labels are meaningless.
set -eu

prog=$(basename "$0")
die () { echo "$prog: $*" >&2; exit 2; }

model=${FER_MODEL:-}
if [ "${1:-}" = --model ]; then
  [ $# -ge 2 ] || die "--model needs a file"
  model=$2
  shift 2
fi
[ $# -eq 2 ] || die "usage: $prog [--model M.safetensors] PHOTO OUT.png"
photo=$1
out=$2
[ -n "$model" ] || die "no model: set FER_MODEL or pass --model M.safetensors (no trained model ships yet; make a random one with build/nn/tools/fer-init --out M.safetensors)"
[ -f "$model" ] || die "model $model: no such file"
[ -f "$photo" ] || die "photo $photo: no such file"

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

log=$(mktemp "${TMPDIR:-/tmp}/photo-snapshot.XXXXXX")
trap 'rm -f "$log"' EXIT INT TERM

# mode=roi: a photo without a detected face has nothing to classify (auto
# would classify the whole picture as if it were a face). Faces under 48
# pixels, the model's input size, are too blurred to read; min-neighbors=5
# rather than 3 drops weak detections (at 3, a JPEG copy of astronaut.png
# gets a second "face" on her suit).
if ! gst-launch-1.0 -m \
    filesrc location="$photo" ! decodebin ! imagefreeze num-buffers=1 \
    ! videoconvert \
    ! facedetect display=false min-size-width=48 min-size-height=48 min-neighbors=5 \
    ! feremotion model="$model" mode=roi \
    ! videoconvert ! feremotionoverlay ! videoconvert \
    ! pngenc ! filesink location="$out" >"$log" 2>&1; then
  # what is left once the progress lines go is the error and its cause
  grep -v -E '^(Got message|Got EOS|Setting pipeline|Pipeline is|Redistribute|New clock|Execution ended|Freeing pipeline)' "$log" >&2
  echo "$prog: the pipeline failed on $photo" >&2
  exit 1
fi

# gst-launch-1.0 -m prints each face of the feremotion message as an
# escaped structure; unescaped, a face reads
#   "face, label=(string)sad, ..., confidence=(double)0.18, x=(int)175, ..."
sed -n 's/\\//g; /(element): feremotion, /p' "$log" | awk -v photo="$photo" '
  function field(s, key,   p, rest) {
    p = index(s, key)
    if (!p) return "?"
    rest = substr(s, p + length(key))
    match(rest, /^[^,;>]*/)
    return substr(rest, 1, RLENGTH)
  }
  {
    n = split($0, faces, /"face, /)
    if (n < 2) print photo ": no face found"
    for (i = 2; i <= n; i++)
      printf "%s: face %s,%s %sx%s: %s (%.2f)\n", photo,
        field(faces[i], " x=(int)"), field(faces[i], " y=(int)"),
        field(faces[i], "width=(int)"), field(faces[i], "height=(int)"),
        field(faces[i], "label=(string)"),
        field(faces[i], "confidence=(double)")
  }'
echo "wrote $out"
