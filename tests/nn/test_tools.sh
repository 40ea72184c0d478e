#!/usr/bin/env bash
# The command-line tools end to end (TAP): fer-init writes models,
# fer-test-mkimage writes every PNG/JPEG variant the decoder must handle,
# fer-classify and fer-eval run on them, and on broken input they must name
# the file and fail with status 1, never crash. With the FER2013 public test
# split present, fer-eval must count its images exactly.
#
# Environment: FER_TOOLS_DIR (build/nn/tools, required), FER_DATA_DIR
# (the fer2013 folder; optional), PYTHON (default python3, standard library
# only: it parses the JSON output).
set -u

tools=${FER_TOOLS_DIR:?FER_TOOLS_DIR must name the build directory of the tools}
data_dir=${FER_DATA_DIR:-}
py=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

labels="angry disgust fear happy neutral sad surprise"
. "$here/tools-tap.sh"

# lists_labels: the last run's stderr names every FER2013 label.
lists_labels () { for l in $labels; do grep -qw "$l" err || return 1; done; }

# json_check FILE PYTHON-CODE: runs the code with `d` = FILE's JSON (or `ds`
# = the list of objects of a JSON-lines file); it fails by raising.
json_check ()
{
  "$py" - "$1" "$2" >>err 2>&1 <<'EOF'
import json, sys
text = open(sys.argv[1]).read()
ds = [json.loads(line) for line in text.splitlines() if line.strip()]
d = ds[0] if len(ds) == 1 else None
exec(sys.argv[2])
EOF
}

# ---- fer-init ---------------------------------------------------------------

run "$tools/fer-init" --out m1.safetensors
check "fer-init with the defaults writes a model" \
  test "$status" -eq 0 -a -s m1.safetensors

run "$tools/fer-init" --out m3.safetensors --stem small --head mlp --channels 3 \
  --randomize-bn --f16 --seed 7 --meta fer.dataset=test
check "fer-init small stem, mlp head, 3 channels, F16, random BN, metadata" \
  test "$status" -eq 0 -a -s m3.safetensors

run "$tools/fer-init" --out m-abc.safetensors --classes 3 --meta fer.labels=a,b,c
check "fer-init with 3 classes and their labels" test "$status" -eq 0

"$tools/fer-init" --out m1-again.safetensors >/dev/null 2>&1
"$tools/fer-init" --out m1-seed1.safetensors --seed 1 >/dev/null 2>&1
check "fer-init is deterministic for a seed and differs across seeds" \
  eval 'cmp -s m1.safetensors m1-again.safetensors && ! cmp -s m1.safetensors m1-seed1.safetensors'

run "$tools/fer-init" --out bad.safetensors --stem bogus
check "fer-init --stem bogus: usage error naming the value" failed_naming 2 bogus

# ---- decoding: every PNG/JPEG variant -------------------------------------

kinds="gray rgb rgba png-gray16 png-rgba16 png-gray1 png-gray-alpha png-palette
  png-palette-trns png-interlaced jpeg-gray jpeg-rgb"
for kind in $kinds; do
  case $kind in jpeg-*) file=$kind.jpg ;; *) file=$kind.png ;; esac
  run "$tools/fer-test-mkimage" "$kind" 37 29 "$file"
  [ "$status" -eq 0 ] && run "$tools/fer-test-mkimage" --verify "$kind" 37 29 "$file"
  check "decode $kind: $(cat out)" test "$status" -eq 0
done
"$tools/fer-test-mkimage" jpeg-gray 48 48 face.jpg
"$tools/fer-test-mkimage" jpeg-cmyk 48 48 cmyk.jpg

# Broken files: cut short, or damaged inside.
head -c 300 face.jpg > truncated.jpg
head -c 100 rgb.png > truncated.png
cp rgb.png damaged.png
printf '\377\377\377\377\377\377\377\377' | dd of=damaged.png bs=1 seek=60 conv=notrunc 2>/dev/null
echo "not an image" > text.png

