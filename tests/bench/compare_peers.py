#!/usr/bin/python3
"""libfernn beside the CPU engines a user would otherwise pick: PyTorch,
ONNX Runtime and OpenVINO (latency and throughput hints), same weights, same
input, one run, engines alternating round by round.

    /usr/bin/python3 tests/bench/compare_peers.py BUILD [--model M]
        [--batches 1,5,40,160] [--threads 1,2] [--seconds 2] [--rounds 3]
        [--venv DIR]

What it does:
  1. Makes (once) a throwaway virtual environment, DIR (default
     $TMPDIR/fer-peers-venv), with --system-site-packages, and pip-installs
     onnxruntime and openvino there, with Debian's numpy pinned (a pip numpy 2
     would break Debian's python3-torch). Nothing is installed system-wide and
     neither package is ever a dependency of the plugin.
  2. Loads the model (default: the shipped models/feremotion-resnet18-
     fer2013.safetensors) into torchvision's resnet18 with Debian's PyTorch and
     exports it to ONNX (dynamic batch).
  3. Checks that all engines agree: the same seeded batch through each, logits
     compared with PyTorch's (max abs error printed; the run stops when an
     engine is off by more than 1e-3 relative to the logit range).
  4. For each round and thread count, runs each engine in its own process (in
     a rotating order, so no engine always runs first or last) over the
     batches, forward pass only (images already preprocessed: the same work
     for every engine), each batch for --seconds; keeps the median over rounds.
  5. Prints the machine's CPU and flags and one Markdown table per thread
     count: images/s per engine and libfernn / best peer.

libfernn is driven through its public C API (fer_model_load,
fer_model_set_threads, fer_model_forward) from BUILD/nn/libfernn.so with
ctypes, so every engine is timed by the same loop. PyTorch with 2 threads
runs with OMP_WAIT_POLICY=PASSIVE, as in compare_torch.py. OpenVINO runs with
INFERENCE_PRECISION_HINT=f32 (on CPUs with bf16 it would otherwise switch
precision) and a static batch per case; its throughput hint keeps its optimal
number of requests in flight (AsyncInferQueue).
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
SYSTEM_PY = "/usr/bin/python3"
ENGINES = ["libfernn", "pytorch", "onnxruntime", "openvino-latency", "openvino-throughput"]
PEERS = ENGINES[1:]
VENV_ENGINES = ("onnxruntime", "openvino-latency", "openvino-throughput")


def model_input(model):
    """(channels, size) of the model's input, from its file."""
    sys.path.insert(0, os.path.join(SOURCE, "tests"))
    from torch_reference import read_safetensors
    tensors, meta = read_safetensors(model)
    ch = tensors["conv1.weight"].shape[1]
    size = int(meta.get("fer.crop_size", meta.get("fer.input_size", 48)))
    return int(ch), size


def seeded_batch(n, ch, size, seed=5):
    import numpy as np
    return np.random.default_rng(seed).standard_normal((n, ch, size, size)).astype(np.float32)


# ---------------------------------------------------------------- engines

class Libfernn:
    def __init__(self, build, model, threads):
        lib = ctypes.CDLL(os.path.join(build, "nn", "libfernn.so"))
        lib.fer_model_load.restype = ctypes.c_void_p
        lib.fer_model_load.argtypes = [ctypes.c_char_p, ctypes.c_void_p,
                                       ctypes.POINTER(ctypes.c_void_p)]
        lib.fer_model_set_threads.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.fer_model_forward.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                          ctypes.c_void_p, ctypes.c_void_p]
        lib.fer_model_n_classes.argtypes = [ctypes.c_void_p]
        lib.fer_model_backend.argtypes = [ctypes.c_void_p]
        # backend choice CPU: a NULL options pointer is the library default
        # (auto), which is the CPU on a machine without a GPU; say which ran.
        m = lib.fer_model_load(model.encode(), None, None)
        if not m:
            sys.exit(f"libfernn: cannot load {model}")
        if lib.fer_model_backend(m) != 1:
            sys.exit("libfernn: the model did not load on the CPU backend")
        if not lib.fer_model_set_threads(m, threads, None):
            sys.exit(f"libfernn: cannot use {threads} threads")
        self.lib, self.m = lib, m
        self.k = lib.fer_model_n_classes(m)

    def __call__(self, x):
        import numpy as np
        out = np.empty((x.shape[0], self.k), np.float32)
        if not self.lib.fer_model_forward(self.m, x.ctypes.data, x.shape[0],
                                          out.ctypes.data, None):
            sys.exit("libfernn: forward failed")
        return out


