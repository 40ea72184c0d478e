#!/usr/bin/env bash
# fer-train end to end (TAP): on a generated image-folder dataset (four
# classes of 48x48 gray PNGs, each with its own bright shape on a noisy
# background) a 2-epoch run must beat chance, write every file of its run
# directory, and its best checkpoint must load in fer-eval with the accuracy
# fer-train reported. A run stopped after one epoch and resumed must repeat
# the uninterrupted run bit for bit (metrics and checkpoints). Bad input
# (missing or empty folders, an unreadable image, bad CSV rows, a recipe
# change on resume) must give a clear message and the documented status.
# With --ema the average is what is validated and kept as best, and it
# resumes bit for bit too; so does a --teacher run, whose targets must be
# the teacher's fer-classify probabilities.
#
# Environment: FER_TOOLS_DIR (build/nn/tools, required), PYTHON (default
# python3, standard library only: it writes the PNGs and CSVs).
set -u

tools=${FER_TOOLS_DIR:?FER_TOOLS_DIR must name the build directory of the tools}
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

if ! "$py" -c 'import zlib, struct' 2>/dev/null; then
  echo "1..0 # SKIP $py is needed to write the test images"
  exit 0
fi

. "$here/tools-tap.sh"

# ---- data -----------------------------------------------------------------

# train_data.py: four classes of 48x48 gray PNGs (an image-folder tree), or
# a fer2013.csv with 3 Training and 1 PublicTest row per emotion and 1
# PrivateTest row (with `bad`: one malformed row after line 5).

"$py" "$here/train_data.py" tree train 40 1 && "$py" "$here/train_data.py" tree val 16 2 \
  && "$py" "$here/train_data.py" tree tiny 4 3 2
check "the synthetic dataset was written" test -s train/square/039.png -a -s val/band_top/015.png

# ---- a 2-epoch run ------------------------------------------------------------

common="--data train --val val --epochs 2 --batch 16 --threads 2 --seed 3 --tta 2"
run "$tools/fer-train" $common --out runA
check "fer-train runs 2 epochs (status 0)" test "$status" -eq 0

missing=
for f in best.safetensors last.safetensors last.state metrics.csv curves.png \
    confusion.png report.md train.log run.json; do
  [ -s "runA/$f" ] || missing="$missing $f"
done
check "the run directory holds every file (missing:${missing:- none})" test -z "$missing"
check "no staging files are left" test -z "$(ls runA | grep '\.epoch-')"

rows=$(tail -n +2 runA/metrics.csv 2>/dev/null | wc -l)
check "metrics.csv has its header and 2 epoch rows" \
  eval '[ "$(head -1 runA/metrics.csv)" = "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds" ] && [ "$rows" -eq 2 ]'

# Chance is 0.25 for four balanced classes.
best=$(tail -n +2 runA/metrics.csv | cut -d, -f6 | sort -g | tail -1)
check "validation accuracy rises above chance (best ${best:-none}, chance 0.25)" \
  awk -v a="${best:-0}" 'BEGIN { exit !(a > 0.4) }'

