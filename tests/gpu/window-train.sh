#!/bin/sh
# Step 4 of the GPU window (tests/gpu/check.sh): trains the `small` stem
# accurate recipe (docs/training.md, issue 9's pilots, at batch 128 with
# the learning rate scaled to it) on the packed FER2013 train set for a
# fixed time budget, evaluates the best epoch on PublicTest with 1 and 10
# views (fer-train's own report), and stores the F16 weights in $OUT as
# parts under 16 MiB, a sha256 and a join script, then rejoins, checks and
# loads them as whoever fetches them will.
#
# Usage: sh tests/gpu/window-train.sh BUILDDIR WORKDIR OUTDIR BACKEND SECONDS
# FER_GPU_DRY=1: a tiny pack made here (the first 4 images of each class of
# $FER_DATA_DIR or ../shared/data/fer2013, or generated images without it)
# and --epochs 2 (the budget stops it after 1). FER_GPU_TRAIN_ARGS: more fer-train options (last wins).
set -eu
build=$1 work=$2 out=$3 backend=$4 budget=$5
dry=${FER_GPU_DRY:-0}
tools=$build/nn/tools
name=feremotion-resnet18-fer2013-gpu
pack=${FER_GPU_PACK:-gpu-data/fer2013.ferpack}
say () { echo "window-train [$(date +%H:%M:%S)] $*"; }

if [ "$dry" = 1 ]; then
  pack=$work/tiny.ferpack
  data=${FER_DATA_DIR:-../shared/data/fer2013}
  if [ -d "$data/train" ] && [ -d "$data/publictest" ]; then
    say "dry run: a tiny pack of $data"
    "$tools/fer-pack" --out "$pack" --max-per-class 4 \
        "train=$data/train:2" "publictest=$data/publictest"
  else
    say "dry run: no FER2013 at $data; a tiny pack of generated images"
    for set in train publictest; do
      for label in angry disgust fear happy neutral sad surprise; do
        mkdir -p "$work/gen/$set/$label"
        for i in 0 1 2; do
          "$tools/fer-test-mkimage" gray $((40 + i)) $((44 + ${#label})) \
              "$work/gen/$set/$label/$i.png"
        done
      done
    done
    "$tools/fer-pack" --out "$pack" "train=$work/gen/train:2" \
        "publictest=$work/gen/publictest"
  fi
fi
if [ ! -f "$pack" ]; then
  say "no packed data at $pack: make it with sh tests/gpu/pack-data.sh and" \
      "carry gpu-data (docs/gpu.md)"
  exit 1
fi

# The recipe: issue 9's pilots (SGD Nesterov, crops 44, ten-crop TTA), the
# `small` stem, batch 128 at lr 0.02; --epochs is a cap that --time-budget
# lowers to what fits. `timeout` ends a run that overshoots by a minute.
run=$work/run
epochs=300
[ "$dry" = 1 ] && epochs=2
say "fer-train --backend $backend --time-budget $budget"
# shellcheck disable=SC2086
timeout $((budget + 120)) "$tools/fer-train" --pack "$pack" --stem small \
    --backend "$backend" --no-class-weights --label-smoothing 0.1 \
    --schedule cosine --warmup 1 --crop 44 --rotate 10 --scale 0.1 \
    --translate 0.05 --jitter 0.2 --erase 0.25 --patience 0 --tta 10 \
    --seed 1 --optimizer sgd --nesterov --momentum 0.9 --lr 0.02 \
    --weight-decay 5e-4 --batch 128 --epochs $epochs --time-budget "$budget" \
    ${FER_GPU_TRAIN_ARGS:-} --out "$run" > "$work/logs/fer-train.out" 2>&1 \
  || { say "fer-train failed:"; tail -n 20 "$work/logs/fer-train.out"; exit 1; }
for f in metrics.csv curves.png confusion.png report.md train.log run.json; do
  cp "$run/$f" "$work/logs/" 2>/dev/null || say "note: no $f in the run"
done
grep -E '^(best epoch|validation accuracy)' "$work/logs/fer-train.out"

# The weights: F16, in parts under 16 MiB, a checksum and a join script.
"$tools/fer-convert" --dtype f16 "$run/best.safetensors" "$work/$name.safetensors"
rm -f "$out"/weights.part-*
split -b 15M -d -a 2 "$work/$name.safetensors" "$out/weights.part-"
(cd "$work" && sha256sum "$name.safetensors") > "$out/weights.sha256"
cat > "$out/join-weights.sh" <<EOF
#!/bin/sh
# Rejoins the parts of $name.safetensors (F16) in this folder and checks
# them against weights.sha256. Usage: sh join-weights.sh
set -e
cd "\$(dirname "\$0")"
cat weights.part-* > $name.safetensors
sha256sum -c weights.sha256
EOF
parts=$(ls "$out"/weights.part-* | wc -l)
say "weights: $parts part(s), $(wc -c < "$work/$name.safetensors") bytes"

# Rejoined as the fetcher will: the checksum, then a load (fer-convert
# loads what it writes).
mkdir -p "$work/rejoin"
cp "$out"/weights.part-* "$out/weights.sha256" "$out/join-weights.sh" \
    "$work/rejoin/"
sh "$work/rejoin/join-weights.sh"
"$tools/fer-convert" --dtype f16 "$work/rejoin/$name.safetensors" \
    "$work/rejoin/check.safetensors" > /dev/null
cmp "$work/$name.safetensors" "$work/rejoin/$name.safetensors"
say "weights rejoined, checksum and load OK"
