#!/bin/sh
# The multi-stream table of docs/benchmarks.md: bench-multistream for 1, 2,
# 4 and 8 streams, shared and separate models alternating, ROUNDS rounds
# (default 3), each case in its own process; per case the row of the run
# with the median faces/s.
#   sh tests/bench/multistream.sh BUILD_DIR [ROUNDS] [extra bench options]
set -eu
build=${1:?usage: multistream.sh BUILD_DIR [ROUNDS] [options]}
rounds=${2:-3}
shift; [ $# -gt 0 ] && shift
export GST_PLUGIN_PATH="$build/gst"
export GST_REGISTRY="$build/tests/bench/registry.bin"
bench="$build/tests/bench/bench-multistream"
model="$build/tests/bench/bench-model.safetensors"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
r=0
while [ $r -lt "$rounds" ]; do
  for s in 1 2 4 8; do
    for sh in true false; do
      "$bench" --model "$model" --streams $s --shared $sh "$@" >> "$rows"
    done
  done
  r=$((r + 1))
done
"$bench" --header
for s in 1 2 4 8; do
  for m in shared separate; do
    # rows of this case, sorted by faces/s (4th |-field); the middle one
    grep "^| $s | $m |" "$rows" | sort -t '|' -k4,4n \
      | sed -n "$(( (rounds + 1) / 2 ))p"
  done
done
