#!/usr/bin/env python3
"""Inference speed of netc's native engine against ONNX Runtime on the same
net: the spec exported with `netc export`, batch and threads the same, in
alternating rounds so that both see the same machine load.

    python3 -m venv DIR && DIR/bin/pip install onnxruntime numpy
    python3 scripts/bench_vs_onnxruntime.py --python DIR/bin/python [--width 0.25] [--rounds 5]

Prints each round, the medians and the median of the per-round ratios.
Not run in CI (onnxruntime is a Python package).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ORT = r"""
import sys, time, numpy as np, onnxruntime as ort
path, batch, threads, steps, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
shape = [batch] + [d for d in s.get_inputs()[0].shape[1:]]
x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
for _ in range(warmup): s.run(["logits"], {"input": x})
t = []
for _ in range(steps):
    a = time.perf_counter(); s.run(["logits"], {"input": x}); t.append(time.perf_counter() - a)
t.sort(); print(batch / t[len(t) // 2])
"""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", required=True, help="a Python with onnxruntime and numpy")
    p.add_argument("--spec", default="specs/inception_v1.net")
    p.add_argument("--width", default="0.25")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--netc", default="target/release/netc")
    a = p.parse_args()
    model = Path(tempfile.mkdtemp()) / "net.onnx"
    subprocess.run([a.netc, "export", a.spec, "--set", f"width={a.width}", "--format", "onnx", "-o", str(model)],
                   check=True, stdout=subprocess.DEVNULL)
    netc_runs, ort_runs, ratios = [], [], []
    for r in range(a.rounds):
        out = subprocess.run([a.netc, "bench", a.spec, "--set", f"width={a.width}", "--batch", str(a.batch),
                              "--threads", str(a.threads), "--steps", str(a.steps), "--warmup", "2", "--json"],
                             check=True, capture_output=True, text=True).stdout
        n = json.loads(out)["infer_images_per_second"]
        o = float(subprocess.run([a.python, "-c", ORT, str(model), str(a.batch), str(a.threads), str(a.steps), "2"],
                                 check=True, capture_output=True, text=True).stdout)
        netc_runs.append(n), ort_runs.append(o), ratios.append(n / o)
        print(f"round {r + 1}: netc {n:8.1f} img/s   onnxruntime {o:8.1f} img/s   ratio {n / o:.3f}", flush=True)
    print(f"medians: netc {statistics.median(netc_runs):.1f} img/s, onnxruntime {statistics.median(ort_runs):.1f} "
          f"img/s; median of per-round ratios {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    sys.exit(main())