class Torch:
    def __init__(self, model, threads):
        import torch
        sys.path.insert(0, os.path.join(SOURCE, "tests"))
        from torch_reference import load_model
        torch.set_num_threads(threads)
        self.torch = torch
        self.m = load_model(model)[0]

    def __call__(self, x):
        with self.torch.no_grad():
            return self.m(self.torch.from_numpy(x)).numpy()


class Ort:
    def __init__(self, onnx, threads):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.s = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])

    def __call__(self, x):
        return self.s.run(None, {"input": x})[0]


class OpenVino:
    def __init__(self, onnx, threads, hint):
        import openvino as ov
        self.ov, self.core, self.hint = ov, ov.Core(), hint
        self.onnx, self.threads, self.compiled = onnx, threads, {}

    def compile(self, shape):
        if shape not in self.compiled:
            m = self.core.read_model(self.onnx)
            m.reshape({"input": list(shape)})
            self.compiled[shape] = self.core.compile_model(m, "CPU", {
                "PERFORMANCE_HINT": self.hint,
                "INFERENCE_NUM_THREADS": self.threads,
                "INFERENCE_PRECISION_HINT": "f32"})
        return self.compiled[shape]

    def __call__(self, x):
        c = self.compile(x.shape)
        return c(x)[c.output(0)]

    def throughput(self, x, seconds):
        """Images/s with the optimal number of requests in flight."""
        c = self.compile(x.shape)
        jobs = c.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        q = self.ov.AsyncInferQueue(c, jobs)
        # No Python completion callback: with one (it counted the finished
        # requests) a run hung on a futex, every thread waiting. Counting
        # the requests started needs none: wait_all finishes each of them
        # before the clock stops.
        for _ in range(jobs):  # warm-up
            q.start_async({0: x})
        q.wait_all()
        started, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            q.start_async({0: x})
            started += 1
        q.wait_all()
        return started * x.shape[0] / (time.perf_counter() - t0)


def make_engine(name, a):
    if name == "libfernn":
        return Libfernn(a.build, a.model, a.threads)
    if name == "pytorch":
        return Torch(a.model, a.threads)
    if name == "onnxruntime":
        return Ort(a.onnx, a.threads)
    return OpenVino(a.onnx, a.threads, "LATENCY" if name.endswith("latency") else "THROUGHPUT")


def worker(a):
    """One engine, one thread count: logits of the check batch, or images/s
    for each batch size. JSON lines on stdout."""
    e = make_engine(a.worker, a)
    ch, size = model_input(a.model)
    if a.check:
        print(json.dumps({"engine": a.worker, "logits": e(seeded_batch(5, ch, size)).tolist()}))
        return
    for b in [int(v) for v in a.batches.split(",")]:
        x = seeded_batch(b, ch, size, seed=b)
        if a.worker == "openvino-throughput":
            ips = e.throughput(x, a.seconds)
        else:
            e(x)  # warm-up: every buffer at its steady-state size
            iters, t0 = 0, time.perf_counter()
            while True:
                e(x)
                iters += 1
                t = time.perf_counter() - t0
                if t >= a.seconds:
                    break
            ips = iters * b / t
        print(json.dumps({"engine": a.worker, "threads": a.threads, "batch": b,
                          "images_per_s": ips}), flush=True)


# ---------------------------------------------------------------- driver

def ensure_venv(venv):
    py = os.path.join(venv, "bin", "python3")
    probe = "import onnxruntime, openvino, torch, numpy; print(numpy.__version__)"
    if os.path.exists(py) and subprocess.run([py, "-c", probe], capture_output=True).returncode == 0:
        return py
    import numpy
    print(f"compare_peers: making the throwaway environment {venv} "
          "(onnxruntime, openvino; Debian's numpy and torch kept)", file=sys.stderr)
    r = subprocess.run([SYSTEM_PY, "-m", "venv", "--system-site-packages", venv])
    if r.returncode != 0:
        sys.exit(f"compare_peers: cannot create a virtual environment at {venv} "
                 "(Debian needs python3-venv: apt-get install python3-venv)")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as c:
        c.write(f"numpy=={numpy.__version__}\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "-c", c.name, "onnxruntime", "openvino"],
                   check=True)
    os.unlink(c.name)
    out = subprocess.run([py, "-c", probe], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"compare_peers: the environment {venv} cannot import the engines:\n"
                 f"{out.stderr}")
    return py


