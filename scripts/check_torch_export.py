#!/usr/bin/env python
"""Checks `netc export --format torch` against netc (not in CI: needs torch).

Run from the repository root, after `cargo build --release`:

    /tmp/torchvenv/bin/python scripts/check_torch_export.py [--ort-python /tmp/ortvenv/bin/python]

For a few paper specs at a small width:
 1. exports the PyTorch file and builds the module with no arguments;
 2. writes a checkpoint from Python (random weights, batch-norm running
    statistics far from 0 and 1) with the file's save_netc_checkpoint, so
    that netc must accept a Python-written checkpoint, then `netc export
    --format onnx --weights` of it; for `ours`, also a checkpoint written by
    `netc run --profile quick` (netc-written, loaded by load_netc_checkpoint);
 3. runs the ONNX model with onnxruntime (netc's graph, held to candle's
    reference by tests/export.rs) and the module on the same normalised
    images, and compares logits and every probe (relative L2 error);
 4. trains with `torchrun --nproc_per_node=2` (gloo, CPU) for a few steps on
    `--data random` and checks that `netc eval --data synthetic` loads the
    checkpoint rank 0 wrote.
Exit status 1 when any error exceeds TOLERANCE or a step fails.
"""

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

TOLERANCE = 1e-4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
NETC = os.path.join(TARGET, "release", "netc")
SPECS = [
    ("specs/ours.net", ["width=0.125"]),
    ("specs/attention_early.net", ["width=0.125"]),
    ("specs/ran92.net", ["width=0.0625"]),
    ("specs/inception_v1.net", ["width=0.125"]),
    # Every op in every variant: ceil-mode pools, upsampling, affine, ...
    ("tests/export/every_op.net", []),
]
ORT_RUNNER = r"""
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
names = [o.name for o in s.get_outputs()]
np.savez(sys.argv[3], **dict(zip(names, s.run(names, {"input": x}))))
"""


def sh(*args, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, args))}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def sets(values):
    return [a for v in values for a in ("--set", v)]


def load_module(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rel(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-6))


def compare(mod, model, ckpt, spec, set_args, profile, tmp, ort_python, label):
    onnx = os.path.join(tmp, "net.onnx")
    sh(NETC, "export", spec, *set_args, *profile, "--weights", ckpt, "-o", onnx)
    normalise = mod.load_netc_checkpoint(model, ckpt)
    assert normalise is not None, "no normalisation in the checkpoint"
    model.eval()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, *mod.IMAGE_SHAPE, generator=g)
    np.save(os.path.join(tmp, "x.npy"), x.numpy())
    sh(ort_python, "-c", ORT_RUNNER, onnx, os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npz"))
    ref = np.load(os.path.join(tmp, "y.npz"))
    with torch.no_grad():
        logits, probes = model(x, return_probes=True)
    errors = {"logits": rel(logits.numpy(), ref["logits"])}
    for name, t in probes.items():
        errors[name] = rel(t.numpy(), ref[name])
    worst = max(errors.values())
    detail = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
    ok = worst <= TOLERANCE
    print(f"{'ok  ' if ok else 'FAIL'} {label}: {detail}", flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ort-python", default="/tmp/ortvenv/bin/python")
    ap.add_argument("--skip-run", action="store_true", help="no `netc run` checkpoint")
    args = ap.parse_args()
    torch.manual_seed(0)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for spec, values in SPECS:
            name = os.path.basename(spec)[:-4]
            set_args = sets(values)
            py = os.path.join(tmp, f"{name}.py")
            sh(NETC, "export", spec, *set_args, "--format", "torch", "-o", py)
            mod = load_module(py)
            model = mod.NET_CLASS()
            keys = set(mod.netc_state_dict(model))
            listed = {n for n, _ in mod.CHECKPOINT_TENSORS}
            if keys != listed:
                print(f"FAIL {name}: state_dict keys differ from netc's: {sorted(keys ^ listed)[:5]}")
                ok = False
                continue
            # A Python-written checkpoint with non-trivial statistics.
            with torch.no_grad():
                for k, v in model.state_dict().items():
                    if k.endswith("running_mean"):
                        v.copy_(torch.randn_like(v) * 0.3)
                    elif k.endswith("running_var"):
                        v.copy_(torch.rand_like(v) + 0.5)
                    elif k.endswith(".weight") and v.dim() == 1:
                        v.copy_(torch.rand_like(v) + 0.5)
                    elif k.endswith(".bias"):
                        v.copy_(torch.randn_like(v) * 0.1)
            ckpt = os.path.join(tmp, f"{name}.safetensors")
            mod.save_netc_checkpoint(model, ckpt, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26])
            fresh = type(model)()
            ok &= compare(mod, fresh, ckpt, spec, set_args, [], tmp, args.ort_python,
                          f"{name} ({', '.join(values) or 'as written'}), {len(keys)} tensors, Python-written checkpoint")
        if not args.skip_run:
            spec, values = SPECS[0]
            run = os.path.join(tmp, "run")
            sh(NETC, "run", spec, "--profile", "quick", "--epochs", "1", "--train-images", "64",
               "--test-images", "32", "--data", "synthetic", "--out", run)
            py = os.path.join(tmp, "quick.py")
            sh(NETC, "export", spec, "--profile", "quick", "--format", "torch", "-o", py)
            mod = load_module(py)
            model = mod.NET_CLASS()
            ok &= compare(mod, model, os.path.join(run, "last.safetensors"), spec, [], ["--profile", "quick"], tmp,
                          args.ort_python, "ours (--profile quick), checkpoint written by `netc run`")
        # torchrun, 2 processes, gloo on CPU; then netc eval of rank 0's checkpoint.
        spec, values = SPECS[0]
        py = os.path.join(tmp, "ddp.py")
        sh(NETC, "export", spec, *sets(values), "--format", "torch", "-o", py)
        out = os.path.join(tmp, "ddp")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        log = sh(sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517", py,
                 "--data", "random", "--epochs", "1", "--max-steps", "3", "--batch-size", "16",
                 "--train-images", "64", "--out", out, env=env)
        print("torchrun (2 processes, gloo):", log.strip().splitlines()[-1], flush=True)
        ev = sh(NETC, "eval", spec, *sets(values), "--weights", os.path.join(out, "last.safetensors"),
                "--data", "synthetic", "--test-images", "32")
        print("netc eval of its last.safetensors:", ev.strip().splitlines()[0], flush=True)
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
