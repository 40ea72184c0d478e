#!/usr/bin/python3
"""libfernn vs PyTorch on the CPU: same weights, same batches, one run.

    /usr/bin/python3 tests/bench/compare_torch.py BUILD [--model M] [--seconds S]

For 1 and 2 threads, runs BUILD/tests/bench/bench-cpu (libfernn: full
classify path = preprocessing + TTA + forward + softmax, and the bare
forward) and torchvision's resnet18 loaded from the same safetensors file on
(faces x TTA, C, S, S) batches (forward only, torch.no_grad, eval mode).
PyTorch with 2 threads runs with OMP_WAIT_POLICY=PASSIVE (without it, it
collapses on these 2-core machines). Prints a Markdown table; the ratio is
ours / PyTorch in faces per second (> 1: we are faster).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FACES = [1, 8, 32]
TTAS = [1, 5]


def torch_worker(model, threads, seconds):
    import torch
    sys.path.insert(0, os.path.join(HERE, ".."))
    from torch_reference import load_model
    torch.set_num_threads(threads)
    m, ch, _, size = load_model(model)
    for T in TTAS:
        for n in FACES:
            x = torch.randn(n * T, ch, size, size)
            with torch.no_grad():
                m(x)
                iters, t0 = 0, time.perf_counter()
                while True:
                    m(x)
                    iters += 1
                    t = time.perf_counter() - t0
                    if t >= seconds:
                        break
            print(json.dumps({"impl": "pytorch", "threads": threads, "tta": T, "faces": n,
                              "faces_per_s": iters * n / t,
                              "forward_views_per_s": iters * n * T / t}), flush=True)


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--model")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--worker", type=int)
    a = ap.parse_args()
    if a.worker:
        return torch_worker(a.model, a.worker, a.seconds)
    model = a.model
    if not model:
        model = os.path.join(a.build, "bench-compare.safetensors")
        subprocess.run([os.path.join(a.build, "nn/tools/fer-init"), "--out", model,
                        "--seed", "1"], check=True, capture_output=True)
    rows = {}
    for threads in (1, 2):
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(threads))
        ours = run([os.path.join(a.build, "tests/bench/bench-cpu"), "--model", model,
                    "--threads", str(threads), "--seconds", str(a.seconds)])
        theirs = run([sys.executable, __file__, a.build, "--model", model, "--seconds",
                      str(a.seconds), "--worker", str(threads)], env=env)
        for r in ours + theirs:
            rows.setdefault((threads, r["tta"], r["faces"]), {})[r["impl"]] = r
    print(f"model: {model}")
    print("| threads | TTA | faces | libfernn faces/s (classify) | libfernn faces/s (forward) "
          "| PyTorch faces/s (forward) | ratio classify/PyTorch | ratio forward/PyTorch |")
    print("|---|---|---|---|---|---|---|---|")
    for (threads, T, n), r in sorted(rows.items()):
        o, p = r["libfernn"], r["pytorch"]
        fwd = o["forward_views_per_s"] / T
        print(f"| {threads} | {T} | {n} | {o['faces_per_s']:.1f} | {fwd:.1f} | "
              f"{p['faces_per_s']:.1f} | {o['faces_per_s'] / p['faces_per_s']:.2f} | "
              f"{fwd / p['faces_per_s']:.2f} |")


if __name__ == "__main__":
    main()
