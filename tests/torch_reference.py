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

grads MODE: one training step of the whole network against PyTorch, for
    tests/nn/test_train_torch.c. For each variant in TRAIN_VARIANTS, runs
    `fer-init --randomize-bn` with the variant's seed, loads the file into
    torchvision's resnet18 in training mode (dropout 0), and on a noise-like
    formula batch with fixed labels records: the loss (cross-entropy with
    class weights and label smoothing; the focal/mixup variant composes it
    as train.h documents), every parameter's gradient (norm, sum, sum of
    |g|, max |g| and a few sampled entries), the parameters after one Adam
    step and after a second step on a second batch (sampled where the
    gradient is not tiny), the second loss, and sampled BatchNorm running
    statistics after both steps. Sampled values, not whole tensors, keep the
    fixture small. The batch's phase is searched so that no pre-activation
    sits near a ReLU or max-pool kink (see GRAD_CONDITIONING below); this
    takes about 10 minutes.
        /usr/bin/python3 tests/torch_reference.py grads BUILD/nn/tools/fer-init \
            tests/fixtures/torch_grads.json

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
    ("nopool-fc-1", "nopool", "fc", 1, 7, "F32"),
    ("nopool-mlp-3", "nopool", "mlp", 3, 6, "F32"),
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
        if stem == "nopool":
            m.maxpool = torch.nn.Identity()
    if head == "mlp":
        m.fc = torch.nn.Sequential(torch.nn.Linear(512, 256), torch.nn.BatchNorm1d(256),
                                   torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                   torch.nn.Linear(256, classes))
    return m.eval()


def load_into(m, tensors):
    missing, unexpected = m.load_state_dict(tensors, strict=False)
    assert not unexpected, unexpected
    assert all(k.endswith("num_batches_tracked") for k in missing), missing


def load_model(path):
    """A safetensors model file as torchvision's resnet18 (eval mode), the
    variant recognised from its tensors as libfernn does; returns (model,
    channels, classes, input size)."""
    tensors, meta = read_safetensors(path)
    stem = meta.get("fer.stem",
                    "small" if tensors["conv1.weight"].shape[2] == 3 else "torchvision")
    head = "mlp" if "fc.4.weight" in tensors else "fc"
    ch = tensors["conv1.weight"].shape[1]
    classes = tensors["fc.weight" if head == "fc" else "fc.4.weight"].shape[0]
    size = int(meta.get("fer.crop_size", meta.get("fer.input_size", 48)))
    m = build(stem, head, ch, classes)
    load_into(m, tensors)
    return m, ch, classes, size


def formula_input(n, c, s, phase=0.0):
    """x[b, ch, y, x] = sin(0.37 * i + 0.11 * b + phase) * 1.5, i = flat NCHW
    index: the C tests compute the same numbers in double and round to float."""
    i = np.arange(n * c * s * s, dtype=np.float64).reshape(n, c, s, s)
    b = np.arange(n, dtype=np.float64)[:, None, None, None]
    return torch.from_numpy((np.sin(0.37 * i + 0.11 * b + phase) * 1.5).astype(np.float32))


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


