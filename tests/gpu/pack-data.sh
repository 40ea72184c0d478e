#!/bin/sh
# Packs what the GPU window trains and evaluates on (FER2013 train and
# PublicTest, 48x48 gray) into one file, gpu-data/fer2013.ferpack, for the
# device tool to carry (carry: ["gpu-data"]; .gitignore keeps gpu-data/ out
# of git, and the device tool brings ignored paths only when carried).
#
# Why it is lossy for train: the working tree that travels is capped at
# 64 MiB. The tree is ~24 MiB (22 of them the shipped default model; the
# 22 MiB accurate model is moved out of the tree for the run, as the error
# below says, since the window does not use it); FER2013's
# 32,298 images are 74 MB raw and ~56 MB even coded losslessly (they hold
# about 6 bits of noise per pixel). So PublicTest is packed exactly (delta
# 0: the accuracy is measured on the true pixels) and train with every
# pixel within +-2 gray levels (delta 2, ~3.7 bits per pixel; far below the
# brightness/contrast jitter the recipe adds): ~36 MiB in all. The script
# adds the tree's size (tracked and untracked-not-ignored files) to the
# pack's and fails if the sum would not travel.
#
# Usage: sh tests/gpu/pack-data.sh [BUILDDIR] [FER2013DIR]
#   (defaults: build, ../shared/data/fer2013); FER_PACK_DELTA (default 2).
set -eu
cd "$(dirname "$0")/../.."
build=${1:-build}
data=${2:-../shared/data/fer2013}
delta=${FER_PACK_DELTA:-2}
cap=$((64 * 1024 * 1024))
mkdir -p gpu-data
"$build/nn/tools/fer-pack" --out gpu-data/fer2013.ferpack \
    "train=$data/train:$delta" "publictest=$data/publictest"
pack=$(wc -c < gpu-data/fer2013.ferpack)
tree=$(git ls-files -z --cached --others --exclude-standard \
  | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
echo "pack $pack bytes + working tree $tree bytes = $((pack + tree)) of $cap"
if [ $((pack + tree)) -ge $cap ]; then
  echo "pack-data.sh: over the 64 MiB the device tool carries; raise" \
       "FER_PACK_DELTA (now $delta) or make the tree smaller" >&2
  # The accurate model (22 MiB, tracked) is not used by the window: a
  # tracked file missing from the working tree does not travel.
  accurate=models/feremotion-resnet18-fer2013-accurate.safetensors
  if [ -f "$accurate" ]; then
    echo "pack-data.sh: the window does not use $accurate: move it out of" \
         "the tree for the device run (mv $accurate ../) and restore it" \
         "after (git checkout -- $accurate), then run this again" >&2
  fi
  exit 1
fi
