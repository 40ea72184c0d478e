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
# The targets that write files (fuzz-folder's trees, fuzz-model's model,
# fuzz-element's) do it in $TMPDIR, which points to a private folder on a
# tmpfs (/dev/shm) where there is one with 256 MB free (a container's
# default /dev/shm is 64 MB; fuzz-element's model alone is 22 MB):
# fuzz-folder runs about 30 times faster there than on a disk. Both
# folders go at exit.
set -eu
here=$(dirname "$0")
target=$1 seedgen=$2 kind=$3 dict=$4 max_len=$5
runs=${6:-${FER_FUZZ_RUNS:-20000}}
tmp=$(mktemp -d)
scratch_in=${TMPDIR:-/tmp}
shm_free_kb=$(df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
[ -w /dev/shm ] && [ "${shm_free_kb:-0}" -ge 262144 ] && scratch_in=/dev/shm
scratch=$(mktemp -d -p "$scratch_in")
trap 'rm -rf "$tmp" "$scratch"' EXIT
export TMPDIR="$scratch"
"$seedgen" "$tmp/seeds"
corpus=${FER_FUZZ_CORPUS:-$tmp/corpus}
mkdir -p "$corpus"
regressions=
[ -d "$here/regressions/$kind" ] && regressions=$here/regressions/$kind
"$target" -runs="$runs" -seed="${FER_FUZZ_SEED:-1}" -error_exitcode=1 \
  -dict="$dict" -max_len="$max_len" -print_final_stats=1 \
  "$corpus" "$tmp/seeds/$kind" $regressions
