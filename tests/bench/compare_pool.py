#!/usr/bin/env python3
"""The max-pool alone, libfernn beside PyTorch (issue 9): the torchvision
stem's pool (3x3, stride 2, pad 1 over 64 channels at 22x22), forward and
backward, microseconds per call, best of the rounds, one thread each.

    /usr/bin/python3 tests/bench/compare_pool.py BUILD [--batches 1,40,64]
        [--seconds 0.5] [--rounds 3]

libfernn: BUILD/tests/bench/bench-pool (NHWC, cpu/pool.c). PyTorch:
torch.nn.functional.max_pool2d on the same shape, in its default
contiguous (NCHW) layout as the network runs it, and in channels_last
(NHWC, libfernn's layout); backward through autograd of the pool alone
(the gradient w.r.t. the input). Engines alternate round by round."""
import argparse
import json
import os
import subprocess
import time

import torch
import torch.nn.functional as F


def torch_us(x, seconds, backward):
    grad = torch.rand(F.max_pool2d(x, 3, 2, 1).shape).contiguous(
        memory_format=torch.channels_last
        if x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous() else torch.contiguous_format)
    iters, t0 = 0, time.perf_counter()
    while True:
        if backward:
            xr = x.detach().requires_grad_(True)
            y = F.max_pool2d(xr, 3, 2, 1)
            y.backward(grad)
        else:
            with torch.no_grad():
                F.max_pool2d(x, 3, 2, 1)
        iters += 1
        t = time.perf_counter() - t0
        if t >= seconds:
            return t / iters * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--batches", default="1,40,64")
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    bench = os.path.join(a.build, "tests", "bench", "bench-pool")
    best = {}
    for _ in range(a.rounds):
        out = subprocess.run([bench, "--batches", a.batches, "--seconds",
                              str(a.seconds), "--reps", "1"],
                             check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            r = json.loads(line)
            for kind in ("forward", "backward"):
                key = (r["batch"], kind, "libfernn")
                best[key] = min(best.get(key, 1e30), r[kind + "_us"])
        for b in (int(s) for s in a.batches.split(",")):
            x = torch.relu(torch.rand(b, 64, 22, 22) - 0.33)
            for layout, xx in (("pytorch NCHW", x),
                               ("pytorch NHWC", x.contiguous(
                                   memory_format=torch.channels_last))):
                for kind in ("forward", "backward"):
                    key = (b, kind, layout)
                    best[key] = min(best.get(key, 1e30),
                                    torch_us(xx, a.seconds, kind == "backward"))
    print(f"PyTorch {torch.__version__}, 1 thread, 3x3/2 max-pool over "
          f"64 x 22 x 22, microseconds per call, best of {a.rounds} rounds")
    print()
    print("| batch | pass | libfernn | PyTorch NCHW | PyTorch NHWC | "
          "PyTorch NCHW / libfernn |")
    print("|---:|---|---:|---:|---:|---:|")
    for b in (int(s) for s in a.batches.split(",")):
        for kind in ("forward", "backward"):
            ours = best[(b, kind, "libfernn")]
            nchw = best[(b, kind, "pytorch NCHW")]
            nhwc = best[(b, kind, "pytorch NHWC")]
            print(f"| {b} | {kind} | {ours:.1f} | {nchw:.1f} | {nhwc:.1f} | "
                  f"{nchw / ours:.2f}x |")


if __name__ == "__main__":
    main()
