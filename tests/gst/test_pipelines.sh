#!/bin/sh
# The sample pipelines (pipelines/*.sh) and the example application, run end
# to end on scikit-image's astronaut.png with a random model (TAP output).
#
# Environment (set by tests/meson.build): FER_TOOLS_DIR (build/nn/tools),
# FER_SOURCE_DIR. The build directory is FER_TOOLS_DIR/../.., where the
# plugin (gst/) and feremotion-example (pipelines/) are. Tests that need
# facedetect (gstreamer1.0-opencv), the photo (python3-skimage), the
# example application or a plugin that gst-launch-1.0 can load (not an
# ASan build) skip with the reason when it is missing.
set -eu

: "${FER_TOOLS_DIR:?set FER_TOOLS_DIR to build/nn/tools}"
: "${FER_SOURCE_DIR:?set FER_SOURCE_DIR to the source tree}"
build=$(cd "$FER_TOOLS_DIR/../.." && pwd)
scripts=$FER_SOURCE_DIR/pipelines
photo=/usr/lib/python3/dist-packages/skimage/data/astronaut.png
labels='angry|disgust|fear|happy|neutral|sad|surprise'
example=$build/pipelines/feremotion-example

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-pipelines.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

# Hermetic: the plugin from this build, a registry of our own. GStreamer
# prefers the _1_0 variants, and the scripts read FER_*: a caller's would
# override what is set here.
unset GST_PLUGIN_PATH_1_0 GST_REGISTRY_1_0 FER_MODEL FER_SOURCE FER_SINK
FER_BUILD_DIR=$build
GST_PLUGIN_PATH=$build/gst
GST_REGISTRY=$tmp/registry.bin
export FER_BUILD_DIR GST_PLUGIN_PATH GST_REGISTRY

# shellcheck source=tests/gst/tap.sh
. "$FER_SOURCE_DIR/tests/gst/tap.sh"

# check_log DESCRIPTION PATTERN LOG: ok when LOG has a line matching the
# extended regular expression PATTERN; LOG is shown when it does not
check_log () {
  cp "$3" "$tmp/out"
  if grep -q -E -e "$2" "$3"; then ok "$1"; else not_ok "$1"; fi
}

# refuses DESCRIPTION PATTERN COMMAND...: ok when COMMAND fails with a
# message matching PATTERN
refuses () {
  desc=$1; pattern=$2; shift 2
  if "$@" >"$tmp/out" 2>&1; then
    not_ok "$desc (exit status 0)"
  elif grep -q -e "$pattern" "$tmp/out"; then
    ok "$desc"
  else
    not_ok "$desc (no message matching \"$pattern\")"
  fi
}

# photo_avi FRAMES FILE: an MJPEG AVI of FRAMES copies of the photo at 10
# frames per second.
photo_avi () {
  gst-launch-1.0 -q filesrc location="$photo" ! decodebin \
    ! imagefreeze num-buffers="$1" ! video/x-raw,framerate=10/1 \
    ! videoconvert ! jpegenc ! avimux ! filesink location="$2" >&2 || true
}

# Width and height from a PNG's IHDR chunk, no image library needed.
png_size () {
  python3 -c 'import struct, sys
d = open(sys.argv[1], "rb").read(24)
assert d[:8] == b"\x89PNG\r\n\x1a\n" and d[12:16] == b"IHDR", "not a PNG"
print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1"
}

