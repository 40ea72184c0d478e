#!/usr/bin/env bash
# fer-train under faults (TAP), injected at exact system calls with strace:
#
# - killed (SIGKILL) before every rename it makes (each commit step of every
#   epoch: staged checkpoints, run.json, metrics, plots, report) and in the
#   middle of writing every checkpoint and optimizer state: at no point may
#   best.safetensors, last.safetensors or last.state be anything but a whole
#   file of a committed epoch, and last.safetensors and last.state must come
#   from the same epoch; `--resume` then finishes the run bit for bit as the
#   uninterrupted run (metrics, checkpoints, state), losing at most the epoch
#   in progress.
# - the disk full (ENOSPC) at the first write of every file it writes
#   during the second epoch and the final report: a clear error naming the
#   file (exit status 1), the files of the last committed epoch stay as
#   they were, and `--resume` finishes the run as above.
#
# Environment: FER_TOOLS_DIR (build/nn/tools, required), PYTHON (default
# python3, standard library only). Needs strace (apt-get install strace)
# and ptrace permission; skips with a message without them.
set -u

tools=${FER_TOOLS_DIR:?FER_TOOLS_DIR must name the build directory of the tools}
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

if ! command -v strace >/dev/null 2>&1; then
  echo "1..0 # SKIP strace is not installed (apt-get install strace)"
  exit 0
fi
if ! strace -f -qq -o /dev/null true 2>/dev/null; then
  echo "1..0 # SKIP strace cannot trace here (ptrace is not permitted)"
  exit 0
fi

. "$here/tools-tap.sh"

"$py" "$here/train_data.py" tree train 12 1 && "$py" "$here/train_data.py" tree val 8 2
check "the synthetic dataset was written" test -s train/square/011.png

common="--data train --val val --epochs 2 --batch 16 --threads 1 --seed 3 --tta 2"

# The reference: epoch 1's committed files, then the whole run (a resumed
# run equals an uninterrupted one: test_train_tool.sh), traced to find the
# system calls at which to inject.
run "$tools/fer-train" $common --out ref --stop-after-epochs 1
mkdir ep1 && cp ref/best.safetensors ref/last.safetensors ref/last.state ep1/
check "the reference's epoch 1 (status 0, checkpoints kept)" \
  eval '[ "$status" -eq 0 ] && [ -s ep1/last.state ]'
run "$tools/fer-train" --resume ref
mkdir ep2 && cp ref/best.safetensors ref/last.safetensors ref/last.state ep2/
check "the reference's epoch 2 (status 0, checkpoints kept)" \
  eval '[ "$status" -eq 0 ] && [ -s ep2/last.state ] && ! cmp -s ep1/last.state ep2/last.state'
run strace -f -qq -o trace -e trace=openat,write,rename,fsync \
  "$tools/fer-train" $common --out traced
check "the reference runs (status 0) and the traced run gives the same checkpoints" \
  eval '[ "$status" -eq 0 ] && cmp -s ref/best.safetensors traced/best.safetensors && cmp -s ref/last.state traced/last.state'

# The plan, one line per fault: KIND SYSCALL N FILE COMMITTED, where N counts SYSCALL
# in the main thread (strace counts each thread's calls) and FILE is the
# file it touches (for rename: the target). KIND kill: every rename after
# the run directory exists, and the middle write of every staged
# checkpoint or state; KIND full: the first write of each file written
# after epoch 1 was committed. COMMITTED: 1 when epoch 1's commit had
# ended before the fault (its checkpoints must then be there).
"$py" - trace >plan <<'EOF'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
main = lines[0].split(None, 1)[0]
count = {}
fds = {}
writes = {}          # path -> list of write indices
order = []           # paths in order of first write
committed = False    # epoch 1's checkpoints are in place
commit_write = None  # writes made by then
full = {}
plan = []
def base(path):
    p = path.split('/', 1)[1]
    p = re.sub(r'\.tmp-[A-Za-z0-9]+$', '', p)
    p = re.sub(r'\.epoch-[0-9]+$', '', p)
    p = re.sub(r'\.[A-Za-z0-9]{6}$', '', p)
    return p
