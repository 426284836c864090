#!/usr/bin/env python3
"""netc against PyTorch on the same CPU or GPU, in the same minutes.

Runs `netc bench specs/inception_v1.net` and scripts/torch_googlenet.py
(the same CIFAR GoogLeNet, width, batch and thread count) alternately, round
after round, so that both see the same machine load, and prints each round,
the medians, and netc's training throughput as a ratio to PyTorch's. With
`--device cuda`, netc runs its candle engine on the GPU and PyTorch runs
eager on it; memory is then each one's GPU memory.

    cargo build --release
    python3 scripts/bench_vs_pytorch.py --python /path/to/venv-with-torch/bin/python \
        --width 0.25 --batch 64 --threads 2 --rounds 5
    python3 scripts/bench_vs_pytorch.py --device cuda --netc /tmp/netc --width 1.0 --batch 128 --steps 20

Only the standard library here; the PyTorch side needs `pip install torch`.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def netc(a):
    cmd = [str(a.netc), "bench", str(ROOT / "specs/inception_v1.net"), "--set", f"width={a.width}",
           "--batch", str(a.batch), "--steps", str(a.steps), "--threads", str(a.threads), "--json",
           "--device", a.device]
    r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return r["train_images_per_second"], r.get("peak_device_memory_mib") or r["peak_memory_mib"]


def torch(a):
    cmd = [a.python, str(a.torch_script), "--width", str(a.width), "--batch", str(a.batch),
           "--steps", str(a.steps), "--threads", str(a.threads), "--device", a.device]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    speed = re.search(r"train_img_per_s=([\d.]+)", out)
    rss = re.search(r"peak_rss_mb=([\d.]+)", out)
    if not speed or not rss:
        sys.exit(f"unexpected output from {a.torch_script}:\n{out}")
    return float(speed.group(1)), float(rss.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per run (each program also warms up)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda[:N] (a CUDA build of netc)")
    ap.add_argument("--python", default="python3", help="a Python with torch installed")
    ap.add_argument("--netc", type=Path, default=ROOT / "target/release/netc")
    ap.add_argument("--torch-script", type=Path, default=ROOT / "scripts/torch_googlenet.py")
    a = ap.parse_args()
    if not a.netc.exists():
        sys.exit(f"{a.netc} is missing: run `cargo build --release` first")
    print(f"CIFAR GoogLeNet width {a.width}, batch {a.batch}, {a.threads} threads, {a.steps} timed steps per run, "
          f"on {a.device}")
    print(f"{'round':>5}  {'netc img/s':>10}  {'torch img/s':>11}  {'ratio':>6}  {'netc MiB':>8}  {'torch MiB':>9}")
    rows = []
    for i in range(a.rounds):
        n, nm = netc(a)
        t, tm = torch(a)
        rows.append((n, t, nm, tm))
        print(f"{i + 1:>5}  {n:>10.1f}  {t:>11.1f}  {n / t:>6.2f}  {nm:>8.0f}  {tm:>9.0f}", flush=True)
    med = lambda k: statistics.median(r[k] for r in rows)
    ratio = statistics.median(r[0] / r[1] for r in rows)
    print(f"median  {med(0):>10.1f}  {med(1):>11.1f}  {ratio:>6.2f}  {med(2):>8.0f}  {med(3):>9.0f}")
    print(f"netc trains at {ratio:.2f}x PyTorch's images/s (median of per-round ratios)")


if __name__ == "__main__":
    main()
