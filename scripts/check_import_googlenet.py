"""Checks `netc import` on GoogLeNet end to end, against PyTorch.

    /tmp/torchvenv/bin/python scripts/check_import_googlenet.py [NETC] [ORT_PYTHON]

NETC defaults to $CARGO_TARGET_DIR/release/netc (else target/release/netc);
ORT_PYTHON, a Python with onnxruntime and numpy, to /tmp/ortvenv/bin/python.

1. torchvision's GoogLeNet(aux_logits=False), initialised with seed 0
   (weights=None: no download), its batch-norm running statistics and
   affine parameters then drawn at random so that eval mode is not a
   trivial BN; its state_dict saved with safetensors;
2. `netc import specs/googlenet_imagenet.net` with the shipped mapping
   `specs/mappings/googlenet_imagenet_torchvision.toml`;
3. `netc export --format onnx --weights` the checkpoint, run by ONNX Runtime;
4. the logits of both on the same fixed input (2 images, eval mode)
   compared: the largest absolute difference, the relative L2 error and
   whether the top-1 classes agree. Exits 1 if the relative error is over 1e-4.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
NETC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TARGET, "release", "netc")
ORT = sys.argv[2] if len(sys.argv) > 2 else "/tmp/ortvenv/bin/python"

ORT_RUN = """
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
x = np.load(sys.argv[2])
np.save(sys.argv[3], s.run(["logits"], {"input": x})[0])
"""


def run(*args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def main():
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    # transform_input is False without pretrained weights: the input is
    # the normalised image, as netc's.
    assert not model.transform_input
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = model(x).numpy()
    with tempfile.TemporaryDirectory() as d:
        sd = os.path.join(d, "googlenet.safetensors")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, sd)
        ckpt = os.path.join(d, "googlenet.ckpt")
        print(run(NETC, "import", os.path.join(ROOT, "specs/googlenet_imagenet.net"),
                  "--state-dict", sd,
                  "--mapping", os.path.join(ROOT, "specs/mappings/googlenet_imagenet_torchvision.toml"),
                  "-o", ckpt).strip())
        onnx = os.path.join(d, "googlenet.onnx")
        print(run(NETC, "export", os.path.join(ROOT, "specs/googlenet_imagenet.net"),
                  "--weights", ckpt, "-o", onnx).strip())
        np.save(os.path.join(d, "x.npy"), x.numpy())
        run(ORT, "-c", ORT_RUN, onnx, os.path.join(d, "x.npy"), os.path.join(d, "y.npy"))
        got = np.load(os.path.join(d, "y.npy"))
    diff = np.abs(got - want).max()
    rel = np.linalg.norm(got - want) / np.linalg.norm(want)
    top_t, top_n = want.argmax(1).tolist(), got.argmax(1).tolist()
    print(f"logits {list(want.shape)}: max |netc - torch| = {diff:.3e}, relative L2 error = {rel:.3e}, "
          f"top-1 torch {top_t} netc {top_n}")
    if rel > 1e-4 or top_t != top_n:
        sys.exit("FAIL: netc's logits differ from torch's")
    print("OK")


if __name__ == "__main__":
    main()
