#!/bin/sh
# Every tracked C, header and CUDA file is laid out as .clang-format says
# (clang-format 14, Debian 12). Lists the files that are not and how to fix
# them. TAP output: one line per file.
set -u
cd "${FER_SOURCE_DIR:?FER_SOURCE_DIR not set}"
command -v clang-format >/dev/null 2>&1 || { echo "1..0 # SKIP clang-format is not installed (apt-get install clang-format)"; exit 0; }
files=$(git ls-files '*.c' '*.h' '*.cu' 2>/dev/null)
[ -n "$files" ] || { echo "1..0 # SKIP not a git checkout: no file list"; exit 0; }
n=$(echo "$files" | wc -l)
echo "1..$n"
i=0 status=0
for f in $files; do
  i=$((i + 1))
  if clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
    echo "ok $i - $f"
  else
    echo "not ok $i - $f: not laid out as .clang-format says; run: clang-format -i $f"
    status=1
  fi
done
exit $status
