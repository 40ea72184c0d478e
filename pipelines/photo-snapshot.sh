#!/bin/sh
# Shows one photo through facedetect + feremotion + feremotionoverlay: writes the annotated PNG and prints each face's emotion.
#
#   FER_MODEL=M.safetensors pipelines/photo-snapshot.sh PHOTO OUT.png
#   pipelines/photo-snapshot.sh --model M.safetensors PHOTO OUT.png
#
# Prints "PHOTO: face X,Y WxH: LABEL (CONFIDENCE)" per face, or
# "PHOTO: no face found". The model defaults to the shipped
# models/feremotion-resnet18-fer2013.safetensors.
# shellcheck source=pipelines/common.sh
. "$(dirname "$0")/common.sh"
[ $# -eq 2 ] || die "usage: $prog [--model M.safetensors] PHOTO OUT.png"
photo=$1
out=$2
require_model
[ -f "$photo" ] || die "photo $photo: no such file"

require_element feremotion
require_element facedetect

log=$(mktemp "${TMPDIR:-/tmp}/photo-snapshot.XXXXXX")
trap 'rm -f "$log"' EXIT

# mode=roi: a photo without a detected face has nothing to classify (auto
# would classify the whole picture as if it were a face). Faces under 48
# pixels, the model's input size, are too blurred to read; min-neighbors=5
# rather than 3 drops weak detections (at 3, a JPEG copy of astronaut.png
# gets a second "face" on her suit).
if ! run_pipeline -m \
    filesrc location="$photo" ! decodebin ! imagefreeze num-buffers=1 \
    ! videoconvert \
    ! facedetect display=false min-size-width=48 min-size-height=48 min-neighbors=5 \
    ! feremotion model="$model" mode=roi \
    ! videoconvert ! feremotionoverlay ! videoconvert \
    ! pngenc ! filesink location="$out" >"$log" 2>&1; then
  launch_errors "$log"
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