png_ok () { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
check "curves.png and confusion.png are PNG files" \
  eval 'png_ok runA/curves.png && png_ok runA/confusion.png'

check "report.md has the seed report's sections" eval \
  'for s in "## Accuracy on the validation set" "TTA (2 views)" "macro avg" \
     "weighted avg" "## Most confused classes" "](curves.png)" "](confusion.png)"; do
     grep -qF "$s" runA/report.md || exit 1; done'

plain=$(sed -n 's/^validation accuracy: \([0-9.]*\) plain.*/\1/p' out)
run "$tools/fer-eval" --model runA/best.safetensors --data val --threads 2 --json
eval_acc=$(sed -n 's/.*"accuracy" *: *\([0-9.e-]*\).*/\1/p' out | head -1)
check "best.safetensors loads in fer-eval and scores what fer-train reported (${eval_acc:-none} vs ${plain:-none})" \
  eval '[ "$status" -eq 0 ] && awk -v a="${eval_acc:-x}" -v b="${plain:-y}" "BEGIN { exit !(a - b < 0.00006 && b - a < 0.00006) }"'

# ---- resume -----------------------------------------------------------------

run "$tools/fer-train" $common --out runB --stop-after-epochs 1
check "--stop-after-epochs 1 stops after one epoch and says how to go on" \
  eval '[ "$status" -eq 0 ] && [ "$(tail -n +2 runB/metrics.csv | wc -l)" -eq 1 ] && grep -qF -- "--resume runB" err && [ ! -e runB/report.md ]'

# What an epoch killed before its commit leaves behind.
echo partial >runB/last.safetensors.epoch-2
echo partial >runB/best.safetensors.epoch-2
echo partial >runB/metrics.csv.Ab3xQ9 # g_file_set_contents's temporary
echo mine >runB/best.safetensors.backup # a user's copy: kept
run "$tools/fer-train" --resume runB
check "--resume continues to the end and removes the killed epoch's files" \
  eval '[ "$status" -eq 0 ] && grep -q "removing runB/last.safetensors.epoch-2" err && [ ! -e runB/last.safetensors.epoch-2 ] && [ ! -e runB/metrics.csv.Ab3xQ9 ] && [ -s runB/report.md ]'
check "--resume keeps a user's file that only looks like a temporary one" \
  eval '[ "$(cat runB/best.safetensors.backup)" = mine ]'
rm runB/best.safetensors.backup
check "the resumed run's metrics.csv equals the uninterrupted run's (seconds aside)" \
  eval 'cmp -s <(cut -d, -f1-6 runA/metrics.csv) <(cut -d, -f1-6 runB/metrics.csv)'
check "the resumed run's checkpoints and optimizer state are bit-identical" \
  eval 'cmp -s runA/last.safetensors runB/last.safetensors && cmp -s runA/best.safetensors runB/best.safetensors && cmp -s runA/last.state runB/last.state'

# A real kill: SIGKILL as soon as epoch 1 is committed, i.e. during epoch 2
# (or, on a very fast machine, just after it; the outcome must not differ).
"$tools/fer-train" $common --out runC >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1200); do
  [ "$(tail -n +2 runC/metrics.csv 2>/dev/null | wc -l)" -ge 1 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
run "$tools/fer-train" --resume runC
check "a run killed with SIGKILL during epoch 2 resumes to the uninterrupted result" \
  eval '[ "$status" -eq 0 ] && cmp -s <(cut -d, -f1-6 runA/metrics.csv) <(cut -d, -f1-6 runC/metrics.csv) && cmp -s runA/best.safetensors runC/best.safetensors && cmp -s runA/last.state runC/last.state'

# ---- --ema and SGD's defaults --------------------------------------------------

# The weights' average: validated, saved as best.safetensors, kept in
# last.state, resumed bit for bit. SGD without --lr/--weight-decay/--nesterov
# takes lr 0.1 x 16 / 256, weight decay 5e-4 and Nesterov momentum.
ema="--optimizer sgd --ema 0.9"
run "$tools/fer-train" $common $ema --out runE
check "an --ema run finishes and states SGD's defaults and the decay in its recipe" \
  eval '[ "$status" -eq 0 ] && grep -q "recipe: .*optimizer=sgd lr=0.00625 weight-decay=0.0005 momentum=0.9 nesterov=yes .* ema=0.9 " err'
plain=$(sed -n 's/^validation accuracy: \([0-9.]*\) plain.*/\1/p' out)
run "$tools/fer-eval" --model runE/best.safetensors --data val --threads 2 --json
eval_acc=$(sed -n 's/.*"accuracy" *: *\([0-9.e-]*\).*/\1/p' out | head -1)
check "best.safetensors of an --ema run scores what fer-train reported (${eval_acc:-none} vs ${plain:-none})" \
  eval '[ "$status" -eq 0 ] && awk -v a="${eval_acc:-x}" -v b="${plain:-y}" "BEGIN { exit !(a - b < 0.00006 && b - a < 0.00006) }"'
check "best.safetensors holds the average, not the live weights of last.safetensors" \
  eval '! cmp -s runE/best.safetensors runE/last.safetensors'
check "last.state keeps the average (ema.* tensors, fer.state.ema_decay)" \
  eval 'head -c 200000 runE/last.state | grep -q "ema.conv1.weight" && head -c 200000 runE/last.state | grep -q "fer.state.ema_decay"'
run "$tools/fer-train" $common $ema --out runF --stop-after-epochs 1
run "$tools/fer-train" --resume runF
check "a resumed --ema run equals the uninterrupted one bit for bit" \
  eval '[ "$status" -eq 0 ] && cmp -s <(cut -d, -f1-6 runE/metrics.csv) <(cut -d, -f1-6 runF/metrics.csv) && cmp -s runE/best.safetensors runF/best.safetensors && cmp -s runE/last.state runF/last.state'
run "$tools/fer-train" $common --ema 1 --out runG
check "--ema 1 is refused, naming the option (status 2)" \
  failed_naming 2 "--ema" "below 1"

run "$tools/fer-train" --resume runB --lr 0.5
check "--resume refuses a recipe change, naming it (status 2)" \
  failed_naming 2 "changes the run's recipe" "lr=0.5"

run "$tools/fer-train" $common --out runA
check "a new run refuses a directory that holds one (status 2)" \
  failed_naming 2 "runA already holds a run" "--resume runA"

# --init from a model trained on crops: the new model, trained here on
# whole images, does not inherit the crop size (or the input size)
"$tools/fer-init" --classes 4 \
  --meta fer.labels=band_bottom,band_top,band_vertical,square \
  --meta fer.crop_size=40 --out init-crop.safetensors >/dev/null 2>&1
run "$tools/fer-train" $common --init init-crop.safetensors --out runI
check "--init: the model keeps the init's labels, not its crop size" \
  eval '[ "$status" -eq 0 ] && "$py" - runI/best.safetensors <<EOF
import json, struct, sys
f = open(sys.argv[1], "rb")
n = struct.unpack("<Q", f.read(8))[0]
meta = json.loads(f.read(n))["__metadata__"]
assert "fer.crop_size" not in meta, meta
assert meta["fer.labels"] == "band_bottom,band_top,band_vertical,square", meta
EOF'

# ---- --teacher: distillation from a model's probabilities -----------------

# runA's best model teaches: its 2-view probabilities for every training
# image are computed once, kept in teacher-targets.bin, and must be what
# fer-classify gives for the same images; a resumed run reuses them (and
# recomputes them when the file is damaged) and repeats the uninterrupted
# run bit for bit.
teach="--teacher runA/best.safetensors --teacher-weight 0.6 --teacher-tta 2"
run "$tools/fer-train" $common $teach --out runT
check "a --teacher run finishes and states the teacher in its recipe" \
  eval '[ "$status" -eq 0 ] && grep -q "recipe: .* teacher=runA/best.safetensors teacher-weight=0.6 teacher-tta=2 " err && grep -q "teacher: its top class is the label on" err'
check "teacher-targets.bin holds 160 images x 4 classes after its header" \
  test "$(wc -c <runT/teacher-targets.bin)" -eq $((32 + 160 * 4 * 4))
find train -name '*.png' | LC_ALL=C sort >train.txt
xargs -a train.txt "$tools/fer-classify" --model runA/best.safetensors --tta 2 \
  --threads 2 --json >teacher.jsonl 2>/dev/null
check "the targets are fer-classify's probabilities for the same images" \
  "$py" - runT/teacher-targets.bin teacher.jsonl <<'EOF'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"FERSOFT1", b[:8]
n, k, views = struct.unpack("<iii", b[16:28])
assert (n, k, views) == (160, 4, 2), (n, k, views)
rows = [struct.unpack("<4f", b[32 + 16 * i:48 + 16 * i]) for i in range(n)]
ref = [json.loads(l)["probabilities"] for l in open(sys.argv[2])]
ref = [[r[c] for c in sorted(r)] if isinstance(r, dict) else r for r in ref]
assert len(ref) == n, len(ref)
err = max(abs(a - b) for x, y in zip(rows, ref) for a, b in zip(x, y))
print("# max |target - fer-classify| = %.2e" % err)
assert err < 1e-5, err
EOF
check "distillation changes the training (runT's weights differ from runA's)" \
  eval '! cmp -s runA/last.safetensors runT/last.safetensors'
run "$tools/fer-train" $common $teach --out runU --stop-after-epochs 1
run "$tools/fer-train" --resume runU
check "a resumed --teacher run reuses the run's targets and repeats the uninterrupted run bit for bit" \
  eval '[ "$status" -eq 0 ] && grep -q "teacher: the run.s targets from runU/teacher-targets.bin" err && cmp -s runT/best.safetensors runU/best.safetensors && cmp -s runT/last.state runU/last.state'
run "$tools/fer-train" $common $teach --out runV --stop-after-epochs 1
head -c 100 runV/teacher-targets.bin >cut && mv cut runV/teacher-targets.bin
run "$tools/fer-train" --resume runV
check "a cut-short targets file is named and computed again; the run still repeats" \
  eval '[ "$status" -eq 0 ] && grep -q "note: runV/teacher-targets.bin has 100 bytes, expected 2592; running the teacher again" err && cmp -s runT/last.state runV/last.state'
run "$tools/fer-train" $common $teach --out runW --stop-after-epochs 1
rm runW/teacher-targets.bin
run "$tools/fer-train" --resume runW
check "a missing targets file is named and computed again; the run still repeats" \
  eval '[ "$status" -eq 0 ] && grep -q "note: runW/teacher-targets.bin is missing; running the teacher again (the run repeats an uninterrupted one only if --teacher runA/best.safetensors is still the same model)" err && cmp -s runT/last.state runW/last.state'
run "$tools/fer-train" $common --teacher-weight 0.5 --out badT1
check "--teacher-weight without --teacher is a usage error (status 2)" \
  failed_naming 2 "--teacher-weight and --teacher-tta apply with --teacher only"
run "$tools/fer-train" $common --teacher runA/best.safetensors --teacher-weight 0 --out badT2
check "--teacher-weight 0 is refused, naming the range (status 2)" \
  failed_naming 2 "--teacher-weight '0': expected a number above 0 and at most 1"
run "$tools/fer-train" $common --teacher no-such-model --out badT3
check "a teacher that does not exist is named (status 1, no run left)" \
  eval 'failed_naming 1 "no-such-model" && [ ! -e badT3/run.json ]'
"$tools/fer-init" --classes 3 --out three.safetensors >/dev/null 2>&1
run "$tools/fer-train" $common --teacher three.safetensors --out badT4
check "a teacher with other labels is refused, naming both lists (status 1)" \
  failed_naming 1 "--teacher three.safetensors has the labels" "the run's are band_bottom,band_top,band_vertical,square"

# a run file that is JSON but not a run's: refused, never a crash
for bad in options labels; do
  cp -r runA "runbad-$bad"
  "$py" - "runbad-$bad/run.json" "$bad" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
if sys.argv[2] == "options":
    d["options"] = [[1, "d"]] + d["options"]
else:
    d["labels"] = d["labels"][:1] + [7] + d["labels"][1:]
json.dump(d, open(sys.argv[1], "w"))
EOF
  run "$tools/fer-train" --resume "runbad-$bad"
  case $bad in
    options) want="option 0 is not a" ;;
    *) want="label 1 is not a string" ;;
  esac
  check "--resume refuses a run.json whose $bad are not strings (status 2)" \
    failed_naming 2 "$want"