# An ASan-built plugin cannot be loaded by gst-launch-1.0 and gst-inspect-1.0
# (the ASan runtime would have to come first): nothing runs the plugin then.
no_plugin=$(python3 -c 'import json, sys
for o in json.load(open(sys.argv[1])):
    if o["name"] == "b_sanitize" and o["value"] not in ("none", ""):
        print("sanitizer build (b_sanitize=%s): gst-launch-1.0 cannot load its plugin" % o["value"])
' "$build/meson-info/intro-buildoptions.json" 2>/dev/null || true)
no_facedetect=
gst-inspect-1.0 facedetect >/dev/null 2>&1 \
  || no_facedetect="facedetect not installed (gstreamer1.0-opencv)"
no_photo=
[ -f "$photo" ] || no_photo="$photo missing (python3-skimage)"
# the reasons among the arguments that are not empty, joined by "; "
reasons () {
  r=
  for x in "$@"; do [ -z "$x" ] || r=${r:+$r; }$x; done
  echo "$r"
}
missing=$(reasons "$no_plugin" "$no_facedetect" "$no_photo")
# mkv-emotions.py reads with Debian's GStreamer bindings
no_gi=
/usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0")' 2>/dev/null \
  || no_gi="python3-gi or gir1.2-gstreamer-1.0 not installed"

echo "1..25"

model=$tmp/random.safetensors
check "fer-init writes a random model" "$FER_TOOLS_DIR/fer-init" --out "$model" --seed 1

# 2-4: photo-snapshot.sh
if [ -n "$missing" ]; then
  skip "photo-snapshot.sh writes the PNG" "$missing"
  skip "the snapshot is a PNG of the photo's size" "$missing"
  skip "photo-snapshot.sh prints a face and its emotion" "$missing"
else
  check "photo-snapshot.sh writes the PNG" \
    sh "$scripts/photo-snapshot.sh" --model "$model" "$photo" "$tmp/snap.png"
  cp "$tmp/out" "$tmp/snap.log"
  snap_size=$(png_size "$tmp/snap.png" 2>&1 || true)
  photo_size=$(png_size "$photo")
  if [ "$snap_size" = "$photo_size" ]; then
    ok "the snapshot is a PNG of the photo's size"
  else
    echo "snapshot: $snap_size, photo: $photo_size" >"$tmp/out"
    not_ok "the snapshot is a PNG of the photo's size"
  fi
  check_log "photo-snapshot.sh prints a face and its emotion" \
    ": face [0-9]+,[0-9]+ [0-9]+x[0-9]+: ($labels) \(0\.[0-9]+\)$" "$tmp/snap.log"
fi

# The shipped default model (no --model): the astronaut smiles.
if [ -n "$missing" ]; then
  skip "photo-snapshot.sh with the shipped model writes the PNG" "$missing"
  skip "photo-snapshot.sh with the shipped model: the astronaut is happy" "$missing"
else
  check "photo-snapshot.sh with the shipped model writes the PNG" \
    sh "$scripts/photo-snapshot.sh" "$photo" "$tmp/snap-default.png"
  cp "$tmp/out" "$tmp/snap-default.log"
  check_log "photo-snapshot.sh with the shipped model: the astronaut is happy" \
    ": face [0-9]+,[0-9]+ [0-9]+x[0-9]+: happy \(0\.[0-9]+\)$" "$tmp/snap-default.log"
fi

# 5: the error path names what is missing
refuses "photo-snapshot.sh refuses a missing photo" "no-such.png: no such file" \
  sh "$scripts/photo-snapshot.sh" --model "$model" "$tmp/no-such.png" "$tmp/x.png"

# 6-7: the example application
if [ ! -x "$example" ] || [ -n "$no_plugin" ]; then
  why=$(reasons "$no_plugin" "$([ -x "$example" ] || echo "$example not built (subdir('pipelines') missing?)")")
  skip "feremotion-example prints a face line" "$why"
  skip "feremotion-example fails on a bad model path" "$why"
else
  if [ -n "$missing" ]; then
    skip "feremotion-example prints a face line" "$missing"
  else
    "$example" --model "$model" "$photo" >"$tmp/example.log" 2>&1 || true
    check_log "feremotion-example prints a face line" \
      "^pts=[0-9:.]+ face [0-9]+,[0-9]+ [0-9]+x[0-9]+ track 1: ($labels) \(0\.[0-9]+\) \[angry=" \
      "$tmp/example.log"
  fi
  refuses "feremotion-example fails on a bad model path" \
    'Could not read emotion model ".*no-such.safetensors"' \
    "$example" --model "$tmp/no-such.safetensors" --pipeline \
    "videotestsrc num-buffers=1 ! videoconvert ! feremotion name=feremotion ! fakesink"
fi

# 8-9: video-to-json.sh on a 10-frame MJPEG AVI of the photo
if [ -n "$missing" ]; then
  skip "video-to-json.sh writes JSON lines" "$missing"
  skip "every JSON line parses and every face has a label" "$missing"
else
  # a failure here shows up below as "input ...astro.avi: no such file"
  photo_avi 10 "$tmp/astro.avi"
  check "video-to-json.sh writes JSON lines" \
    sh "$scripts/video-to-json.sh" --model "$model" "$tmp/astro.avi" "$tmp/astro.jsonl"
  check "every JSON line parses and every face has a label" python3 -c '
import json, sys
labels = set(sys.argv[2].split("|"))
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 10, "%d lines, expected 10" % len(lines)
faces = 0
for i, line in enumerate(lines):
    frame = json.loads(line)
    for face in frame["faces"]:
        assert face["label"] in labels, "line %d: label %r" % (i + 1, face["label"])
        faces += 1
assert faces >= 10, "only %d faces in 10 frames" % faces
print("%d lines, %d faces" % (len(lines), faces))
' "$tmp/astro.jsonl" "$labels"
fi

# the example application on the same video reads every frame, with the
# default model ("fast", found through FER_MODEL_PATH)
if [ -n "$missing" ] || [ ! -x "$example" ]; then
  skip "feremotion-example reads every frame of a video" \
    "$(reasons "$missing" "$([ -x "$example" ] || echo "$example not built")")"
else
  "$example" "$tmp/astro.avi" >"$tmp/example-video.log" 2>&1 || true
  check_log "feremotion-example reads every frame of a video" \
    "^10 buffer\(s\), (1[0-9]|[2-9][0-9]) face\(s\)$" "$tmp/example-video.log"
fi

# pipelines/example-app.py (Debian's python3-gi, the typelib of this
# build) on the same video: every frame, the same faces from the metadata
# and from the bus
if [ -n "$missing" ]; then
  skip "example-app.py reads every face from the metadata and the bus" "$missing"
elif ! /usr/bin/python3 -c 'import gi' 2>/dev/null; then
  skip "example-app.py reads every face from the metadata and the bus" \
    "python3-gi is not installed"
else
  GI_TYPELIB_PATH=$build/gst${GI_TYPELIB_PATH:+:$GI_TYPELIB_PATH} \
    LD_LIBRARY_PATH=$build/gst${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    /usr/bin/python3 "$scripts/example-app.py" "$tmp/astro.avi" \
    >"$tmp/example-py.log" 2>&1 || true
  sed -n 's/^probe //p' "$tmp/example-py.log" >"$tmp/example-py.probe"
  sed -n 's/^bus   //p' "$tmp/example-py.log" >"$tmp/example-py.bus"
  if grep -q -E "^10 buffers, (1[0-9]|[2-9][0-9]) faces from the metadata, (1[0-9]|[2-9][0-9]) from the bus$" \
      "$tmp/example-py.log" \
      && grep -q -E "^pts=[0-9:.]+ face [0-9]+,[0-9]+ [0-9]+x[0-9]+ roi -?[0-9]+ track -?[0-9]+: ($labels) " "$tmp/example-py.probe" \
      && cmp -s "$tmp/example-py.probe" "$tmp/example-py.bus"; then
    ok "example-app.py reads every face from the metadata and the bus"
  else
    cp "$tmp/example-py.log" "$tmp/out"
    not_ok "example-app.py reads every face from the metadata and the bus"
  fi
fi

# video-to-json.sh stopped by SIGTERM: exits 143, not 0, and the lines
# written so far are whole
if [ -n "$missing" ]; then
  skip "video-to-json.sh exits 143 on SIGTERM" "$missing"
  skip "video-to-json.sh says it was interrupted" "$missing"
  skip "the interrupted JSON lines all parse" "$missing"
else
  photo_avi 600 "$tmp/long.avi"
  sh "$scripts/video-to-json.sh" --model "$model" "$tmp/long.avi" \
    "$tmp/long.jsonl" >"$tmp/long.log" 2>&1 &
  kill_once_written "$tmp/long.jsonl" $! TERM
  cp "$tmp/long.log" "$tmp/out"
  expect_status "video-to-json.sh exits 143 on SIGTERM" 143
  check_log "video-to-json.sh says it was interrupted" "interrupted" "$tmp/long.log"
  check "the interrupted JSON lines all parse" \
    python3 "$FER_SOURCE_DIR/tests/gst/whole_lines.py" "$tmp/long.jsonl" 1 599
fi

# video-to-mkv.sh records the video with its emotion tracks; mkv-emotions.py
# reads back from the Matroska file exactly the lines the export wrote
if [ -n "$missing$no_gi" ]; then
  why=$(reasons "$missing" "$no_gi")
  skip "video-to-mkv.sh records the video with the emotion tracks" "$why"
  skip "mkv-emotions.py reads back the export's JSON lines" "$why"
  skip "mkv-emotions.py --subtitles gives every frame's label" "$why"
  skip "video-to-mkv.sh exits 143 on SIGTERM" "$why"
  skip "the interrupted recording holds every line the export wrote" "$why"
else
  check "video-to-mkv.sh records the video with the emotion tracks" \
    sh "$scripts/video-to-mkv.sh" --model "$model" "$tmp/astro.avi" \
    "$tmp/astro.mkv" "$tmp/astro-mkv.jsonl"
  /usr/bin/python3 "$scripts/mkv-emotions.py" "$tmp/astro.mkv" \
    >"$tmp/astro-back.jsonl" 2>"$tmp/out" || true
  check "mkv-emotions.py reads back the export's JSON lines" python3 -c '
import sys
written, back = (open(f).read().splitlines() for f in sys.argv[1:3])
assert len(written) == 10, "the export wrote %d lines, expected 10" % len(written)
assert back == written, "read back %d lines, %d differ" % (len(back),
    sum(a != b for a, b in zip(back, written)) + abs(len(back) - len(written)))
print("10 lines, byte for byte")
' "$tmp/astro-mkv.jsonl" "$tmp/astro-back.jsonl"
  /usr/bin/python3 "$scripts/mkv-emotions.py" --subtitles "$tmp/astro.mkv" \
    >"$tmp/astro-subtitles.txt" 2>"$tmp/out" || true
  if [ "$(grep -c -E "^[0-9.]+ 0\.100 ($labels) [0-9]+%" "$tmp/astro-subtitles.txt")" -eq 10 ]; then
    ok "mkv-emotions.py --subtitles gives every frame's label"
  else
    cp "$tmp/astro-subtitles.txt" "$tmp/out"
    not_ok "mkv-emotions.py --subtitles gives every frame's label"
  fi

  # stopped by SIGTERM: gst-launch-1.0 -e finishes the file with EOS
  sh "$scripts/video-to-mkv.sh" --model "$model" "$tmp/long.avi" \
    "$tmp/long.mkv" "$tmp/long-mkv.jsonl" >"$tmp/long-mkv.log" 2>&1 &
  kill_once_written "$tmp/long-mkv.jsonl" $! TERM
  cp "$tmp/long-mkv.log" "$tmp/out"
  expect_status "video-to-mkv.sh exits 143 on SIGTERM" 143
  /usr/bin/python3 "$scripts/mkv-emotions.py" "$tmp/long.mkv" \
    >"$tmp/long-back.jsonl" 2>"$tmp/out" || true
  check "the interrupted recording holds every line the export wrote" python3 -c '
import sys
written, back = (open(f).read().splitlines() for f in sys.argv[1:3])
assert 1 <= len(written) < 600, "%d lines written" % len(written)
assert back == written, "%d lines written, %d read back" % (len(written), len(back))
print("%d lines" % len(back))
' "$tmp/long-mkv.jsonl" "$tmp/long-back.jsonl"
fi

# webcam.sh with the camera and window replaced
if [ -n "$no_plugin$no_facedetect" ]; then
  skip "webcam.sh runs with videotestsrc and fakesink" "$(reasons "$no_plugin" "$no_facedetect")"
else
  check "webcam.sh runs with videotestsrc and fakesink" env \
    FER_SOURCE="videotestsrc num-buffers=1" FER_SINK=fakesink \
    sh "$scripts/webcam.sh" --model "$model"
fi

# 11-13: faces-folder.sh on two face crops cut from the photo
if [ -n "$no_plugin$no_photo" ]; then
  why=$(reasons "$no_plugin" "$no_photo")
  skip "faces-folder.sh classifies each crop" "$why"
  skip "faces-folder.sh labels the PNG crop" "$why"
  skip "faces-folder.sh labels the JPEG crop (a name with a space)" "$why"
else
  # failures here show up below as "no .png, .jpg or .jpeg files"
  mkdir "$tmp/faces"
  gst-launch-1.0 -q filesrc location="$photo" ! decodebin ! imagefreeze num-buffers=1 \
    ! videocrop left=175 top=64 right=240 bottom=351 ! videoconvert \
    ! video/x-raw,format=GRAY8 ! pngenc ! filesink location="$tmp/faces/a.png" >&2 || true
  gst-launch-1.0 -q filesrc location="$photo" ! decodebin ! imagefreeze num-buffers=1 \
    ! videocrop left=175 top=64 right=240 bottom=351 ! videoconvert \
    ! jpegenc ! filesink location="$tmp/faces/b c.jpg" >&2 || true
  check "faces-folder.sh classifies each crop" \
    sh "$scripts/faces-folder.sh" --model "$model" "$tmp/faces"
  cp "$tmp/out" "$tmp/folder.log"
  check_log "faces-folder.sh labels the PNG crop" \
    "/a\.png: ($labels) \(0\.[0-9]+\)$" "$tmp/folder.log"
  check_log "faces-folder.sh labels the JPEG crop (a name with a space)" \
    "/b c\.jpg: ($labels) \(0\.[0-9]+\)$" "$tmp/folder.log"
fi

exit $failed
