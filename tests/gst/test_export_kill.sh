#!/bin/sh
# feremotionexport stopped the hard way (TAP): a gst-launch-1.0 pipeline
# writing JSON lines as fast as it can is killed with SIGTERM (what systemd
# and docker send) and with SIGKILL; every line of the file must parse as
# JSON, the file must end with a newline, and the lines written must be
# there (issue 13, item 5: stdio's 4 KiB blocks left half a line).
#
# Environment (set by tests/meson.build): FER_TOOLS_DIR (build/nn/tools),
# FER_SOURCE_DIR. Skips when the build is a sanitizer build, whose plugin
# gst-launch-1.0 cannot load.
set -u

: "${FER_TOOLS_DIR:?set FER_TOOLS_DIR to build/nn/tools}"
: "${FER_SOURCE_DIR:?set FER_SOURCE_DIR to the source tree}"
# shellcheck source=tests/gst/tap.sh
. "$FER_SOURCE_DIR/tests/gst/tap.sh"
plugin_test_setup test-export-kill

echo "1..4"
if python3 -c 'import json, sys
sys.exit(0 if any(o["name"] == "b_sanitize" and o["value"] not in ("none", "")
                  for o in json.load(open(sys.argv[1]))) else 1)' \
    "$build/meson-info/intro-buildoptions.json" 2>/dev/null; then
  for s in TERM KILL; do
    skip "SIGTERM/SIGKILL: pipeline ran" "sanitizer build: gst-launch-1.0 cannot load its plugin"
    skip "after SIG$s every line parses" "sanitizer build"
  done
  exit 0
fi

model=$tmp/m.safetensors
"$FER_TOOLS_DIR/fer-init" --out "$model" --seed 3 >"$tmp/out" 2>&1 \
  || { not_ok "fer-init"; exit 1; }

# kill_after SIGNAL NUMBER: runs the pipeline until it has written lines
# and half a second more, sends SIGNAL, then checks the file it wrote.
kill_after () {
  sig=$1
  signum=$2
  out=$tmp/$sig.jsonl
  # not live: buffers go as fast as inference allows, so the kill lands
  # while lines are being written
  gst-launch-1.0 -q videotestsrc pattern=ball \
    ! video/x-raw,format=GRAY8,width=64,height=48,framerate=1000/1 \
    ! feremotion model="$model" tta=1 \
    ! feremotionexport location="$out" ! fakesink >"$tmp/$sig.log" 2>&1 &
  kill_once_written "$out" $! "$sig"
  cp "$tmp/$sig.log" "$tmp/out"
  expect_status "SIG$sig: the pipeline ran until killed" $((128 + signum))
  check "after SIG$sig every line parses, each with one face" \
    python3 "$FER_SOURCE_DIR/tests/gst/whole_lines.py" "$out" 10 - 1
}

kill_after TERM 15
kill_after KILL 9
exit $failed
