#!/usr/bin/python3
"""Training speed, libfernn vs PyTorch on the CPU, in one run.

    /usr/bin/python3 tests/bench/compare_torch_train.py BUILD [--seconds S] [--rounds R]
        [--stems torchvision,nopool,small] [--threads 1,2]

One training step = forward in training mode (batch statistics), class-
weighted cross-entropy with label smoothing 0.1, backward, Adam (lr 1e-3):
fer-train's step, and the PyTorch peer's (../shared/reference/
torch_fer_cpu.py) without its data augmentation. Both start from the same
weights (a fer-init model that PyTorch loads) and train on batches of 64
1x48x48 images drawn uniformly from [-2, 2]. For 1 and 2 threads, the two
implementations alternate R rounds of S seconds each, so that load from
elsewhere on a shared machine hits both alike; the table gives the median
images/s of each and their ratio (> 1: libfernn is faster). PyTorch with 2
threads runs with OMP_WAIT_POLICY=PASSIVE. --stems runs each stem in turn
(a fer-init model of that stem, loaded into torchvision's resnet18 with the
same stem): torchvision (7x7/2 conv + max-pool, layer1 at 12 x 12), nopool
(7x7/2 conv, layer1 at 24 x 24) and small (3x3/1 conv, layer1 at 48 x 48).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BATCH, SIZE = 64, 48
WEIGHTS = [1.0, 9.4, 1.0, 0.6, 0.8, 0.9, 1.3]


def torch_worker(model, threads, seconds):
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(HERE, ".."))
    from torch_reference import read_safetensors, build, load_into
    torch.set_num_threads(threads)
    tensors, meta = read_safetensors(model)
    m = build(meta.get("fer.stem", "torchvision"), "fc", 1, 7)
    load_into(m, tensors)
    m.train()
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(BATCH, 1, SIZE, SIZE, generator=g) * 4 - 2
    y = torch.randint(0, 7, (BATCH,), generator=g)
    w = torch.tensor(WEIGHTS)

    def step():
        loss = F.cross_entropy(m(x), y, weight=w, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
    steps, t0 = 0, time.perf_counter()
    while True:
        loss = step()
        steps += 1
        t = time.perf_counter() - t0
        if t >= seconds and steps >= 3:
            break
    print(json.dumps({"impl": "pytorch", "threads": threads, "steps": steps,
                      "images_per_s": steps * BATCH / t, "loss": loss}), flush=True)


def last_json(cmd, env):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(l) for l in out.splitlines() if l.startswith("{")][-1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--stems", default="torchvision")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--torch-worker", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        torch_worker(a.torch_worker[0], int(a.torch_worker[1]), float(a.torch_worker[2]))
        return
    tools = os.path.join(a.build, "nn", "tools")
    bench = os.path.join(a.build, "tests", "bench", "bench-train")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for stem in a.stems.split(","):
            model = os.path.join(tmp, stem + ".safetensors")
            subprocess.run([os.path.join(tools, "fer-init"), "--out", model, "--seed", "1",
                            "--stem", stem], check=True, capture_output=True)
            for threads in (int(t) for t in a.threads.split(",")):
                env = dict(os.environ)
                if threads > 1:
                    env["OMP_WAIT_POLICY"] = "PASSIVE"
                ours, theirs = [], []
                for _ in range(a.rounds):
                    ours.append(last_json([bench, "--model", model, "--stem", stem,
                                           "--threads", str(threads),
                                           "--batch", str(BATCH), "--size", str(SIZE),
                                           "--seconds", str(a.seconds)], env)["images_per_s"])
                    theirs.append(last_json([sys.executable, __file__, a.build, "--torch-worker",
                                             model, str(threads), str(a.seconds)],
                                            env)["images_per_s"])
                o, t = statistics.median(ours), statistics.median(theirs)
                rows.append((stem, threads, o, t))
                print(json.dumps({"stem": stem, "threads": threads, "libfernn": ours,
                                  "pytorch": theirs}), file=sys.stderr, flush=True)
    print("OPENBLAS_CORETYPE=%s, batch %d, 1x%dx%d, Adam"
          % (os.environ.get("OPENBLAS_CORETYPE", "(unset)"), BATCH, SIZE, SIZE))
    print()
    print("| stem | threads | libfernn images/s | PyTorch images/s | ratio |")
    print("|:-----|--------:|------------------:|-----------------:|------:|")
    for stem, threads, o, t in rows:
        print("| %s | %d | %.1f | %.1f | %.2fx |" % (stem, threads, o, t, o / t))

if __name__ == "__main__":
    main()