def export_onnx(model, path):
    import torch
    sys.path.insert(0, os.path.join(SOURCE, "tests"))
    from torch_reference import load_model
    m, ch, _, size = load_model(model)
    torch.onnx.export(m, torch.zeros(1, ch, size, size), path, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, opset_version=13)


def cpu_description():
    name, flags = "unknown CPU", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and name == "unknown CPU":
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    wanted = ["avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
              "amx_bf16"]
    return name, [f for f in wanted if f in flags]


def run_worker(py, a, engine, threads, check=False):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(threads))
    cmd = [py, os.path.abspath(__file__), a.build, "--model", a.model, "--onnx", a.onnx,
           "--worker", engine, "--threads", str(threads), "--batches", a.batches,
           "--seconds", str(a.seconds)]
    if check:
        cmd.append("--check")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"compare_peers: {engine} ({threads} threads) failed:\n{r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--model", default=os.path.join(
        SOURCE, "models", "feremotion-resnet18-fer2013.safetensors"))
    ap.add_argument("--batches", default="1,5,40,160")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--venv", default=os.path.join(tempfile.gettempdir(), "fer-peers-venv"))
    ap.add_argument("--onnx")
    ap.add_argument("--worker", choices=ENGINES)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    a.model = os.path.abspath(a.model)
    if a.worker:
        a.threads = int(a.threads)
        return worker(a)

    venv_py = ensure_venv(a.venv)
    a.onnx = os.path.join(a.venv, os.path.basename(a.model) + ".onnx")
    export_onnx(a.model, a.onnx)
    python_of = {e: venv_py if e in VENV_ENGINES else SYSTEM_PY for e in ENGINES}

    # 3. agreement
    logits = {e: run_worker(python_of[e], a, e, 1, check=True)[0]["logits"] for e in ENGINES}
    import numpy as np
    ref = np.array(logits["pytorch"])
    scale = float(ref.max() - ref.min()) or 1.0
    bad = []
    for e in ENGINES:
        err = float(np.abs(np.array(logits[e]) - ref).max())
        print(f"check: {e} vs PyTorch, 5 images: max abs logit error {err:.2e} "
              f"(relative to the logit range {err / scale:.1e})")
        if err / scale > 1e-3:
            bad.append(e)
    if bad:
        sys.exit(f"compare_peers: {', '.join(bad)} disagree with PyTorch: no timing")

    # 4. timing, engines rotating round by round
    threads_list = [int(t) for t in a.threads.split(",")]
    samples = {}
    for r in range(a.rounds):
        for threads in threads_list:
            order = ENGINES[r % len(ENGINES):] + ENGINES[:r % len(ENGINES)]
            for e in order:
                for row in run_worker(python_of[e], a, e, threads):
                    samples.setdefault((threads, row["batch"], e), []).append(row["images_per_s"])
            print(f"round {r + 1}/{a.rounds}, {threads} thread(s): done", file=sys.stderr)

    # 5. tables
    name, flags = cpu_description()
    versions = subprocess.run([venv_py, "-c", "import onnxruntime, openvino, torch; "
                               "print(torch.__version__, onnxruntime.__version__, "
                               "openvino.__version__)"], capture_output=True,
                              text=True).stdout.split()
    print(f"\nCPU: {name}; flags: {' '.join(flags)}; OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    if len(versions) == 3:
        print(f"PyTorch {versions[0]}, ONNX Runtime {versions[1]}, OpenVINO {versions[2]}")
    print(f"model: {a.model}; forward only, images/s, median of {a.rounds} rounds "
          f"of {a.seconds:g} s per case")
    for threads in threads_list:
        print(f"\n{threads} thread(s)\n")
        print("| batch | " + " | ".join(ENGINES) + " | best peer | libfernn / best peer |")
        print("|---:|" + "---:|" * (len(ENGINES) + 2))
        for b in [int(v) for v in a.batches.split(",")]:
            med = {e: statistics.median(samples[(threads, b, e)]) for e in ENGINES}
            best = max(PEERS, key=lambda e: med[e])
            cells = " | ".join(f"{med[e]:.1f}" for e in ENGINES)
            print(f"| {b} | {cells} | {best} | {med['libfernn'] / med[best]:.2f}x |")


if __name__ == "__main__":
    main()