done

# ---- bad input -------------------------------------------------------------

quick="--epochs 1 --batch 4 --threads 2 --tta 1"

run "$tools/fer-train" --data no-such-dir --val val $quick --out bad1
check "a missing data directory is named (status 1, no run directory left)" \
  eval 'failed_naming 1 "no-such-dir does not exist" && [ ! -e bad1 ]'

mkdir empty
run "$tools/fer-train" --data empty --val val $quick --out bad2
check "a data directory without label folders is named (status 1)" \
  failed_naming 1 "empty has no label folders"

mkdir -p emptylabel/a emptylabel/b && cp tiny/band_top/000.png emptylabel/a/
run "$tools/fer-train" --data emptylabel --val-split 0.5 $quick --out bad3
check "an empty label folder is named (status 1)" \
  failed_naming 1 "emptylabel/b has no *.jpg, *.jpeg or *.png images"

mkdir -p "ctrl/a" "$(printf 'ctrl/b\tc')" && cp tiny/band_top/000.png ctrl/a/ \
  && cp tiny/band_top/000.png "$(printf 'ctrl/b\tc')/"
run "$tools/fer-train" --data ctrl --val-split 0.5 $quick --out bad6
check "a label folder with a control character is refused, quoted (status 1)" \
  failed_naming 1 "label folder 'b?c' has a control character"

