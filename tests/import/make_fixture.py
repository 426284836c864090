"""Makes the fixture of tests/import.rs (run once, output committed).

    /tmp/torchvenv/bin/python tests/import/make_fixture.py

Writes, next to this script:
- tiny_state_dict.safetensors: a tiny torch CNN (the twin of tiny.net,
  with torch's own module names) after a few training steps in train
  mode, so BN's running statistics are not trivial;
- tiny_io.safetensors: a fixed input `input` [2, 3, 8, 8] and the logits
  `logits` torch computes for it in eval mode;
- googlenet_torchvision_keys.json: the name and shape of every tensor in
  torchvision's GoogLeNet(aux_logits=False) state_dict, which the test
  checks the shipped mapping against (CI has no torch).
"""
import json
import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


class Tiny(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.block2 = nn.ModuleDict({"c": nn.Conv2d(4, 6, 3, padding=1), "n": nn.BatchNorm2d(6)})
        self.head = nn.Linear(6 * 4 * 4, classes)

    def forward(self, x):
        x = self.features(x)
        x = torch.relu(self.block2["n"](self.block2["c"](x)))
        return self.head(torch.flatten(x, 1))


def main():
    torch.manual_seed(11)
    m = Tiny()
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m.train()
    for _ in range(5):
        x = torch.randn(8, 3, 8, 8)
        loss = m(x).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        logits = m(x)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    save_file(sd, os.path.join(HERE, "tiny_state_dict.safetensors"))
    save_file({"input": x, "logits": logits}, os.path.join(HERE, "tiny_io.safetensors"))

    import torchvision

    g = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    keys = {k: list(v.shape) for k, v in g.state_dict().items()}
    with open(os.path.join(HERE, "googlenet_torchvision_keys.json"), "w") as f:
        json.dump(keys, f, indent=0)
        f.write("\n")
    print("tiny logits", logits)
    print(len(keys), "googlenet tensors")


if __name__ == "__main__":
    main()