# ---- fer-classify -----------------------------------------------------------

run "$tools/fer-classify" --model m1.safetensors face.jpg gray.png rgb.png
check "fer-classify prints one line per image" \
  eval '[ "$status" -eq 0 ] && [ "$(wc -l < out)" -eq 3 ] && grep -q "^face.jpg: " out && grep -q "^rgb.png: " out'

run "$tools/fer-classify" --model m1.safetensors --json face.jpg png-palette-trns.png png-gray16.png
cp out classify.json
check "fer-classify --json: valid JSON lines, probabilities sum to 1, label is the argmax" \
  eval '[ "$status" -eq 0 ] && json_check classify.json "
labels = \"$labels\".split()
assert len(ds) == 3, ds
for o in ds:
    p = o[\"probabilities\"]
    assert list(p) == labels, p
    assert abs(sum(p.values()) - 1) < 1e-4, p
    assert o[\"label\"] == max(p, key=p.get) == labels[o[\"label_id\"]], o
    assert o[\"confidence\"] == p[o[\"label\"]], o
"'

run "$tools/fer-classify" --model m3.safetensors --tta 10 --json rgb.png jpeg-gray.jpg
cp out classify3.json
check "fer-classify --tta 10 on a 3-channel model" \
  eval '[ "$status" -eq 0 ] && json_check classify3.json "
assert len(ds) == 2 and all(abs(sum(o[\"probabilities\"].values()) - 1) < 1e-4 for o in ds)
"'

run "$tools/fer-classify" --model m1.safetensors --logits face.jpg
check "fer-classify --logits prints the 7 logits" \
  eval '[ "$status" -eq 0 ] && [ "$(grep -o "[a-z]*=[-0-9.e+]*" out | wc -l)" -eq 7 ]'

run "$tools/fer-classify" --model m1.safetensors --tta 1 --logits --json face.jpg rgba.png
cp out logits.json
check "fer-classify --logits: softmax of the logits is the T=1 probability" \
  eval '[ "$status" -eq 0 ] && json_check logits.json "
import math
for o in ds:
    z = o[\"logits\"]; m = max(z.values())
    e = {k: math.exp(v - m) for k, v in z.items()}; s = sum(e.values())
    assert all(abs(e[k] / s - p) < 1e-4 for k, p in o[\"probabilities\"].items()), o
"'

# fer-convert: F16 copy (half the size, metadata kept, logits within F16
# rounding), F32 back, bad input.
run "$tools/fer-convert" m1.safetensors m1-f16.safetensors
check "fer-convert writes an F16 copy of half the size" \
  eval '[ "$status" -eq 0 ] && [ $(( $(wc -c < m1.safetensors) / $(wc -c < m1-f16.safetensors) )) -eq 1 ] && [ $(( 2 * $(wc -c < m1-f16.safetensors) )) -lt $(( $(wc -c < m1.safetensors) + 100000 )) ]'
run "$tools/fer-classify" --model m1-f16.safetensors --tta 1 --logits --json face.jpg rgba.png
cp out logits16.json
check "fer-convert F16: same labels metadata, logits within 1e-2 of F32" \
  eval '[ "$status" -eq 0 ] && json_check logits16.json "
ref = [json.loads(l) for l in open(\"logits.json\")]
err = max(abs(a[\"logits\"][k] - b[\"logits\"][k]) for a, b in zip(ds, ref) for k in a[\"logits\"])
print(\"# max |logit F16 - F32|: %g\" % err)
assert len(ds) == 2 and sorted(ds[0][\"logits\"]) == sorted(ref[0][\"logits\"]) and err < 1e-2, err
" && grep "^# max" err'
run "$tools/fer-convert" --dtype f32 m1-f16.safetensors m1-back.safetensors
check "fer-convert --dtype f32 of the F16 copy has the F32 size" \
  eval '[ "$status" -eq 0 ] && [ "$(wc -c < m1-back.safetensors)" -eq "$(wc -c < m1.safetensors)" ]'
for bad in missing.safetensors truncated.jpg; do
  run "$tools/fer-convert" "$bad" conv-out.safetensors
  check "fer-convert names a bad input ($bad), status 1, writes nothing" \
    eval 'failed_naming 1 "$bad" && [ ! -e conv-out.safetensors ]'
done
run "$tools/fer-convert" --meta fer.dataset=fer2013/train --meta note=ours \
  m1.safetensors m1-meta.safetensors
check "fer-convert --meta replaces one entry, adds another and keeps the rest" \
  eval '[ "$status" -eq 0 ] && "$py" - m1.safetensors m1-meta.safetensors <<EOF
import json, struct, sys
def meta(p):
    f = open(p, "rb"); n = struct.unpack("<Q", f.read(8))[0]
    return json.loads(f.read(n))["__metadata__"]
a, b = meta(sys.argv[1]), meta(sys.argv[2])
assert b["fer.dataset"] == "fer2013/train" and b["note"] == "ours", b
del b["note"]; b.pop("fer.dataset"); a.pop("fer.dataset", None)
assert a == b, (a, b)
EOF'
run "$tools/fer-convert" --meta fer.input_size=0 m1.safetensors conv-out.safetensors
check "fer-convert --meta with a value the loader refuses: named, status 1, no file left" \
  eval 'failed_naming 1 "fer.input_size" && [ ! -e conv-out.safetensors ]'
run "$tools/fer-convert" --meta =x m1.safetensors conv-out.safetensors
check "fer-convert --meta without a key is a usage error" \
  failed_naming 2 "--meta '=x': expected KEY=VALUE"
run "$tools/fer-convert" --dtype f64 m1.safetensors conv-out.safetensors
check "fer-convert --dtype f64 is a usage error" eval '[ "$status" -eq 2 ]'

run "$tools/fer-classify" --model m1.safetensors face.jpg missing.png rgb.png
check "fer-classify: a missing image is named, the others still classified, status 1" \
  eval 'failed_naming 1 missing.png && [ "$(wc -l < out)" -eq 2 ]'

for bad in truncated.jpg truncated.png damaged.png text.png; do
  run "$tools/fer-classify" --model m1.safetensors "$bad"
  check "fer-classify: $bad is named, status 1" failed_naming 1 "$bad"
done

run "$tools/fer-classify" --model m1.safetensors cmyk.jpg
check "fer-classify: a CMYK JPEG is refused by name" \
  eval 'failed_naming 1 cmyk.jpg && grep -q CMYK err'

run "$tools/fer-classify" --model no/such/model.safetensors face.jpg
check "fer-classify: a nonexistent model is named, status 1" \
  failed_naming 1 no/such/model.safetensors

run "$tools/fer-classify" --model rgb.png face.jpg
check "fer-classify: a file that is not a model is named as such, status 1" \
  eval 'failed_naming 1 rgb.png && grep -q "not a safetensors file" err'
run "$tools/fer-classify" --model text.png face.jpg
check "fer-classify: a text file as the model: not a safetensors file" \
  eval 'failed_naming 1 text.png && grep -q "not a safetensors file" err'

# Defaults: the element's (the shipped model by the name "fast", 5 views),
# so that the same crop gets the same answer; names are looked up in
# $FER_MODEL_PATH (tests/meson.build: the source's models/).
if [ -n "${FER_MODEL_PATH:-}" ] && [ -f "$FER_MODEL_PATH/feremotion-resnet18-fer2013.safetensors" ]; then
  "$tools/fer-classify" --model "$FER_MODEL_PATH/feremotion-resnet18-fer2013.safetensors" \
    --tta 5 face.jpg rgb.png >explicit.out 2>&1
  run "$tools/fer-classify" face.jpg rgb.png
  check "fer-classify defaults to the shipped model and 5 TTA views" \
    eval '[ "$status" -eq 0 ] && cmp -s out explicit.out'
  run "$tools/fer-classify" --model fast face.jpg rgb.png
  check "fer-classify --model fast is the shipped model" \
    eval '[ "$status" -eq 0 ] && cmp -s out explicit.out'
else
  pass "fer-classify defaults to the shipped model and 5 TTA views # SKIP FER_MODEL_PATH has no shipped model"
  pass "fer-classify --model fast is the shipped model # SKIP FER_MODEL_PATH has no shipped model"
fi
FER_MODEL_PATH=$tmp run "$tools/fer-classify" --model m1 --tta 1 face.jpg
check "fer-classify --model NAME finds NAME.safetensors in FER_MODEL_PATH" \
  eval '[ "$status" -eq 0 ] && grep -q "^face.jpg: " out'
FER_MODEL_PATH=$tmp run "$tools/fer-classify" --model nosuch face.jpg
check "fer-classify --model with an unknown name lists the names that exist, status 1" \
  eval 'failed_naming 1 "model \"nosuch\"" && grep -q "models there: .*m1, m1-again" err'

# ---- fer-eval ---------------------------------------------------------------

for label in $labels; do
  mkdir -p tree/$label
  "$tools/fer-test-mkimage" jpeg-gray 48 48 tree/$label/a.jpg
  "$tools/fer-test-mkimage" rgb 40 52 tree/$label/b.PNG
done
echo "not an image, and ignored" > tree/README.txt
echo "ignored too" > tree/happy/notes.txt

run "$tools/fer-eval" --model m1.safetensors --data tree --json --tta 2
cp out eval.json
check "fer-eval --json on 14 images: n, supports, confusion" \
  eval '[ "$status" -eq 0 ] && json_check eval.json "
assert d[\"n\"] == 14 and d[\"skipped\"] == 0 and d[\"tta\"] == 2, d
assert d[\"labels\"] == \"$labels\".split(), d
assert all(c[\"support\"] == 2 for c in d[\"per_class\"].values()), d
assert sum(map(sum, d[\"confusion\"])) == 14, d
assert 0 <= d[\"accuracy\"] <= 1
"'

run "$tools/fer-eval" --model m1.safetensors --data tree
check "fer-eval text output has accuracy, averages and the confusion matrix" \
  eval '[ "$status" -eq 0 ] && grep -q "^accuracy: " out && grep -q "weighted avg" out && grep -q "confusion matrix" out'

cp truncated.jpg tree/sad/c.jpg
run "$tools/fer-eval" --model m1.safetensors --data tree --json --batch 3 --report report.md
cp out eval-skip.json
check "fer-eval skips and counts an unreadable image, naming it" \
  eval '[ "$status" -eq 0 ] && grep -qF tree/sad/c.jpg err && json_check eval-skip.json "
assert d[\"n\"] == 14 and d[\"skipped\"] == 1, d
assert d[\"skipped_files\"][0][\"path\"].endswith(\"tree/sad/c.jpg\"), d
"'
check "fer-eval --report writes the Markdown tables" \
  eval 'grep -q "^| angry | " report.md && grep -q "weighted avg" report.md && grep -q "^| \*\*surprise\*\* |" report.md'

# file names are bytes: an unreadable image whose name is not UTF-8 shows
# quoted (\xFE) in the JSON (which must stay UTF-8) and in the report
bad=$(printf 'tree/sad/d\376.jpg')
cp truncated.jpg "$bad"
run "$tools/fer-eval" --model m1.safetensors --data tree --json --report report2.md
cp out eval-bad.json
check "fer-eval --json and --report show a file name that is not UTF-8 quoted" \
  eval '[ "$status" -eq 0 ] && json_check eval-bad.json "
assert d[\"skipped\"] == 2, d
assert any(f[\"path\"].endswith(\"tree/sad/d\\\\xFE.jpg\") for f in d[\"skipped_files\"]), d
" && "$py" -c "open(\"report2.md\", encoding=\"utf-8\").read()" && grep -qF "d\\xFE.jpg" report2.md'
cp tree/happy/a.jpg "$(printf 'face\376.jpg')"
run "$tools/fer-classify" --model m1.safetensors --json "$(printf 'face\376.jpg')"
cp out classify-bad.json
check "fer-classify --json shows a file name that is not UTF-8 quoted" \
  eval '[ "$status" -eq 0 ] && json_check classify-bad.json "
assert d[\"path\"] == \"face\\\\xFE.jpg\", d
"'
rm -f "$bad"

run "$tools/fer-eval" --model m1.safetensors --data tree --tta 3 --report report3.md
check "fer-eval --tta 3 --report sets plain and TTA accuracy side by side, and the most confused pairs" \
  eval '[ "$status" -eq 0 ] && grep -q "^| plain (1 view) | [0-9.]*% |" report3.md && grep -q "^| TTA (3 views) | [0-9.]*% |" report3.md && grep -q "^## Most confused classes" report3.md'

run "$tools/fer-eval" --model m1.safetensors --data tree --json --batch 1
cp out eval-b1.json
check "fer-eval gives the same confusion matrix in batches of 1 and 3" \
  eval '[ "$status" -eq 0 ] && json_check eval-b1.json "
other = json.load(open(\"eval-skip.json\"))
assert d[\"confusion\"] == other[\"confusion\"], (d[\"confusion\"], other[\"confusion\"])
"'
rm tree/sad/c.jpg

mkdir tree/smile
run "$tools/fer-eval" --model m1.safetensors --data tree
check "fer-eval: an unknown folder is named and the model labels listed" \
  eval 'failed_naming 1 smile && lists_labels'
rmdir tree/smile

run "$tools/fer-eval" --model m1.safetensors --data no/such/dir
check "fer-eval: a missing data directory is named, status 1" failed_naming 1 no/such/dir

# A folder of one class: the macro average is over the classes present in
# the data (counting the absent one as 0 made a perfect result read 1/k).
mkdir -p oneclass/b
cp face.jpg gray.png rgb.png rgba.png jpeg-gray.jpg png-gray16.png \
  png-palette-trns.png oneclass/b/
"$tools/fer-init" --out ab.safetensors --classes 2 --meta fer.labels=a,b \
  --seed 5 >/dev/null 2>&1
run "$tools/fer-eval" --model ab.safetensors --data oneclass --json
cp out oneclass.json
check "fer-eval: the macro average is over the classes present in the data" \
  eval '[ "$status" -eq 0 ] && json_check oneclass.json "
assert d[\"accuracy\"] > 0, \"no image predicted as b: choose another --seed\"
assert d[\"macro_avg_classes\"] == 1, d
assert abs(d[\"macro_avg\"][\"recall\"] - d[\"accuracy\"]) < 1e-9, d
assert d[\"macro_avg\"][\"precision\"] == 1.0, d
"'
run "$tools/fer-eval" --model ab.safetensors --data oneclass
check "fer-eval text output says which classes the macro average is over" \
  grep -q "macro avg over the 1 of 2 classes present" out

# ---- FER2013 public test split --------------------------------------------

public="$data_dir/publictest"
if [ -n "$data_dir" ] && [ -d "$public" ]; then
  run "$tools/fer-eval" --model m1.safetensors --data "$public" --json
  cp out public.json
  check "fer-eval on FER2013 publictest counts 3589 images with the right supports" \
    eval '[ "$status" -eq 0 ] && json_check public.json "
assert d[\"n\"] == 3589 and d[\"skipped\"] == 0, (d[\"n\"], d[\"skipped\"])
want = dict(angry=467, disgust=56, fear=496, happy=895, neutral=607, sad=653, surprise=415)
got = {k: v[\"support\"] for k, v in d[\"per_class\"].items()}
assert got == want, got
"'
else
  n=$((n + 1))
  echo "ok $n # SKIP FER2013 not found at ${data_dir:-(FER_DATA_DIR unset)}/publictest"
fi

echo "1..$n"