TRAIN_N = 8
TRAIN_VARIANTS = [
    {"name": "tv-fc-1", "seed": 101, "stem": "torchvision", "head": "fc", "channels": 1,
     "classes": 7, "size": 24, "optimizer": "adam", "lr": 1e-3, "eps": 1e-3,
     "weight_decay": 0.0, "label_smoothing": 0.1, "focal_gamma": 0.0, "lam": None,
     "class_weights": [0.5, 2.0, 1.0, 0.8, 1.2, 1.5, 0.7]},
    {"name": "small-mlp-3", "seed": 102, "stem": "small", "head": "mlp", "channels": 3,
     "classes": 5, "size": 8, "optimizer": "adamw", "lr": 2e-3, "eps": 1e-3,
     "weight_decay": 0.05, "label_smoothing": 0.1, "focal_gamma": 2.0, "lam": 0.7,
     "class_weights": [1.0, 0.6, 1.4, 0.9, 1.1]},
    {"name": "nopool-fc-1", "seed": 103, "stem": "nopool", "head": "fc", "channels": 1,
     "classes": 7, "size": 16, "optimizer": "adam", "lr": 1e-3, "eps": 1e-3,
     "weight_decay": 0.0, "label_smoothing": 0.1, "focal_gamma": 0.0, "lam": None,
     "class_weights": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]},
]
N_SAMPLES = 6
# A ReLU network's gradient jumps where a pre-activation crosses 0 or two
# max-pool candidates swap, so two float implementations can only agree
# where no pre-activation sits within rounding distance of such a kink (one
# that does moves a whole channel's gradient: 1e-3 to 1e-1 relative errors
# everywhere upstream). The batch's phase is therefore chosen: for each of
# N_PHASES phases, both steps run in float32 and float64; the margin of a
# phase is the smallest, over the ReLUs and the max-pool, of
#   min |pre-activation| (or top-2 gap of a pool window) in float64
#   / RMS |float32 - float64| of that layer's values,
# i.e. how many typical rounding differences away from a kink the closest
# value sits. The phase with the largest margin among those whose
# float32 gradients agree with float64 within GRAD_CONDITIONING wins; the
# fixture records it. Kinks get closer the more pre-activations there are:
# at 48x48, batch 8, no phase of 37 was usable, hence the small inputs (the
# network is the same at any input size).
# Adam's eps is 1e-3, not 1e-8, for the same reason: its first step moves a
# parameter by lr * g / (|g| + eps), +-lr for any |g| >> eps, and the ~1e5
# gradients at float-noise level then step differently in float32 and
# float64 (by ~lr), after which the second step's gradients differ by ~20%.
GRAD_CONDITIONING = 1e-4
N_PHASES = 100


def noise_input(n, c, s, phase):
    """x = sin(12.9898 * i + 78.233 * b + phase) * 1.5, i = flat NCHW index:
    a deterministic, noise-like batch (the C test computes the same numbers
    in double and rounds to float)."""
    i = np.arange(n * c * s * s, dtype=np.float64).reshape(n, c, s, s)
    b = np.arange(n, dtype=np.float64)[:, None, None, None]
    return torch.from_numpy((np.sin(12.9898 * i + 78.233 * b + phase) * 1.5).astype(np.float32))


def train_labels(n, k, batch):
    """Batch 1: y_a = (3i + 1) % K, y_b = (i + 3) % K; batch 2: (5i + 2) % K,
    (2i + 1) % K (the C test computes the same)."""
    i = torch.arange(n)
    if batch == 1:
        return (3 * i + 1) % k, (i + 3) % k
    return (5 * i + 2) % k, (2 * i + 1) % k


def train_loss(v, logits, y_a, y_b, w):
    """train.h's loss: cross_entropy(weight, label_smoothing), mean
    reduction; focal: per-sample loss x (1 - p_t)^gamma, summed and divided
    by the targets' weight sum; mixup: lam L(y_a) + (1 - lam) L(y_b)."""
    def one(y):
        if v["focal_gamma"] == 0.0:
            return torch.nn.functional.cross_entropy(
                logits, y, weight=w, label_smoothing=v["label_smoothing"])
        ce = torch.nn.functional.cross_entropy(
            logits, y, weight=w, label_smoothing=v["label_smoothing"], reduction="none")
        p_t = torch.softmax(logits, 1).gather(1, y[:, None])[:, 0]
        return (ce * (1 - p_t) ** v["focal_gamma"]).sum() / w[y].sum()
    if v["lam"] is None:
        return one(y_a)
    return v["lam"] * one(y_a) + (1 - v["lam"]) * one(y_b)


def kink_values(m):
    """Hooks recording, per forward, the input of every ReLU (before the
    in-place op) and, for the max-pool, each window's top-2 gap."""
    rec = []

    def relu_hook(mod, inp):
        rec.append(("relu", inp[0].detach().double().flatten().clone()))

    def pool_hook(mod, inp):
        x = inp[0].detach().double()
        cols = torch.nn.functional.unfold(torch.nn.functional.pad(x, (1, 1, 1, 1),
                                                                 value=-float("inf")), 3, stride=2)
        top = cols.view(x.shape[0], x.shape[1], 9, -1).topk(2, dim=2).values
        gap = (top[:, :, 0] - top[:, :, 1]).flatten()
        rec.append(("pool", torch.where(top[:, :, 0].flatten() > 0, gap,
                                         torch.full_like(gap, float("inf")))))
    for mod in m.modules():
        if isinstance(mod, torch.nn.ReLU):
            mod.register_forward_pre_hook(relu_hook)
        elif isinstance(mod, torch.nn.MaxPool2d):
            mod.register_forward_pre_hook(pool_hook)
    return rec


