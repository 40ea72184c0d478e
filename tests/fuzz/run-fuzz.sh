#!/bin/sh
# One libFuzzer target, a fixed number of runs, from seeds made afresh:
#   run-fuzz.sh TARGET SEEDGEN KIND DICT MAX_LEN [RUNS]
# Inputs that once failed (tests/fuzz/regressions/KIND/) run first, every
# time.
# RUNS defaults to $FER_FUZZ_RUNS or 20000 (the CI smoke run). New corpus
# entries go to a temporary folder, or to $FER_FUZZ_CORPUS when set (a
# folder kept from run to run: a long run in chunks, docs/security.md);
# $FER_FUZZ_SEED (default 1) seeds libFuzzer's mutations. A crash leaves
# crash-* in the working directory (meson's build folder) and fails the
# test.
set -eu
here=$(dirname "$0")
target=$1 seedgen=$2 kind=$3 dict=$4 max_len=$5
runs=${6:-${FER_FUZZ_RUNS:-20000}}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$seedgen" "$tmp/seeds"
corpus=${FER_FUZZ_CORPUS:-$tmp/corpus}
mkdir -p "$corpus"
regressions=
[ -d "$here/regressions/$kind" ] && regressions=$here/regressions/$kind
"$target" -runs="$runs" -seed="${FER_FUZZ_SEED:-1}" -error_exitcode=1 \
  -dict="$dict" -max_len="$max_len" -print_final_stats=1 \
  "$corpus" "$tmp/seeds/$kind" $regressions
