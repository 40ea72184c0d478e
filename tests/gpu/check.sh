#!/bin/sh
# The CUDA backend on a machine with an NVIDIA GPU, in one run (made for a
# single H200 and an 8-minute budget; about 4 minutes there is the plan):
#   1. builds the project with -Dcuda=enabled for the GPU present
#      (-Dnvcc_arch=native, or $FER_CUDA_ARCH), warnings as errors;
#   2. runs the GPU tests (suite cuda: every op against the CPU backend,
#      the whole network's probabilities, the first training steps' loss
#      curve, the element with backend=cuda) and the backend-selection tests;
#   3. benchmarks: faces/s through fer_model_classify (preprocessing + TTA +
#      forward + averaging) and through the bare forward for TTA 1 and 5 at
#      1/8/64/256 faces per frame (exact FP32, the default, and TF32), and
#      training images/s (batch 256; TF32, the default, and FP32), then
#      the same with PyTorch on the same GPU and weights when
#      `python3 -c 'import torch'` works and sees the GPU;
#   4. prints a short table last (also in $OUT/summary.md).
# Full logs go to $OUT when it is set (else a temporary folder, named at
# the end). Usage: sh tests/gpu/check.sh [BUILDDIR]   (default build-gpu)
# Exit status: 0 when the build and every GPU test passed.
set -u
cd "$(dirname "$0")/../.."
build=${1:-build-gpu}
out=${OUT:-$(mktemp -d /tmp/fer-gpu-check.XXXXXX)}
mkdir -p "$out"
status=0
t_start=$(date +%s)

say () { echo "check.sh [$(( $(date +%s) - t_start ))s] $*" | tee -a "$out/check.log"; }

say "logs in $out"
{ nvidia-smi; nvcc --version; } > "$out/machine.txt" 2>&1
uname -a >> "$out/machine.txt"
nproc >> "$out/machine.txt"

# 1. build
say "build ($build)"
arch=${FER_CUDA_ARCH:-native}
if ! { meson setup "$build" --reconfigure -Dcuda=enabled -Dnvcc_arch="$arch" \
        -Dwerror=true \
      || meson setup "$build" -Dcuda=enabled -Dnvcc_arch="$arch" \
        -Dwerror=true; } > "$out/build.log" 2>&1 \
    || ! meson compile -C "$build" >> "$out/build.log" 2>&1; then
  say "BUILD FAILED: tail of $out/build.log:"
  tail -n 40 "$out/build.log"
  exit 1
fi

# 2. tests
say "GPU tests"
meson test -C "$build" --suite cuda --print-errorlogs --num-processes 1 \
    -v > "$out/gpu-tests.log" 2>&1 || status=1
meson test -C "$build" --print-errorlogs backend-select cuda-host \
    > "$out/select-tests.log" 2>&1 || status=1
cp "$build/meson-logs/testlog.txt" "$out/testlog.txt" 2>/dev/null
tests_line=$(grep -E '^(Ok|Fail|Skipped):' "$out/gpu-tests.log" | tr -s ' ' | tr '\n' ' ')
say "GPU tests: $tests_line"

# 3. benchmarks
model="$out/bench-model.safetensors"
"$build/nn/tools/fer-init" --out "$model" --seed 1 > /dev/null
# bench LABEL COMMAND...: COMMAND's JSON lines, "impl" renamed to LABEL
bench () {
  label=$1
  shift
  "$@" > "$out/bench.tmp" 2>> "$out/bench-fernn.err" || status=1
  sed "s/\"impl\": \"libfernn\"/\"impl\": \"$label\"/" "$out/bench.tmp" \
      >> "$out/bench-fernn.jsonl"
  rm -f "$out/bench.tmp"
}
: > "$out/bench-fernn.jsonl"
say "benchmark: libfernn cuda inference (FP32, then TF32)"
for math in fp32 tf32; do
  label=libfernn
  [ "$math" = fp32 ] || label=libfernn-$math
  bench "$label" env FER_CUDA_MATH=$math "$build/tests/bench/bench-cpu" \
      --backend cuda --model "$model" --faces 1,8,64,256 --tta 1,5 --seconds 1
done
say "benchmark: libfernn cuda training (default TF32, then FP32)"
bench libfernn "$build/tests/bench/bench-train" --backend cuda --batch 256 \
    --seconds 5
bench libfernn-fp32 env FER_CUDA_MATH=fp32 "$build/tests/bench/bench-train" \
    --backend cuda --batch 256 --seconds 3
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
    > /dev/null 2>&1; then
  say "benchmark: PyTorch cuda"
  python3 tests/gpu/bench_torch.py --model "$model" --faces 1,8,64,256 \
      --tta 1,5 --batch 256 --seconds 1 \
      > "$out/bench-torch.jsonl" 2> "$out/bench-torch.err"
else
  say "benchmark: no PyTorch with CUDA here, libfernn only"
  : > "$out/bench-torch.jsonl"
fi

# 4. table
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
python3 - "$out" "$tests_line" "${gpu:-no GPU found}" > "$out/summary.md" <<'PY'
import json, os, sys
out, tests, gpu = sys.argv[1], sys.argv[2], sys.argv[3]
def rows(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return []
    return [json.loads(l) for l in open(p) if l.startswith("{")]
ours, theirs = rows("bench-fernn.jsonl"), rows("bench-torch.jsonl")
print("GPU: %s; GPU tests: %s" % (gpu, tests))
log = os.path.join(out, "gpu-tests.log")
fails = [l.rstrip() for l in open(log) if l.startswith("FAIL")] if os.path.exists(log) else []
for l in fails[:12]:
    print("  " + l[:160])
print()
print("| TTA | faces | libfernn classify faces/s | libfernn forward faces/s | libfernn forward TF32 | PyTorch faces/s | forward ratio (TF32) |")
print("|---|---|---|---|---|---|---|")
def find(rows, impl, r):
    return next((x for x in rows if x.get("impl") == impl and x.get("tta") == r["tta"]
                 and x.get("faces") == r["faces"]), None)
for r in ours:
    if "tta" not in r or r["impl"] != "libfernn":
        continue
    t, t32 = find(theirs, "pytorch", r), find(ours, "libfernn-tf32", r)
    fwd = r["forward_views_per_s"] / r["tta"]
    fwd32 = t32["forward_views_per_s"] / r["tta"] if t32 else None
    best = fwd32 or fwd
    print("| %d | %d | %.0f | %.0f | %s | %s | %s |" % (
        r["tta"], r["faces"], r["faces_per_s"], fwd,
        "%.0f" % fwd32 if fwd32 else "-",
        "%.0f" % t["faces_per_s"] if t else "-",
        "%.2f" % (best / t["faces_per_s"]) if t else "-"))
print()
print("| training, batch 256 | images/s |")
print("|---|---|")
for r in ours + theirs:
    if "images_per_s" in r:
        print("| %s (%s) | %.0f |" % (r["impl"], r.get("backend", "cuda"), r["images_per_s"]))
PY
say "done ($status)"
cat "$out/summary.md"
exit $status
