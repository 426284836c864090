#!/usr/bin/env bash
# Builds the CUDA netc for a GPU machine, on a machine without a GPU or a
# CUDA toolkit, and packs it small enough to carry (docs/gpu.md):
#
#   scripts/build-cuda.sh        # -> target/gpu/netc.gz (~14 MB); 12 min the first time
#
# The toolkit comes from ../shared/gpu/cuda-build-env.sh (NVIDIA's wheels
# under /tmp, needs root once). The build has its own target folder, so the
# CPU build in target/release is left alone. On the GPU machine,
# scripts/gpu-check.sh unpacks and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source ../shared/gpu/cuda-build-env.sh
start=$(date +%s)
cargo build --release --locked --features cuda --target-dir target/cuda
built=$(($(date +%s) - start))
mkdir -p target/gpu
strip -o target/gpu/netc target/cuda/release/netc
gzip -9c target/gpu/netc > target/gpu/netc.gz
echo "built in ${built} s: target/cuda/release/netc $(du -h target/cuda/release/netc | cut -f1)," \
     "stripped $(du -h target/gpu/netc | cut -f1), packed target/gpu/netc.gz $(du -h target/gpu/netc.gz | cut -f1)"
rm target/gpu/netc
echo "carry target/gpu to the GPU machine and run scripts/gpu-check.sh there"
