#!/bin/sh
# Builds the project and runs every test: the normal build (warnings are
# errors), then the libfernn and element tests again under AddressSanitizer +
# LeakSanitizer (hostile model files, preprocessing, the network, the
# elements; tests/lsan.supp lists the third-party one-time allocations that
# are not leaks), then short libFuzzer runs of every parser target (clang,
# tests/fuzz). Prints one summary line
# "N passed, N failed, N skipped" last. Usage: tests/run.sh [BUILDDIR]
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
asan=$build-asan
status=0

run_suite () {
  dir=$1; shift
  meson test -C "$dir" --print-errorlogs --num-processes 2 "$@" || status=1
  python3 - "$dir/meson-logs/testlog.json" >> "$build.summary" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(r["result"])
PY
}

rm -f "$build.summary"
meson setup "$build" --reconfigure -Dwerror=true >/dev/null 2>&1 \
  || meson setup "$build" -Dwerror=true || exit 1
meson compile -C "$build" || exit 1
run_suite "$build"

meson setup "$asan" --reconfigure -Dwerror=true -Db_sanitize=address,undefined \
    -Db_lundef=false >/dev/null 2>&1 \
  || meson setup "$asan" -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false \
  || exit 1
meson compile -C "$asan" || exit 1
# The ASan build keeps the CUDA backend (where the toolkit is), so that its
# host code and the no-device path are checked too. On a machine with a GPU
# the CUDA driver maps memory inside ASan's shadow gap: protect_shadow_gap=0
# lets it (it changes nothing where there is no driver).
export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:protect_shadow_gap=0
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
run_suite "$asan" --suite nn --suite gst

# libFuzzer smoke runs (tests/fuzz, docs/security.md): clang with ASan and
# UBSan, a fixed number of executions per parser target from generated
# seeds plus every input that once failed. Only the fuzz targets are built.
fuzz=$build-fuzz
CC=clang meson setup "$fuzz" --reconfigure -Dfuzzing=true -Dcuda=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null 2>&1 \
  || CC=clang meson setup "$fuzz" -Dfuzzing=true -Dcuda=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false \
  || exit 1
meson compile -C "$fuzz" tests/fuzz/fuzz-seeds tests/fuzz/fuzz-safetensors \
    tests/fuzz/fuzz-image tests/fuzz/fuzz-csv tests/fuzz/fuzz-model \
    tests/fuzz/fuzz-folder tests/fuzz/fuzz-element \
    tests/fuzz/fuzz-pack || exit 1
run_suite "$fuzz" --no-rebuild --suite fuzz

passed=$(grep -c -E '^(OK|EXPECTEDFAIL)$' "$build.summary")
failed=$(grep -c -E '^(FAIL|ERROR|TIMEOUT|UNEXPECTEDPASS)$' "$build.summary")
skipped=$(grep -c '^SKIP$' "$build.summary")
rm -f "$build.summary"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] || status=1
exit $status