def two_steps(v, tensors, phase, dtype):
    """Gradients of both steps, parameters after steps 1 and 2, the losses,
    the running statistics and the kink values of both forwards, from a
    model in training mode (dropout 0)."""
    m = build(v["stem"], v["head"], v["channels"], v["classes"])
    load_into(m, tensors)
    if v["head"] == "mlp":
        m.fc[3].p = 0.0
    m.train().to(dtype)
    kinks = kink_values(m)
    cls = torch.optim.Adam if v["optimizer"] == "adam" else torch.optim.AdamW
    opt = cls(m.parameters(), lr=v["lr"], eps=v["eps"], weight_decay=v["weight_decay"])
    w = torch.tensor(v["class_weights"], dtype=dtype)
    r = {"grads": [], "grads2": [], "kinks": kinks}
    for step in (1, 2):
        x = noise_input(TRAIN_N, v["channels"], v["size"], phase + step - 1).to(dtype)
        y_a, y_b = train_labels(TRAIN_N, v["classes"], step)
        opt.zero_grad()
        loss = train_loss(v, m(x), y_a, y_b, w)
        loss.backward()
        r[f"loss{step}"] = float(loss)
        r["grads" if step == 1 else "grads2"] = [p.grad.detach().clone() for p in m.parameters()]
        opt.step()
        r[f"params{step}"] = [p.detach().clone() for p in m.parameters()]
    r["names"] = [name for name, _ in m.named_parameters()]
    r["running"] = [(name, b.detach().clone()) for name, b in m.named_buffers()
                    if name.endswith("running_mean") or name.endswith("running_var")]
    return r


def kink_margin(r32, r64):
    """Smallest distance to a kink in units of that layer's typical (RMS)
    float32 rounding difference (see the comment at GRAD_CONDITIONING)."""
    margin, noise = float("inf"), 1e-12
    for (kind, a), (_, b) in zip(r32["kinks"], r64["kinks"]):
        finite = torch.isfinite(b)
        if not finite.any():
            continue
        if kind == "relu":
            noise = max(float((a - b).pow(2).mean().sqrt()), 1e-12)
        # a pool gap's rounding: that of two values after the ReLU before it
        scale = noise if kind == "relu" else 2 * noise
        margin = min(margin, float(b[finite].abs().min()) / scale)
    return margin


def grad_scale(g_ref, g_all):
    """What a tensor's gradient errors are measured against: its largest
    |g|, but at least 1e-3 of the network's largest. (fc.0.bias in the mlp
    head feeds a BatchNorm, so its true gradient is 0 and what is left is
    rounding noise.)"""
    return max(float(g_ref.abs().max()), 1e-3 * max(float(g.abs().max()) for g in g_all))


def disagreement(a, b, lr):
    """float32 run a against float64 run b: worst gradient error relative to
    grad_scale, worst parameter error in units of lr (each with its tensor).
    Gradients that are 0 in exact arithmetic (float64 below 1e-9 of the
    largest) are rounding noise in both and left out."""
    def g_errors(key):
        top = max(float(y.abs().max()) for y in b[key])
        return [(float((x.double() - y).abs().max()) / grad_scale(y, b[key]), f"{key} {name}")
                for name, x, y in zip(a["names"], a[key], b[key])
                if float(y.abs().max()) > 1e-9 * top]
    g = max(g_errors("grads") + g_errors("grads2"))
    p = max((float((x.double() - y).abs().max()) / lr, f"{key} {name}")
            for key in ("params1", "params2") for name, x, y in zip(a["names"], a[key], b[key]))
    return g, p


