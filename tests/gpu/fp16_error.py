#!/usr/bin/python3
"""FER_CUDA_MATH=fp16's error, emulated on the CPU with PyTorch (Debian's
python3-torch): how far half-precision convolutions move a model's
probabilities from exact FP32 inference, to size the self-test's tolerance
(FER_SELFTEST_TOLERANCE_FP16, docs/architecture.md "Fail-safe") before a
GPU has run the real thing.

    /usr/bin/python3 tests/gpu/fp16_error.py [--check] MODEL [FER2013_DIR [N]]

The emulation does what nn/src/cuda/conv.c does under fp16, in the same
order, for every convolution but the stem's (its 1 or 3 input channels keep
it in FP32, fer_cuda_math_half): each BatchNorm folded into its convolution in double, rounded to a
float and then to the nearest half; the convolution's input rounded to
halves; the products summed in FP32 (float32 conv2d of the rounded values:
each product of two halves is exact in float, as on tensor cores with FP32
accumulation); the output rounded to halves; then bias, residual and ReLU
in FP32. Pooling and the head stay FP32. The reference is the same graph
with nothing rounded to halves. The inputs: the self-test's kind (64
images of seeded uniform noise, normalised as the model's metadata says),
and, when FER2013_DIR is given, the first N (default 512) PublicTest faces
(centre crop to fer.crop_size). Prints the largest |difference| of a
probability and of a logit, and how many top-1 answers change.

--check (the meson test fp16-error): exits 1 unless the largest difference
is at least ten times below FER_SELFTEST_TOLERANCE_FP16 (read from
nn/src/backend.h), and 77 (skipped) without torch, torchvision and PIL.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
try:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision  # noqa: F401 (torch_reference's)
    from PIL import Image
except ImportError as e:
    print("SKIP: %s cannot import torch, torchvision and PIL (%s)" % (sys.executable, e))
    sys.exit(77)
sys.path.insert(0, os.path.join(HERE, ".."))
import torch_reference  # noqa: E402


def to_half(x, half):
    return x.half().float() if half else x


def conv_bn(x, conv, bn, half):
    # fer_cuda_math_half: channel counts that are multiples of 8 only (the
    # stem stays FP32)
    half = half and conv.in_channels % 8 == 0 and conv.out_channels % 8 == 0
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    w = (conv.weight.double() * scale[:, None, None, None]).float()
    y = F.conv2d(to_half(x, half), to_half(w, half), None, conv.stride, conv.padding)
    return to_half(y, half) + shift.float()[None, :, None, None]


def block(x, b, half):
    out = F.relu(conv_bn(x, b.conv1, b.bn1, half))
    out = conv_bn(out, b.conv2, b.bn2, half)
    identity = conv_bn(x, b.downsample[0], b.downsample[1], half) if b.downsample else x
    return F.relu(out + identity)


@torch.no_grad()
def logits(m, x, half):
    x = m.maxpool(F.relu(conv_bn(x, m.conv1, m.bn1, half)))
    for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
        for b in layer:
            x = block(x, b, half)
    return m.fc(torch.flatten(m.avgpool(x), 1))


def faces(folder, n, size, channels):
    paths = []
    for label in sorted(os.listdir(folder)):
        d = os.path.join(folder, label)
        paths += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    step = max(1, len(paths) // n)
    imgs = []
    for p in paths[::step][:n]:
        im = Image.open(p).convert("L" if channels == 1 else "RGB")
        w, h = im.size
        left, top = (w - size) // 2, (h - size) // 2
        a = np.asarray(im.crop((left, top, left + size, top + size)), np.float32) / 255.0
        imgs.append(a[None] if channels == 1 else a.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(imgs))


def report(name, m, x):
    l32, l16 = logits(m, x, False), logits(m, x, True)
    p32, p16 = F.softmax(l32, 1), F.softmax(l16, 1)
    dp = (p16 - p32).abs().max().item()
    dl = (l16 - l32).abs().max().item()
    flips = (p16.argmax(1) != p32.argmax(1)).sum().item()
    print("%-34s max |dp| %.3g  max |dlogit| %.3g  top-1 changed %d of %d"
          % (name, dp, dl, flips, x.shape[0]))
    return dp


def selftest_tolerance():
    text = open(os.path.join(HERE, "..", "..", "nn", "src", "backend.h")).read()
    return float(re.search(r"#define FER_SELFTEST_TOLERANCE_FP16 (\S+)", text).group(1))


def main():
    args = sys.argv[1:]
    check = args[:1] == ["--check"]
    if check:
        args = args[1:]
    path = args[0]
    m, ch, _, size = torch_reference.load_model(path)
    _, meta = torch_reference.read_safetensors(path)
    mean = [float(v) for v in meta.get("fer.mean", "0.5").split(",")]
    std = [float(v) for v in meta.get("fer.std", "0.25").split(",")]
    norm = lambda x: (x - torch.tensor(mean)[None, :, None, None]) / torch.tensor(std)[None, :, None, None]
    torch.manual_seed(0x5e1f7e57)
    print(os.path.basename(path))
    worst = report("seeded noise (the self-test's kind)", m, norm(torch.rand(64, ch, size, size)))
    if len(args) > 1 and os.path.isdir(os.path.join(args[1], "publictest")):
        n = int(args[2]) if len(args) > 2 else 512
        x = norm(faces(os.path.join(args[1], "publictest"), n, size, ch))
        worst = max(worst, report("FER2013 PublicTest faces", m, x))
    elif len(args) > 1:
        print("(no FER2013 PublicTest under %s: noise only)" % args[1])
    tol = selftest_tolerance()
    print("largest |dp|: %.3g; the self-test's FP16 tolerance: %.3g (%.0fx)"
          % (worst, tol, tol / worst if worst > 0 else float("inf")))
    if check and not worst * 10 <= tol:
        print("FAIL: the emulated FP16 error is not ten times below the tolerance")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
