#!/usr/bin/python3
"""The GPU window's summary table (tests/gpu/check.sh), in Markdown.

    python3 tests/gpu/summary.py WORKDIR TESTS_LINE GPU_NAME

Reads WORKDIR/logs: gpu-tests.log, bench-fernn.jsonl, bench-torch.jsonl,
fer-train.out and run.json (tests/gpu/window-train.sh). Prints what is
there and a dash for what is not, so that a run cut short still reports.
"""
import json
import os
import re
import sys


def rows(logs, name):
    p = os.path.join(logs, name)
    if not os.path.exists(p):
        return []
    return [json.loads(l) for l in open(p) if l.startswith("{")]


def find(rows, impl, r):
    return next((x for x in rows if x.get("impl") == impl and x.get("tta") == r["tta"]
                 and x.get("faces") == r["faces"]), None)


def history(o):
    """The per-epoch rows wherever run.json keeps them."""
    if isinstance(o, dict):
        if isinstance(o.get("history"), list):
            return o["history"]
        for v in o.values():
            h = history(v)
            if h:
                return h
    return []


def main():
    work, tests, gpu = sys.argv[1], sys.argv[2], sys.argv[3]
    logs = os.path.join(work, "logs")
    ours, theirs = rows(logs, "bench-fernn.jsonl"), rows(logs, "bench-torch.jsonl")
    print("GPU: %s; GPU tests: %s" % (gpu, tests))
    log = os.path.join(logs, "gpu-tests.log")
    fails = [l.rstrip() for l in open(log) if l.startswith("FAIL")] if os.path.exists(log) else []
    for l in fails[:12]:
        print("  " + l[:160])
    print()
    print("| TTA | faces | libfernn classify faces/s | libfernn forward faces/s | "
          "libfernn forward TF32 | libfernn forward FP16 | PyTorch faces/s | "
          "forward ratio (TF32) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in ours:
        if "tta" not in r or r["impl"] != "libfernn":
            continue
        t, t32 = find(theirs, "pytorch", r), find(ours, "libfernn-tf32", r)
        t16 = find(ours, "libfernn-fp16", r)
        fwd = r["forward_views_per_s"] / r["tta"]
        fwd32 = t32["forward_views_per_s"] / r["tta"] if t32 else None
        fwd16 = t16["forward_views_per_s"] / r["tta"] if t16 else None
        best = fwd32 or fwd
        print("| %d | %d | %.0f | %.0f | %s | %s | %s | %s |" % (
            r["tta"], r["faces"], r["faces_per_s"], fwd,
            "%.0f" % fwd32 if fwd32 else "-",
            "%.0f" % fwd16 if fwd16 else "-",
            "%.0f" % t["faces_per_s"] if t else "-",
            "%.2f" % (best / t["faces_per_s"]) if t else "-"))
    print()
    print("| training | stem | batch | images/s |")
    print("|---|---|---|---|")
    for r in ours + theirs:
        if "images_per_s" in r:
            print("| %s (%s) | %s | %s | %.0f |" % (
                r["impl"], r.get("backend", "cuda"), r.get("stem", "torchvision"),
                r.get("batch", "-"), r["images_per_s"]))
    print()
    print("| trained model (small stem, fer-train) | value |")
    print("|---|---|")
    out = os.path.join(logs, "fer-train.out")
    text = open(out).read() if os.path.exists(out) else ""
    m = re.search(r"validation accuracy: ([0-9.]+) plain(?:, ([0-9.]+) with (\d+) TTA views)?", text)
    b = re.search(r"best epoch: (\d+) of (\d+) \(([^)]*)\)", text)
    run = os.path.join(logs, "run.json")
    seconds = None
    if os.path.exists(run):
        try:
            seconds = sum(h.get("seconds", 0) for h in history(json.load(open(run))))
        except (ValueError, AttributeError):
            pass
    print("| epochs (best) | %s |" % ("%s (%s)" % (b.group(2), b.group(1)) if b else "-"))
    print("| training seconds | %s |" % ("%.0f" % seconds if seconds is not None else "-"))
    print("| PublicTest, 1 view | %s |" % ("%.2f%%" % (100 * float(m.group(1))) if m else "-"))
    print("| PublicTest, %s views | %s |" % (
        m.group(3) if m and m.group(3) else "10",
        "%.2f%%" % (100 * float(m.group(2))) if m and m.group(2) else "-"))
    check = os.path.join(logs, "check.log")
    joined = os.path.exists(check) and "weights rejoined" in open(check).read()
    print("| weights | %s |" % ("F16 in parts, weights.sha256, join-weights.sh"
                               if joined else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