def sample_indices(g):
    """argmax |g| and N_SAMPLES - 1 entries spread over those with
    |g| >= 1e-2 max |g| (where an Adam step is not at the mercy of noise)."""
    flat = g.flatten().abs()
    big = torch.nonzero(flat >= 1e-2 * flat.max()).flatten().tolist()
    picks = [int(flat.argmax())]
    for j in range(N_SAMPLES - 1):
        idx = big[(j * len(big)) // (N_SAMPLES - 1)]
        if idx not in picks:
            picks.append(idx)
    return picks


def samples(t, idx):
    flat = t.detach().flatten()
    return [[i, float(flat[i])] for i in idx]


def grads(fer_init, out):
    torch.set_num_threads(1)
    result = {"generator": "tests/torch_reference.py grads",
              "torch": torch.__version__, "torchvision": torchvision.__version__,
              "batch": {"n": TRAIN_N,
                        "formula": "sin(12.9898*i + 78.233*b + phase)*1.5, i = flat NCHW "
                                   "index; batch 2 uses phase + 1"},
              "variants": []}
    with tempfile.TemporaryDirectory() as tmp:
        for v in TRAIN_VARIANTS:
            path = f"{tmp}/{v['name']}.safetensors"
            subprocess.run([fer_init, "--out", path, "--seed", str(v["seed"]),
                            "--stem", v["stem"], "--head", v["head"],
                            "--channels", str(v["channels"]), "--classes", str(v["classes"]),
                            "--randomize-bn"], check=True, stdout=subprocess.DEVNULL)
            tensors, _ = read_safetensors(path)
            best = None
            for k in range(N_PHASES):
                phase = 0.1 * k
                r, r64 = (two_steps(v, tensors, phase, dt) for dt in (torch.float32, torch.float64))
                (g, g_where), (p, p_where) = disagreement(r, r64, v["lr"])
                margin = kink_margin(r, r64)
                print(f"{v['name']}: phase {phase:.1f}: float32 vs float64: gradients {g:.2g} "
                      f"({g_where}), parameters {p:.2g} x lr; kink margin {margin:.3g}",
                      flush=True)
                if g < GRAD_CONDITIONING and (best is None or margin > best[0]):
                    best = (margin, phase, g, p, r)
            if best is None:
                sys.exit(f"{v['name']}: no well-conditioned phase in {N_PHASES}")
            margin, phase, g, p, r = best
            print(f"{v['name']}: phase {phase:.1f}, kink margin {margin:.3g}")
            entries = []
            for name, g1, p1, p2 in zip(r["names"], r["grads"], r["params1"], r["params2"]):
                idx = sample_indices(g1)
                entries.append({"name": name, "numel": g1.numel(),
                                "grad": {"norm": float(g1.norm()), "sum": float(g1.sum()),
                                         "abs_sum": float(g1.abs().sum()),
                                         "max_abs": float(g1.abs().max()),
                                         "scale": grad_scale(g1, r["grads"]),
                                         "samples": samples(g1, idx)},
                                "param1": samples(p1, idx), "param2": samples(p2, idx)})
            running = [{"name": name, "samples": samples(b, [0, 1, b.numel() // 2, b.numel() - 1])}
                       for name, b in r["running"]]
            rec = dict(v)
            rec.update({"phase": round(phase, 1), "kink_margin": margin,
                        "float32_vs_float64": {"gradients": g, "parameters_lr": p},
                        "loss1": r["loss1"], "loss2": r["loss2"],
                        "tensors": entries, "running": running})
            result["variants"].append(rec)
    # one line per tensor: readable diffs, small file
    with open(out, "w") as f:
        head = {k: result[k] for k in result if k != "variants"}
        f.write(json.dumps(head, indent=1)[:-2] + ',\n "variants": [\n')
        for vi, rec in enumerate(result["variants"]):
            f.write("  {\n")
            for k in rec:
                if k not in ("tensors", "running"):
                    f.write(f"   {json.dumps(k)}: {json.dumps(rec[k])},\n")
            for k in ("tensors", "running"):
                f.write(f"   {json.dumps(k)}: [\n")
                f.write(",\n".join("    " + json.dumps(e, separators=(",", ":"))
                                   for e in rec[k]))
                f.write("\n   ]" + ("," if k == "tensors" else "") + "\n")
            f.write("  }" + ("," if vi + 1 < len(result["variants"]) else "") + "\n")
        f.write(" ]\n}\n")


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
                      {"fer.mean": str(mean), "fer.std": str(std), "fer.stem": stem})
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
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if sys.argv[1] == "fixture":
        fixture(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "grads":
        grads(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "live":
        live(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)
