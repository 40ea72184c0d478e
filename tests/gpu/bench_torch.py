#!/usr/bin/python3
"""PyTorch on the GPU, beside libfernn's CUDA backend (tests/gpu/check.sh).

    python3 tests/gpu/bench_torch.py --model M [--seconds S]
        [--faces 1,8,64,256] [--tta 1,5] [--batch 256]

Same weights (the safetensors file loaded into torchvision's resnet18, as
tests/torch_reference.py does) and the same work per iteration as
tests/bench/bench-cpu's forward and tests/bench/bench-train:
  inference: a host batch of faces x TTA views goes up, forward (eval,
    no_grad), softmax averaged over the views, probabilities come down;
  training: a host batch goes up, forward, cross_entropy with class weights
    and label smoothing 0.1, backward, Adam step.
cudnn.benchmark is on; PyTorch's own defaults otherwise (TF32 convolutions).
One JSON object per line, like the C benchmarks.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def timed(fn, seconds, sync):
    fn()
    sync()
    iters, t0 = 0, time.perf_counter()
    while True:
        fn()
        iters += 1
        if iters % 4 == 0 or seconds <= 0:
            sync()
            t = time.perf_counter() - t0
            if t >= seconds:
                return iters / t


def main():
    import torch
    from torch_reference import load_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--faces", default="1,8,64,256")
    ap.add_argument("--tta", default="1,5")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--device", default="cuda", help="cpu: a dry run of this script")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("SKIP: torch.cuda.is_available() is False", file=sys.stderr)
        return 77
    torch.backends.cudnn.benchmark = True
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    m, ch, classes, size = load_model(a.model)
    m = m.to(dev).eval()

    for T in [int(v) for v in a.tta.split(",")]:
        for n in [int(v) for v in a.faces.split(",")]:
            x = torch.randn(n * T, ch, size, size)
            x = x.pin_memory() if dev.type == "cuda" else x

            def infer():
                with torch.no_grad():
                    p = m(x.to(dev, non_blocking=True)).softmax(1)
                    return p.view(n, T, classes).mean(1).cpu()
            rate = timed(infer, a.seconds, sync)
            print(json.dumps({"impl": "pytorch", "backend": dev.type, "tta": T,
                              "faces": n, "faces_per_s": rate * n,
                              "forward_views_per_s": rate * n * T}), flush=True)

    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    w = torch.tensor([1.0, 9.4, 1.0, 0.6, 0.8, 0.9, 1.3][:classes], device=dev)
    x = torch.rand(a.batch, ch, size, size).mul(4).sub(2)
    y = torch.randint(0, classes, (a.batch,))
    if dev.type == "cuda":
        x, y = x.pin_memory(), y.pin_memory()

    def step():
        opt.zero_grad(set_to_none=True)
        logits = m(x.to(dev, non_blocking=True))
        loss = torch.nn.functional.cross_entropy(
            logits, y.to(dev, non_blocking=True), weight=w, label_smoothing=0.1)
        loss.backward()
        opt.step()
        return loss.item()
    rate = timed(step, max(a.seconds, 3.0), sync)
    print(json.dumps({"impl": "pytorch", "backend": dev.type, "batch": a.batch,
                      "images_per_s": rate * a.batch}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