# option values are bytes: a UTF-8 name that is not ASCII is taken as it
# is (GLib used to convert it from the C locale's ASCII and refuse it), one
# that is not UTF-8 is refused, quoted
mkdir -p "donnée/a" "donnée/b"
run "$tools/fer-train" --data "donnée" --val-split 0.5 $quick --out bad9
check "--data with a UTF-8 name that is not ASCII gets to the data (status 1)" \
  failed_naming 1 "label folder donnée/a has no"
run "$tools/fer-train" --data "$(printf 'd\376')" --val-split 0.5 $quick --out bad10
check "an option value that is not UTF-8 is refused, quoted (status 2)" \
  failed_naming 2 "--data 'd\\xFE' is not valid UTF-8"

mkdir -p single/a single/b && cp tiny/band_top/000.png single/a/ \
  && cp tiny/band_top/000.png single/b/
run "$tools/fer-train" --data single --val-split 0.1 $quick --out bad8
check "a validation split that leaves no image is refused (status 1, no NaN run)" \
  eval 'failed_naming 1 "validation split, seed 0)) has no images" && [ ! -e bad8/run.json ]'

mkdir -p comma/a comma/b,c && cp tiny/band_top/000.png comma/a/ \
  && cp tiny/band_top/000.png comma/b,c/