for l in lines:
    pid, rest = l.split(None, 1)
    if pid != main:
        continue
    m = re.match(r'(\w+)\((.*)\)\s+= (-?\d+)', rest)
    if not m:
        continue
    name, args, ret = m.group(1), m.group(2), int(m.group(3))
    count[name] = count.get(name, 0) + 1
    k = count[name]
    if name == 'openat':
        p = re.search(r'"(traced/[^"]*)"', args)
        if p and ret >= 0 and ('O_WRONLY' in args or 'O_RDWR' in args):
            fds[ret] = p.group(1)
    elif name == 'write':
        fd = int(args.split(',', 1)[0])
        path = fds.get(fd)
        if path is None:
            continue
        writes.setdefault(path, []).append(k)
        if committed and base(path) not in full:
            full[base(path)] = k
            plan.append(('full', 'write', k, base(path), 1))
    elif name == 'rename':
        src, dst = re.findall(r'"([^"]*)"', args)
        if count['rename'] > 1:
            plan.append(('kill', 'rename', k, dst.split('/', 1)[1],
                int(committed)))
        if dst == 'traced/best.safetensors' and not committed:
            committed = True
            commit_write = count.get('write', 0)
for path, ks in writes.items():
    if '.epoch-' in path and len(ks) > 2:
        k = ks[len(ks) // 2]
        plan.append(('kill', 'write', k, path.split('/', 1)[1],
            int(k > commit_write)))
for p in plan:
    print(*p)
EOF
kills=$(grep -c '^kill' plan)
fulls=$(grep -c '^full' plan)
check "the trace gives kill points ($kills) and disk-full points ($fulls)" \
  eval '[ "$kills" -ge 10 ] && [ "$fulls" -ge 5 ]'
sed 's/^/# plan: /' plan

# same FILE...: FILE equals the reference's copy of epoch 1 or epoch 2
# (absent is allowed before epoch 1's commit); last.safetensors and
# last.state from the same epoch.
epoch_of ()
{
  if [ ! -e "$1/$2" ]; then echo none
  elif cmp -s "$1/$2" "ep1/$2"; then echo 1
  elif cmp -s "$1/$2" "ep2/$2"; then echo 2
  else echo bad; fi
}
committed_files_good ()
{
  local b l s
  b=$(epoch_of "$1" best.safetensors)
  l=$(epoch_of "$1" last.safetensors)
  s=$(epoch_of "$1" last.state)
  echo "# $1: best from epoch $b, last from epoch $l, state from epoch $s"
  [ "$b" != bad ] && [ "$l" != bad ] && [ "$s" != bad ] || return 1
  # after epoch 1's commit, its checkpoints may be replaced, never lost
  if [ "$2" = 1 ] && { [ "$b" = none ] || [ "$l" = none ]; }; then
    return 1
  fi
  [ "$l" = "$s" ] && return 0
  # Killed between the two renames of a commit: run.json already names
  # the new epoch, and the other file waits, whole, under its staged name
  # for --resume to roll the commit forward.
  if [ "$l" = "$((${s#none} + 1))" ] || { [ "$s" = none ] && [ "$l" = 1 ]; }; then
    cmp -s "$1/last.state.epoch-$l" "ep$l/last.state"
  else
    cmp -s "$1/last.safetensors.epoch-$s" "ep$s/last.safetensors"
  fi
}
resumes_to_reference ()
{
  run "$tools/fer-train" --resume "$1"
  [ "$status" -eq 0 ] \
    && cmp -s <(cut -d, -f1-6 ref/metrics.csv) <(cut -d, -f1-6 "$1/metrics.csv") \
    && cmp -s ref/best.safetensors "$1/best.safetensors" \
    && cmp -s ref/last.safetensors "$1/last.safetensors" \
    && cmp -s ref/last.state "$1/last.state" \
    && [ -s "$1/report.md" ] && [ -s "$1/curves.png" ] \
    && [ -z "$(ls "$1" | grep -E '\.epoch-|\.tmp-|\.[A-Za-z0-9]{6}$')" ]
}

i=0
while read -r kind call k file committed; do
  i=$((i + 1))
  dir=run$i
  if [ "$kind" = kill ]; then
    run strace -f -qq -o /dev/null -e trace="$call" \
      -e inject="$call":signal=KILL:when="$k" \
      "$tools/fer-train" $common --out "$dir"
    check "killed at $call #$k ($file): the committed files are whole and agree" \
      eval '[ "$status" -eq 137 ] && committed_files_good "$dir" "$committed"'
  else
    run strace -f -qq -o /dev/null -e trace=write \
      -e inject=write:error=ENOSPC:when="$k" \
      "$tools/fer-train" $common --out "$dir"
    check "disk full at the first write of $file: status 1, an error naming it, the committed files are whole" \
      eval '[ "$status" -eq 1 ] && grep -qF -- "$file" err && grep -q "No space left on device" err && committed_files_good "$dir" "$committed"'
  fi
  check "  ... and --resume finishes it as the uninterrupted run" resumes_to_reference "$dir"
  rm -rf "$dir"
done <plan

echo "1..$n"
