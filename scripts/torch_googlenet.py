"""PyTorch baseline for netc's training-speed benchmark, on the CPU or a GPU.

A copy of ../shared/bench/torch_googlenet.py with `--device`: on `cuda` the
model and the batch live on the GPU, and the clock stops after
`torch.cuda.synchronize()`; the peak is then the GPU's allocated memory.

Trains the CIFAR GoogLeNet (the pytorch-cifar layout, channels scaled by
round(c * width), halves away from zero, at least 1) for a few SGD steps on random 32x32 data and prints the
training throughput. Run it on the same machine, in the same minute, as
`netc bench` on specs/inception_v1.net with the same width and batch, and
compare the two numbers as a ratio.

    python3 torch_googlenet.py --width 0.25 --batch 64 --steps 5 --threads 2
    python3 torch_googlenet.py --width 1.0 --batch 128 --steps 20 --device cuda

Needs `pip install torch` (the CPU build is enough for `--device cpu`).
"""
import argparse
import math
import resource
import time

import torch
import torch.nn as nn


def cbr(cin, cout, k=1, pad=0):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=pad), nn.BatchNorm2d(cout), nn.ReLU(True))


class Inception(nn.Module):
    def __init__(self, cin, n1, n3r, n3, n5r, n5, pp):
        super().__init__()
        self.b1 = cbr(cin, n1)
        self.b2 = nn.Sequential(cbr(cin, n3r), cbr(n3r, n3, 3, 1))
        self.b3 = nn.Sequential(cbr(cin, n5r), cbr(n5r, n5, 3, 1), cbr(n5, n5, 3, 1))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), cbr(cin, pp))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


STAGES = [
    [(64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)],
    [(192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
     (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)],
    [(256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)],
]


def googlenet(width=1.0, classes=10):
    s = lambda c: max(1, math.floor(c * width + 0.5))  # half away from zero, at least 1
    layers, cin = [cbr(3, s(192), 3, 1)], s(192)
    for i, stage in enumerate(STAGES):
        if i > 0:
            layers.append(nn.MaxPool2d(3, 2, 1))
        for ch in stage:
            ch = [s(c) for c in ch]
            layers.append(Inception(cin, *ch))
            cin = ch[0] + ch[2] + ch[4] + ch[5]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    a = ap.parse_args()
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = googlenet(a.width).to(device)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = torch.randn(a.batch, 3, 32, 32).to(device), torch.randint(0, 10, (a.batch,)).to(device)

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step(); step()  # warm-up
    sync()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    dt = (time.perf_counter() - t) / a.steps
    if cuda:
        rss = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pytorch {torch.__version__} device={a.device} width={a.width} batch={a.batch} params={params} "
          f"step_ms={dt * 1e3:.1f} train_img_per_s={a.batch / dt:.1f} peak_rss_mb={rss:.0f}")


if __name__ == "__main__":
    main()
