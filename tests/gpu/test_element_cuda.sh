#!/bin/sh
# The feremotion element with backend=cuda in a pipeline: a random model,
# videotestsrc frames, mode=frame, and the element's bus messages; the
# probabilities must match backend=cpu's to 1e-3. Skips (77) with
# "SKIP: no CUDA device (...)" when backend=cuda cannot start here.
# Environment (from meson): FER_TOOLS_DIR, GST_PLUGIN_PATH_1_0.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$FER_TOOLS_DIR/fer-init" --out "$tmp/m.safetensors" --seed 4 >/dev/null || exit 1

run () {
  gst-launch-1.0 -m videotestsrc num-buffers=8 pattern=ball \
    ! video/x-raw,format=GRAY8,width=64,height=64 \
    ! feremotion model="$tmp/m.safetensors" backend="$1" mode=frame tta=5 \
    ! fakesink > "$tmp/$1.log" 2>&1
}

if ! run cuda; then
  reason=$(grep -o 'no CUDA device.*' "$tmp/cuda.log" | head -n 1)
  if [ -z "$reason" ] && grep -q 'no CUDA backend' "$tmp/cuda.log"; then
    reason="no CUDA device (this build of libfernn has no CUDA backend)"
  fi
  if [ -n "$reason" ]; then
    echo "SKIP: $reason"
    exit 77
  fi
  cat "$tmp/cuda.log"
  exit 1
fi
run cpu || { cat "$tmp/cpu.log"; exit 1; }
python3 - "$tmp/cpu.log" "$tmp/cuda.log" <<'PY'
import re, sys
def probs(path):
    out = []
    for line in open(path):
        if "(element): feremotion" in line:
            for m in re.finditer(r"probabilities[^<]*<(.*?)>", line):
                out += [float(v) for v in re.findall(r"\d[\d.e+-]*", m.group(1))]
    return out
c, g = probs(sys.argv[1]), probs(sys.argv[2])
if not c or len(c) != len(g):
    sys.exit("element messages differ: %d cpu values, %d cuda values" % (len(c), len(g)))
err = max(abs(a - b) for a, b in zip(c, g))
print("element backend=cuda vs cpu: %d values, max |difference| %.3g" % (len(c), err))
sys.exit(0 if err <= 1e-3 else 1)
PY
