#!/usr/bin/env bash
# The default build runs on any x86-64 CPU: this runs it under an emulated
# CPU without AVX (qemu's Nehalem: SSE4.2 at most), where the kernels that
# are compiled per instruction set must fall back to their plain versions
# (docs/decisions.md, 22), and compares a short training run with the same
# run on this machine's own CPU.
#
#   scripts/check_portable.sh [CPU]     # CPU: a qemu model, default Nehalem
#
# Needs qemu-user (Debian: apt-get install qemu-user). Takes a few minutes:
# the emulator runs the engine about 20-50 times slower than the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
cpu="${1:-Nehalem}"
command -v qemu-x86_64 >/dev/null || { echo "needs qemu-x86_64: apt-get install qemu-user" >&2; exit 2; }
cargo build --release --locked --quiet
bin=target/release/netc
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== check every spec under -cpu $cpu"
qemu-x86_64 -cpu "$cpu" "$bin" check specs/*.net specs/lib/*.net

echo "== one training and one inference step under -cpu $cpu"
qemu-x86_64 -cpu "$cpu" "$bin" bench specs/inception_v1.net --set width=0.125 --batch 8 --steps 1 --warmup 0

run=(run tests/fixtures/small_cnn.net --epochs 1 --train-images 256 --test-images 128 --quiet)
echo "== a short run under -cpu $cpu, and the same on this CPU"
qemu-x86_64 -cpu "$cpu" "$bin" "${run[@]}" --out "$tmp/emulated"
"$bin" "${run[@]}" --out "$tmp/native"
python3 - "$tmp" <<'PY'
import csv, sys
rows = {k: list(csv.DictReader(open(f"{sys.argv[1]}/{k}/metrics.csv"))) for k in ("emulated", "native")}
for k, r in rows.items():
    print(f"{k:9} train loss {float(r[-1]['train_loss']):.6f}  test accuracy {float(r[-1]['test_accuracy']):.4f}")
a, b = (float(rows[k][-1]["train_loss"]) for k in ("emulated", "native"))
# The matrix products pick other kernels (SSE against AVX-512), which sum in
# another order; the rest is the same arithmetic. One epoch stays close.
assert abs(a - b) <= 1e-3 * max(1.0, abs(b)), f"the emulated run's loss {a} is not the native {b}"
print("ok: the same training on both CPUs")
PY
