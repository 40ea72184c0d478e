#!/bin/sh
# Shows feremotion mode=frame on a folder of face crops (PNG/JPEG, one face per image): prints the feremotion bus messages and one emotion per file.
#
#   FER_MODEL=M.safetensors pipelines/faces-folder.sh DIR
#   pipelines/faces-folder.sh --model M.safetensors DIR
#
# The model defaults to the shipped models/feremotion-resnet18-fer2013.safetensors.
# shellcheck source=pipelines/common.sh
. "$(dirname "$0")/common.sh"
[ $# -eq 1 ] || die "usage: $prog [--model M.safetensors] DIR"
dir=$1
require_model
[ -d "$dir" ] || die "folder $dir: no such directory"

require_element feremotion

tmp=$(mktemp -d "${TMPDIR:-/tmp}/faces-folder.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# multifilesrc reads location=PATTERN with a running index, so the files
# are linked under numbered names; one sequence per format, because the
# decoder is chosen once per stream.
absdir=$(cd "$dir" && pwd)
n_png=0
n_jpeg=0
for f in "$dir"/*; do
  [ -f "$f" ] || continue
  case $f in
    *.png|*.PNG)
      ln -s "$absdir/$(basename "$f")" "$tmp/png-$(printf %06d $n_png)"
      echo "$f" >>"$tmp/png.list"
      n_png=$((n_png + 1)) ;;
    *.jpg|*.JPG|*.jpeg|*.JPEG)
      ln -s "$absdir/$(basename "$f")" "$tmp/jpeg-$(printf %06d $n_jpeg)"
      echo "$f" >>"$tmp/jpeg.list"
      n_jpeg=$((n_jpeg + 1)) ;;
  esac
done
[ $((n_png + n_jpeg)) -gt 0 ] || die "folder $dir: no .png, .jpg or .jpeg files"

status=0
for kind in png jpeg; do
  [ -f "$tmp/$kind.list" ] || continue
  # framerate: gives each crop a timestamp (one per second) for the message
  if ! run_pipeline -m \
      multifilesrc location="$tmp/$kind-%06d" caps="image/$kind,framerate=1/1" \
      ! "${kind}dec" ! videoconvert \
      ! feremotion model="$model" mode=frame ! fakesink >"$tmp/$kind.log" 2>&1; then
    launch_errors "$tmp/$kind.log"
    echo "$prog: the pipeline failed on the $kind files of $dir" >&2
    status=1
    continue
  fi
  grep '(element): feremotion, ' "$tmp/$kind.log" >"$tmp/$kind.msgs" || true
  cat "$tmp/$kind.msgs"
  # mode=frame posts exactly one message per buffer, in file order; each
  # face, unescaped, reads "face, label=(string)sad, ..., confidence=(double)0.18, ..."
  sed 's/\\//g' "$tmp/$kind.msgs" | awk -v list="$tmp/$kind.list" '
    function field(s, key,   p, rest) {
      p = index(s, key)
      if (!p) return "?"
      rest = substr(s, p + length(key))
      match(rest, /^[^,;>]*/)
      return substr(rest, 1, RLENGTH)
    }
    {
      if ((getline file < list) <= 0) file = "?"
      split($0, faces, /"face, /)
      results = results sprintf("%s: %s (%.2f)\n", file,
        field(faces[2], "label=(string)"), field(faces[2], "confidence=(double)"))
    }
    END { printf "%s", results }'
done
exit $status
