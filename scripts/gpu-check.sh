#!/usr/bin/env bash
# The one check to run on a GPU machine, from the repository root, with
# target/gpu/netc.gz (scripts/build-cuda.sh) carried along:
#
#   scripts/gpu-check.sh                 # results in $OUT (default /tmp/gpu-check)
#   NETC=/path/to/netc scripts/gpu-check.sh
#
# 1. unpack the binary; 2. find CUDA's libraries in PyTorch's NVIDIA wheels
# and check that the binary loads; 3. the GPU (nvidia-smi); 4. one training
# step on the GPU against the native engine on the CPU, from the same
# weights on the same batch (`netc bench --verify`); 5. training speed
# against PyTorch eager on the same GPU, alternating rounds; 6. a short run
# on real CIFAR-10 and Grad-CAM heatmaps of it, on the GPU.
# Each stage prints what it found; the first failure stops the script with
# its reason, or, with KEEP_GOING=1 (one lent machine, one try), is noted
# and the next stage runs. Nothing here needs a Rust toolchain.
#
# DATA: the CIFAR-10 archive (default ../shared/data/cifar10-jpg.tar.gz,
# which does not travel to a lent machine: carry a copy).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-check}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
DATA=${DATA:-../shared/data/cifar10-jpg.tar.gz}
# The most seconds one stage may take.
LIMIT=${LIMIT:-300}
# The scale of stages 5 and 6 (smaller for a dry run on a CPU: DEVICE=cpu).
WIDTH=${WIDTH:-1.0}
BATCH=${BATCH:-128}
IMAGES=${IMAGES:-20000}
mkdir -p "$OUT"
FAILED=""
stage() { echo; echo "== $1 ($(date -u +%H:%M:%S))"; }
fail() {
  echo "gpu-check: FAILED at $1" >&2
  [ -n "${KEEP_GOING:-}" ] || exit 1
  FAILED="$FAILED; $1"
}

stage "1/6 binary"
if [ -z "${NETC:-}" ]; then
  [ -f target/gpu/netc.gz ] || fail "binary: target/gpu/netc.gz is missing (scripts/build-cuda.sh makes it)"
  NETC="$OUT/netc"
  gunzip -c target/gpu/netc.gz > "$NETC" && chmod +x "$NETC" || fail "binary: cannot unpack target/gpu/netc.gz"
fi
echo "$NETC"

stage "2/6 libraries"
# CUDA's libraries as PyTorch's wheels lay them out: nvidia/cu13/lib, or one
# nvidia/<library>/lib folder each.
LIBS=$("$PYTHON" - <<'PY' 2>/dev/null
import os
try:
    import nvidia
except ImportError:
    raise SystemExit
dirs = set()
for root in nvidia.__path__:
    for d, _, files in os.walk(root):
        if any(f.startswith(("libcublas", "libcurand", "libcudart", "libnvrtc")) and ".so" in f for f in files):
            dirs.add(d)
print(":".join(sorted(dirs)))
PY
)
# Then a CUDA toolkit's and the driver's folders, where they exist.
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64; do
  [ -d "$d" ] && LIBS="${LIBS:+$LIBS:}$d"
done
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
missing=$(ldd "$NETC" | grep "not found")
if [ -n "$missing" ]; then
  echo "$missing"
  fail "libraries: the binary cannot load them (above)"
  exit 1  # nothing later can run
fi
"$NETC" --version > /dev/null || { fail "libraries: the binary does not start"; exit 1; }
ldd "$NETC" | grep -E 'libcuda|libcublas|libcurand|libcudart'
echo "ok: the CUDA libraries resolve"

stage "3/6 GPU"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv | tee "$OUT/gpu.csv"
else
  echo "no nvidia-smi here"
fi

stage "4/6 one training step on $DEVICE against the native engine on the CPU"
timeout "$LIMIT" "$NETC" bench specs/inception_v1.net --set "width=${VERIFY_WIDTH:-0.25}" --batch 64 --steps 3 --warmup 1 \
  --device "$DEVICE" --engine candle --verify | tee "$OUT/verify.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "the step on $DEVICE (above)"

stage "5/6 training speed against PyTorch on $DEVICE (width $WIDTH, batch $BATCH or the largest half of it that fits)"
FIT=""
for b in "$BATCH" $((BATCH / 2)) $((BATCH / 4)); do
  echo "netc alone, batch $b:"
  timeout "$LIMIT" "$NETC" bench specs/inception_v1.net --set "width=$WIDTH" --batch "$b" --steps 10 \
    --device "$DEVICE" | tee "$OUT/netc-bench.txt"
  rc=${PIPESTATUS[0]}
  if [ "$rc" -eq 0 ]; then
    FIT=$b
    break
  fi
  [ "$rc" -eq 124 ] && echo "(stopped after $LIMIT s)"
done
if [ -n "$FIT" ]; then
  timeout "$LIMIT" "$PYTHON" scripts/bench_vs_pytorch.py --python "$PYTHON" --netc "$NETC" --device "$DEVICE" \
    --width "$WIDTH" --batch "$FIT" --steps 10 --rounds 3 | tee "$OUT/bench.txt"
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "the speed comparison (above)"
else
  fail "netc's training step at width $WIDTH on $DEVICE (above)"
fi

stage "6/6 real CIFAR-10 on $DEVICE: one epoch of $IMAGES images, evaluation, Grad-CAM"
rm -rf "$OUT/run" "$OUT/probe"
RUN=(specs/inception_v1.net --set "width=$WIDTH" --data "folder:$DATA")
timeout "$LIMIT" "$NETC" run "${RUN[@]}" --epochs 1 --train-images "$IMAGES" --test-images 2000 --batch-size "${FIT:-$BATCH}" \
  --device "$DEVICE" --out "$OUT/run" || fail "the real-data run"
cat "$OUT/run/metrics.csv"
# The same weights evaluated on the GPU and by the native engine on the CPU.
for on in "$DEVICE" cpu; do
  echo "eval on $on:"
  timeout "$LIMIT" "$NETC" eval "${RUN[@]}" --test-images 2000 --weights "$OUT/run/best.safetensors" \
    --device "$on" | head -1 || fail "evaluation on $on"
done
timeout "$LIMIT" "$NETC" probe "${RUN[@]}" --weights "$OUT/run/best.safetensors" --aggregate gradcam \
  --device "$DEVICE" --out "$OUT/probe" || fail "the heatmaps"
echo
if [ -n "$FAILED" ]; then
  echo "gpu-check: FAILED at${FAILED#;}" >&2
  exit 1
fi
echo "gpu-check: all stages passed; results in $OUT (record them in docs/gpu.md)"
