#!/usr/bin/env bash
# The fail-safe through the tools (TAP), on any machine: FER_CUDA_FAULT=
# init|selftest|runtime imitates a CUDA device that fails at that point.
# Under --backend auto, fer-classify, fer-eval and fer-train print exactly
# what --backend cpu prints on stdout, plus one warning on stderr that
# names the stage and the fault, and exit 0; under --backend cuda they exit
# 1 with the fault named. A bad FER_CUDA_FAULT value is an error.
#
# Environment: FER_TOOLS_DIR (build/nn/tools, required).
set -u

tools=${FER_TOOLS_DIR:?FER_TOOLS_DIR must name the build directory of the tools}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
. "$here/tools-tap.sh"

# what each fault's message says besides FER_CUDA_FAULT=<fault>
stage_init="failed to start"
stage_selftest="self-test"
stage_runtime="failed at run time"

# warned_once FAULT: stderr has exactly one warning, naming the fault and
# its stage.
warned_once ()
{
  local stage_var="stage_$1"
  [ "$(grep -c 'warning:' err)" -eq 1 ] \
    && grep 'warning:' err | grep -qF "FER_CUDA_FAULT=$1" \
    && grep 'warning:' err | grep -qF "${!stage_var}"
}

# refused FAULT: exit status 1, no warning, the fault named on stderr.
refused ()
{
  [ "$status" -eq 1 ] && ! grep -q 'warning:' err \
    && grep -qF "FER_CUDA_FAULT=$1" err
}

# ---- data -----------------------------------------------------------------

"$tools/fer-init" --out m.safetensors --randomize-bn --seed 4 >/dev/null
"$tools/fer-init" --out m2.safetensors --classes 2 --meta fer.labels=happy,sad \
  --stem small --seed 5 >/dev/null
for c in happy sad; do
  mkdir -p data/$c
  for i in 1 2 3; do
    "$tools/fer-test-mkimage" gray $((40 + 4 * i)) 48 data/$c/$i.png
  done
done
"$tools/fer-test-mkimage" rgb 60 50 face.png
check "models and images were written" test -s m.safetensors -a -s data/sad/3.png

# ---- fer-classify -------------------------------------------------------------

run "$tools/fer-classify" --backend cpu --threads 1 --model m.safetensors \
  face.png data/happy/1.png
cp out classify-cpu
check "fer-classify --backend cpu (the reference)" test "$status" -eq 0 -a -s out

for fault in init selftest runtime; do
  FER_CUDA_FAULT=$fault run "$tools/fer-classify" --backend auto --threads 1 \
    --model m.safetensors face.png data/happy/1.png
  check "FER_CUDA_FAULT=$fault fer-classify --backend auto: the CPU's output, one warning" \
    eval '[ "$status" -eq 0 ] && cmp -s out classify-cpu && warned_once $fault'
  FER_CUDA_FAULT=$fault run "$tools/fer-classify" --backend cuda --threads 1 \
    --model m.safetensors face.png
  check "FER_CUDA_FAULT=$fault fer-classify --backend cuda: exit 1 naming the fault" \
    refused $fault
done
FER_CUDA_FAULT=selftest run "$tools/fer-classify" --backend cuda \
  --model m.safetensors face.png
check "the self-test failure names the self-test and its tolerance" \
  grep -q "self-test.*tolerance" err

FER_CUDA_FAULT=sometimes run "$tools/fer-classify" --backend auto \
  --model m.safetensors face.png
check "a bad FER_CUDA_FAULT value: exit 1 naming the value and the choices" \
  eval '[ "$status" -eq 1 ] && grep -qF "FER_CUDA_FAULT='"'"'sometimes'"'"'" err && grep -q "init, selftest, runtime or nan" err'
FER_CUDA_FAULT=sometimes run "$tools/fer-classify" --backend cpu \
  --model m.safetensors face.png
check "--backend cpu ignores FER_CUDA_FAULT" cmp -s out <(head -1 classify-cpu)

# ---- fer-eval ---------------------------------------------------------------

run "$tools/fer-eval" --backend cpu --threads 1 --batch 2 --json \
  --model m.safetensors --data data
sed 's/"time":[^,}]*//; s/"seconds":[^,}]*//' out >eval-cpu
check "fer-eval --backend cpu (the reference)" test "$status" -eq 0 -a -s out

for fault in init selftest runtime; do
  FER_CUDA_FAULT=$fault run "$tools/fer-eval" --backend auto --threads 1 \
    --batch 2 --json --model m.safetensors --data data
  sed 's/"time":[^,}]*//; s/"seconds":[^,}]*//' out >eval-auto
  check "FER_CUDA_FAULT=$fault fer-eval --backend auto: the CPU's scores, one warning" \
    eval '[ "$status" -eq 0 ] && cmp -s eval-auto eval-cpu && warned_once $fault'
  FER_CUDA_FAULT=$fault run "$tools/fer-eval" --backend cuda --threads 1 \
    --model m.safetensors --data data
  check "FER_CUDA_FAULT=$fault fer-eval --backend cuda: exit 1 naming the fault" \
    refused $fault
done

# ---- fer-train --------------------------------------------------------------
# (a run-time fault is the failing step's error under every backend: the
# device's parameters cannot be trusted after it)

train="--data data --val data --epochs 1 --batch 2 --threads 1 --seed 2 --stem small --input-size 24 --tta 1"
for fault in init selftest; do
  FER_CUDA_FAULT=$fault run "$tools/fer-train" $train --backend auto \
    --out run-$fault
  check "FER_CUDA_FAULT=$fault fer-train --backend auto: trains on the CPU, one warning" \
    eval '[ "$status" -eq 0 ] && [ -s run-$fault/best.safetensors ] && warned_once $fault'
  FER_CUDA_FAULT=$fault run "$tools/fer-train" $train --backend cuda \
    --out run-cuda-$fault
  check "FER_CUDA_FAULT=$fault fer-train --backend cuda: exit 1 naming the fault" \
    refused $fault
done
run "$tools/fer-train" $train --backend cpu --out run-cpu
check "fer-train --backend auto after a fallback trains exactly as --backend cpu" \
  cmp -s run-cpu/best.safetensors run-selftest/best.safetensors
FER_CUDA_FAULT=runtime run "$tools/fer-train" $train --backend auto \
  --out run-runtime
check "FER_CUDA_FAULT=runtime fer-train: exit 1 naming the fault" \
  eval '[ "$status" -eq 1 ] && grep -qF "FER_CUDA_FAULT=runtime" err'

# FER_CUDA_MATH=fp16 is for inference: training on a device says so once
# (the imitation passes the self-test, so the run starts on "the device")
FER_CUDA_MATH=fp16 FER_CUDA_FAULT=runtime run "$tools/fer-train" $train \
  --backend cuda --out run-fp16
check "FER_CUDA_MATH=fp16 fer-train on the device: one warning, inference only" \
  eval '[ "$(grep -c "warning:" err)" -eq 1 ] && grep "warning:" err | grep -qF "FER_CUDA_MATH=fp16 applies to inference only"'
FER_CUDA_MATH=fp16 run "$tools/fer-train" $train --backend cpu --out run-fp16-cpu
check "FER_CUDA_MATH=fp16 fer-train --backend cpu: no warning" \
  eval '[ "$status" -eq 0 ] && ! grep -q "warning:" err'

echo "1..$n"
