#!/usr/bin/python3
"""PyTorch reference for libfernn's ResNet-18 (run with Debian's python3-torch).

fixture MODE: for every variant (stem x head x channels, plus an F16 file),
    runs `fer-init` with a fixed seed and --randomize-bn, loads the file into
    torchvision's resnet18 and records the logits of a fixed input (a formula
    that tests/nn/test_torch_reference.c computes identically). The fixture
    holds inputs' recipe and logits only; the C test regenerates the weights
    from the same seed.
        /usr/bin/python3 tests/torch_reference.py fixture BUILD/nn/tools/fer-init \
            tests/fixtures/torch_logits.json

live MODE: builds a model in PyTorch (random weights and BN statistics), saves
    its state_dict as safetensors exactly as safetensors.torch.save_file does
    (F32 or F16, num_batches_tracked included as I64), writes a test image, and
    prints the logits PyTorch computes for it, for `fer-classify --logits` to
    be compared against (tests/nn/test_torch_live.sh).
        /usr/bin/python3 tests/torch_reference.py live OUTDIR VARIANT DTYPE
"""
import json
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

DTYPES = {"F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (None, 2),
          "I64": (np.int64, 8)}

VARIANTS = [
    # name, stem, head, channels, classes, dtype
    ("tv-fc-1", "torchvision", "fc", 1, 7, "F32"),
    ("tv-fc-3", "torchvision", "fc", 3, 7, "F32"),
    ("tv-mlp-1", "torchvision", "mlp", 1, 7, "F32"),
    ("tv-mlp-3", "torchvision", "mlp", 3, 7, "F32"),
    ("small-fc-1", "small", "fc", 1, 7, "F32"),
    ("small-fc-3", "small", "fc", 3, 5, "F32"),
    ("small-mlp-1", "small", "mlp", 1, 7, "F32"),
    ("small-mlp-3", "small", "mlp", 3, 7, "F32"),
    ("tv-mlp-3-f16", "torchvision", "mlp", 3, 7, "F16"),
]
INPUT_N, INPUT_SIZE = 3, 48


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    meta = header.pop("__metadata__", {})
    base = 8 + hlen
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        raw = data[base + b:base + e]
        if t["dtype"] == "BF16":
            arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, DTYPES[t["dtype"]][0])
        tensors[name] = torch.from_numpy(arr.astype(np.float32).reshape(t["shape"]).copy())
    return tensors, meta


def write_safetensors(path, tensors, meta):
    """The layout safetensors.torch.save_file writes (header padded to 8)."""
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        arr = t.detach().cpu().numpy()
        dt = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
              np.dtype(np.int64): "I64"}[arr.dtype]
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def build(stem, head, channels, classes):
    m = torchvision.models.resnet18(num_classes=classes)
    if stem == "small":
        m.conv1 = torch.nn.Conv2d(channels, 64, 3, 1, 1, bias=False)
        m.maxpool = torch.nn.Identity()
    else:
        m.conv1 = torch.nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
    if head == "mlp":
        m.fc = torch.nn.Sequential(torch.nn.Linear(512, 256), torch.nn.BatchNorm1d(256),
                                   torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                   torch.nn.Linear(256, classes))
    return m.eval()


def load_into(m, tensors):
    missing, unexpected = m.load_state_dict(tensors, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing


def formula_input(n, c, s):
    """x[b, ch, y, x] = sin(0.37 * i + 0.11 * b) * 1.5, i = flat NCHW index:
    the C test computes the same numbers in double and rounds to float."""
    i = np.arange(n * c * s * s, dtype=np.float64).reshape(n, c, s, s)
    b = np.arange(n, dtype=np.float64)[:, None, None, None]
    return torch.from_numpy((np.sin(0.37 * i + 0.11 * b) * 1.5).astype(np.float32))


def fixture(fer_init, out):
    torch.set_num_threads(1)
    result = {"generator": "tests/torch_reference.py fixture",
              "torch": torch.__version__, "torchvision": torchvision.__version__,
              "input": {"n": INPUT_N, "size": INPUT_SIZE,
                        "formula": "sin(0.37*i + 0.11*b)*1.5, i = flat NCHW index"},
              "variants": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed, (name, stem, head, ch, classes, dtype) in enumerate(VARIANTS, start=1):
            path = f"{tmp}/{name}.safetensors"
            args = ["--seed", str(seed), "--stem", stem, "--head", head,
                    "--channels", str(ch), "--classes", str(classes), "--randomize-bn"]
            if dtype == "F16":
                args.append("--f16")
            subprocess.run([fer_init, "--out", path] + args, check=True)
            tensors, _ = read_safetensors(path)
            m = build(stem, head, ch, classes)
            load_into(m, tensors)
            with torch.no_grad():
                logits = m(formula_input(INPUT_N, ch, INPUT_SIZE))
            result["variants"].append({
                "name": name, "seed": seed, "stem": stem, "head": head,
                "channels": ch, "classes": classes, "dtype": dtype,
                "logits": [[float(v) for v in row] for row in logits]})
            print(f"{name}: logit range {float(logits.min()):.3f}..{float(logits.max()):.3f}")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def live(outdir, variant, dtype):
    from PIL import Image
    stem, head, ch = variant.split("-")
    ch = int(ch)
    torch.manual_seed(1234)
    m = build(stem, head, ch, 7)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.2)
                mod.running_mean.normal_(0, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
    mean, std = 0.5, 0.25
    sd = m.state_dict()
    if dtype == "F16":
        sd = {k: (v.half() if v.is_floating_point() else v) for k, v in sd.items()}
        # PyTorch then computes with the same rounded weights
        load_into(m, {k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    write_safetensors(f"{outdir}/model.safetensors", sd,
                      {"fer.mean": str(mean), "fer.std": str(std)})
    rng = np.random.default_rng(7)
    shape = (48, 48) if ch == 1 else (48, 48, 3)
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    Image.fromarray(pixels).save(f"{outdir}/face.png")
    x = torch.from_numpy(pixels.astype(np.float32) / 255.0)
    x = x[None, None] if ch == 1 else x.permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = m((x - mean) / std)[0]
    print(" ".join(f"{float(v):.6g}" for v in logits))


if __name__ == "__main__":
    if sys.argv[1] == "fixture":
        fixture(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "live":
        live(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
