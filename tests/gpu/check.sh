#!/bin/sh
# The GPU window: everything one short lease of an NVIDIA GPU (one H100 or
# H200, at most ~9 minutes) should prove and produce, in one run
# (docs/gpu.md says how to start it and what comes back):
#   1. builds the project with -Dcuda=enabled for the GPU present
#      (-Dnvcc_arch=native, or $FER_CUDA_ARCH), warnings as errors;
#   2. runs the GPU tests (suite cuda: every op against the CPU backend,
#      the whole network, the first training steps, the element with
#      backend=cuda) and the backend-selection tests;
#   3. benchmarks inference (faces/s through fer_model_classify and the bare
#      forward, TTA 1 and 5, 1..256 faces; exact FP32, TF32 and FP16, the
#      last being FER_CUDA_MATH=fp16's half-precision convolutions) and training
#      (images/s, batch 256 torchvision stem, batch 128 small stem), then
#      the same with PyTorch on the same GPU and weights when python3's
#      torch sees the GPU (else says so and skips only that);
#   4. with the time left, trains the `small` stem (its own GPU recipe, docs/gpu.md) on
#      FER2013 train (the packed file of tests/gpu/pack-data.sh, carried in
#      gpu-data/) with fer-train --backend cuda --time-budget, evaluates the
#      best epoch on PublicTest with 1 and 10 views (fer-train's report),
#      and stores its F16 weights in parts under 16 MiB with a sha256 and a
#      join script (tests/gpu/window-train.sh);
#   5. prints the summary table last.
#
# What comes back ($OUT; the device tool returns at most 8 files of at
# most 16 MiB, so everything else is in one archive, refreshed after every
# step so that a run cut short still returns its logs):
#   summary.md        the tables
#   results.tar.gz    logs, benchmark JSON lines, the training run's
#                     metrics.csv, curves.png, confusion.png, report.md
#   weights.part-NN, weights.sha256, join-weights.sh   the trained model
#
# The working tree that travels must stay under 64 MiB: the tree itself is
# ~24 MiB (the shipped model is 22 MiB of it; the accurate model, another
# 22 MiB, is moved out of the tree for the run: docs/gpu.md) and gpu-data/fer2013.ferpack
# ~36 MiB (pack-data.sh checks the sum); build directories are ignored and
# never travel (the build is made there).
#
# FER_GPU_DRY=1: the same steps on the CPU backend, for CI (the meson test
# gpu-window-dry): the given build directory is used as it is, the GPU
# tests skip, the benchmarks and PyTorch run tiny cases on the CPU, and the
# training uses a tiny pack (FER2013's first images of each class, or
# generated images without FER2013) and a 1-second budget; the weights are
# split, rejoined, checked and loaded, and the table printed.
#
# Usage: sh tests/gpu/check.sh [BUILDDIR]   (default build-gpu)
# Environment: OUT (default: a temporary folder), FER_GPU_WINDOW_SECONDS
# (default 540: the whole run), FER_GPU_PACK (default
# gpu-data/fer2013.ferpack), FER_GPU_DRY.
# Exit status: 0 when every step worked (the build, every GPU test, the
# benchmarks, the training, the weights).
set -u
cd "$(dirname "$0")/../.."
src=$PWD
build=${1:-build-gpu}
case $build in /*) ;; *) build=$src/$build ;; esac
dry=${FER_GPU_DRY:-0}
window=${FER_GPU_WINDOW_SECONDS:-540}
out=${OUT:-$(mktemp -d /tmp/fer-gpu-window.XXXXXX)}
work=$(mktemp -d /tmp/fer-gpu-work.XXXXXX)
mkdir -p "$out" "$work/logs"
status=0
t_start=$(date +%s)
backend=cuda
[ "$dry" = 1 ] && backend=cpu
py=python3
[ "$dry" = 1 ] && [ -x /usr/bin/python3 ] && py=/usr/bin/python3

elapsed () { echo $(( $(date +%s) - t_start )); }
say () { echo "check.sh [$(elapsed)s] $*" | tee -a "$work/logs/check.log"; }
# The archive and the table in $OUT, as they are now.
publish () {
  tar -czf "$out/results.tar.gz" -C "$work" logs 2>/dev/null
  [ -f "$work/summary.md" ] && cp "$work/summary.md" "$out/summary.md"
}

say "window of ${window}s; results in $out; backend $backend$( [ "$dry" = 1 ] && echo ' (dry run)')"
{ nvidia-smi; nvcc --version; uname -a; nproc
  for p in glib-2.0 gstreamer-1.0 gstreamer-video-1.0 json-glib-1.0 cairo \
      libjpeg libpng openblas cudnn; do
    echo "$p: $(pkg-config --modversion $p 2>&1)"
  done
  $py -c 'import torch; print("torch", torch.__version__, torch.cuda.is_available())'
} > "$work/logs/machine.txt" 2>&1

# 1. build
if [ "$dry" = 1 ] && [ -f "$build/build.ninja" ]; then
  say "build: dry run, using the built tree $build"
else
  say "build ($build)"
  cuda=enabled
  [ "$dry" = 1 ] && cuda=auto
  arch=${FER_CUDA_ARCH:-native}
  if ! { meson setup "$build" --reconfigure -Dcuda=$cuda -Dnvcc_arch="$arch" \
          -Dwerror=true \
        || meson setup "$build" -Dcuda=$cuda -Dnvcc_arch="$arch" \
          -Dwerror=true; } > "$work/logs/build.log" 2>&1 \
      || ! meson compile -C "$build" >> "$work/logs/build.log" 2>&1; then
    say "BUILD FAILED: tail of build.log:"
    tail -n 40 "$work/logs/build.log"
    publish
    exit 1
  fi
fi
tools=$build/nn/tools
publish

# 2. tests (--logbase: a dry run inside `meson test` keeps the outer log)
say "GPU tests"
meson test -C "$build" --no-rebuild --logbase gpu-window --suite cuda \
    --print-errorlogs --num-processes 1 -v > "$work/logs/gpu-tests.log" 2>&1 \
  || status=1
# on the GPU, a suite that skipped (no device visible) proves nothing
if [ "$dry" != 1 ] && ! grep -q '^Skipped: *0 *$' "$work/logs/gpu-tests.log"; then
  say "GPU tests skipped: the device is not visible to them"
  status=1
fi
meson test -C "$build" --no-rebuild --logbase gpu-window-select \
    --print-errorlogs backend-select $( [ -f "$build/tests/nn/test-cuda-host" ] \
      && echo cuda-host) > "$work/logs/select-tests.log" 2>&1 || status=1
tests_line=$(grep -E '^(Ok|Fail|Skipped|Timeout):' "$work/logs/gpu-tests.log" \
  "$work/logs/select-tests.log" | sed 's/.*log://' | tr -s ' ' | tr '\n' ' ')
say "GPU tests: $tests_line"
publish

# 3. benchmarks
model="$work/bench-model.safetensors"
small="$work/bench-small.safetensors"
"$tools/fer-init" --out "$model" --seed 1 > /dev/null || status=1
"$tools/fer-init" --out "$small" --seed 1 --stem small > /dev/null || status=1
# bench LABEL COMMAND...: COMMAND's JSON lines, "impl" renamed to LABEL
bench () {
  label=$1
  shift
  "$@" > "$work/bench.tmp" 2>> "$work/logs/bench-fernn.err" || {
    say "benchmark failed: $*"; status=1; }
  sed "s/\"impl\": \"libfernn\"/\"impl\": \"$label\"/" "$work/bench.tmp" \
      >> "$work/logs/bench-fernn.jsonl"
  rm -f "$work/bench.tmp"
}
: > "$work/logs/bench-fernn.jsonl"
if [ "$dry" = 1 ]; then
  faces=1,4 ttas=1,5 secs=0.05 tsecs=0.5 batch=4 sbatch=2
else
  faces=1,8,64,256 ttas=1,5 secs=1 tsecs=4 batch=256 sbatch=128
fi
say "benchmark: libfernn $backend inference (FP32, TF32, then FP16)"
for math in fp32 tf32 fp16; do
  label=libfernn
  [ "$math" = fp32 ] || label=libfernn-$math
  bench "$label" env FER_CUDA_MATH=$math "$build/tests/bench/bench-cpu" \
      --backend $backend --model "$model" --faces $faces --tta $ttas \
      --seconds $secs
done
say "benchmark: libfernn $backend training (default TF32, then FP32; small stem)"
bench libfernn "$build/tests/bench/bench-train" --backend $backend \
    --batch $batch --seconds $tsecs
bench libfernn-fp32 env FER_CUDA_MATH=fp32 "$build/tests/bench/bench-train" \
    --backend $backend --batch $batch --seconds $tsecs
bench libfernn-small "$build/tests/bench/bench-train" --backend $backend \
    --stem small --batch $sbatch --seconds $tsecs
: > "$work/logs/bench-torch.jsonl"
torch_device=cuda
[ "$dry" = 1 ] && torch_device=cpu
if $py -c "import torch, sys; sys.exit(0 if '$torch_device' == 'cpu' or torch.cuda.is_available() else 1)" \
    > /dev/null 2>&1; then
  say "benchmark: PyTorch $torch_device"
  $py tests/gpu/bench_torch.py --device $torch_device --model "$model" \
      --faces $faces --tta $ttas --batch $batch --seconds $secs \
      >> "$work/logs/bench-torch.jsonl" 2>> "$work/logs/bench-torch.err" \
    || { say "PyTorch benchmark failed (bench-torch.err)"; status=1; }
else
  say "benchmark: no PyTorch with CUDA on this machine ($py): libfernn only"
fi
publish

# 4. training, evaluation and the weights (window-train.sh)
budget=$(( window - $(elapsed) - 90 ))
[ "$dry" = 1 ] && budget=1
if [ "$budget" -lt 30 ] && [ "$dry" != 1 ]; then
  say "training skipped: only $(( window - $(elapsed) ))s of the window left"
  status=1
else
  say "training: small stem, $backend, budget ${budget}s"
  FER_GPU_DRY=$dry sh tests/gpu/window-train.sh "$build" "$work" "$out" \
      "$backend" "$budget" >> "$work/logs/check.log" 2>&1 \
    || { say "TRAINING STEP FAILED (check.log in results.tar.gz)"; status=1; }
  tail -n 5 "$work/logs/check.log"
fi

# 5. table
gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
[ "$dry" = 1 ] && gpu="none (dry run on the CPU backend: $(nproc) cores)"
$py tests/gpu/summary.py "$work" "$tests_line" "${gpu:-no GPU found}" \
    > "$work/summary.md" || status=1
say "done ($status) in $(elapsed)s"
publish
cat "$work/summary.md"
if [ "$dry" = 1 ] && [ "$status" = 0 ] && [ -z "${OUT:-}" ]; then
  rm -rf "$out" "$work"
else
  rm -rf "$work"
fi
exit $status
