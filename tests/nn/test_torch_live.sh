#!/bin/sh
# fer-classify --logits on models that PyTorch itself built and saved (the
# state_dict as safetensors.torch.save_file writes it: num_batches_tracked as
# I64, F32 or F16) against PyTorch's own logits for the same image.
# Needs Debian's python3-torch/torchvision/PIL; skips (saying so) without.
# TAP output.
set -u
tools=${FER_TOOLS_DIR:?FER_TOOLS_DIR not set}
script=${FER_SOURCE_DIR:?FER_SOURCE_DIR not set}/tests/torch_reference.py
py=/usr/bin/python3
variants="torchvision-fc-1:F32 torchvision-mlp-3:F32 small-fc-3:F16 small-mlp-1:F16 torchvision-fc-3:F16 nopool-fc-1:F32 nopool-mlp-3:F16"

echo "1..$(echo $variants | wc -w)"
if ! $py -c 'import torch, torchvision, PIL' 2>/dev/null; then
  i=0
  for v in $variants; do
    i=$((i + 1)); echo "ok $i # SKIP $py cannot import torch, torchvision and PIL"
  done
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
fail=0
for v in $variants; do
  i=$((i + 1))
  variant=${v%:*}; dtype=${v#*:}
  expected=$($py "$script" live "$tmp" "$variant" "$dtype") || { echo "not ok $i - $v: torch script failed"; fail=1; continue; }
  got=$("$tools/fer-classify" --model "$tmp/model.safetensors" --tta 1 --logits --json "$tmp/face.png") \
    || { echo "not ok $i - $v: fer-classify failed"; fail=1; continue; }
  verdict=$($py - "$expected" "$got" <<'PY'
import json, sys
ref = [float(x) for x in sys.argv[1].split()]
got = list(json.loads(sys.argv[2])["logits"].values())
err = max(abs(a - b) for a, b in zip(ref, got))
rng = max(ref) - min(ref)
print(f"{'ok' if len(got) == len(ref) and err / rng < 1e-4 else 'bad'} max abs error {err:.3g}, relative to logit range {err / rng:.3g}")
PY
)
  case $verdict in
    ok*) echo "ok $i - $v: ${verdict#ok }" ;;
    *) echo "not ok $i - $v: ${verdict#bad }"; fail=1 ;;
  esac
done
exit $fail