run "$tools/fer-train" --data comma --val-split 0.5 $quick --out bad7
check "a label folder with a comma is refused (status 1)" \
  failed_naming 1 "label folder 'b,c' has a comma"

cp -r tiny tinybroken && head -c 100 tiny/band_top/000.png >tinybroken/band_top/broken.png
run "$tools/fer-train" --data tinybroken --val tiny $quick --out ok1
check "an unreadable image is named, skipped and counted; training goes on" \
  eval 'failed_naming 0 "tinybroken/band_top/broken.png" "image skipped" "(band_bottom 4, band_top 4), 1 skipped"'

cp -r tiny tinyextra && mkdir tinyextra/unknown && cp tiny/band_top/000.png tinyextra/unknown/
run "$tools/fer-train" --data tiny --val tinyextra $quick --out bad4
check "a validation folder that is not a training label is named (status 1)" \
  failed_naming 1 "folder 'unknown' is not a label"

run "$tools/fer-train" --data tiny $quick --out bad5
check "--data without a validation set is a usage error (status 2)" \
  failed_naming 2 "--val DIR or --val-split F"

"$py" "$here/train_data.py" csv fer.csv bad
run "$tools/fer-train" --csv fer.csv $quick --out ok2
check "a bad CSV row is named by line, skipped and counted; training goes on" \
  eval 'failed_naming 0 "fer.csv:6: 3 pixel values, expected 2304" "row skipped" && grep -q "7 images (angry 1, disgust 1" err'

printf 'label,image\n1,2\n' >notfer.csv
run "$tools/fer-train" --csv notfer.csv $quick --out bad6
check "a CSV without fer2013's columns is refused, naming its header (status 1)" \
  failed_naming 1 "notfer.csv:1: header 'label,image' lacks the columns emotion and pixels"

echo "1..$n"
