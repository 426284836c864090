"""Net `@NET@` (net args @NET_ARGS@), exported by netc @VERSION@.

    model = @CLASS@()                      # no arguments
    load_netc_checkpoint(model, "run/best.safetensors")
    logits = model(x)                      # x: normalised [N, @C@, @H@, @W@]
    logits, probes = model(x, return_probes=True)

`state_dict()` keys are netc's checkpoint tensor names, plus PyTorch's
`num_batches_tracked`, which the loader and the trainer leave out.

Training with the spec's recipe (its values are the defaults below):

    python net.py --data random --epochs 1 --out DIR
    torchrun --nproc_per_node=2 net.py --data PATH --out DIR   # PATH/train/<class>/*.png

Rank 0 writes DIR/last.safetensors, which `netc eval SPEC --weights` loads.
Needs torch (and torchvision for --data PATH, safetensors for checkpoints).
"""

import argparse
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

NET = "@NET@"
IMAGE_SHAPE = (@C@, @H@, @W@)
NUM_CLASSES = @CLASSES@

# The model tensors of a netc checkpoint: name, shape.
CHECKPOINT_TENSORS = [
@TENSORS@
]

# The spec's recipe, at export time.
RECIPE = dict(
    epochs=@EPOCHS@,
    batch_size=@BATCH@,
    optimizer="@OPTIMIZER@",
    lr=@LR@,
    momentum=@MOMENTUM@,
    nesterov=@NESTEROV@,
    weight_decay=@WD@,
    betas=@BETAS@,
    eps=@EPS@,
    schedule="@SCHEDULE@",
    milestones=@MILESTONES@,
    gamma=@GAMMA@,
    warmup_epochs=@WARMUP@,
    label_smoothing=@SMOOTHING@,
    grad_clip=@CLIP@,
    crop_pad=@CROP@,
    hflip=@HFLIP@,
    seed=@SEED@,
)


def _put(root, name, module):
    """Puts `module` at the dotted `name` under `root`, making plain
    containers for the parents, so state_dict keys are netc's names."""
    *parents, last = name.split(".")
    for p in parents:
        if p not in root._modules:
            root.add_module(p, nn.Module())
        root = root._modules[p]
    root.add_module(last, module)


class @CLASS@(nn.Module):
    def __init__(self):
        super().__init__()
@INIT@
    def forward(self, x, return_probes=False):
@FORWARD@        if return_probes:
            return @LOGITS@, {@PROBES@}
        return @LOGITS@

    def forward_probes(self, x):
        """The probes by IR name."""
        return self.forward(x, return_probes=True)[1]


# The module class, under a name that does not depend on the net's.
NET_CLASS = @CLASS@


def netc_state_dict(model):
    """The model's tensors under netc's names (no num_batches_tracked)."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def load_netc_checkpoint(model, path):
    """Loads the model tensors of a netc safetensors checkpoint (keys under
    `netc/` are not the model) and returns its normalisation (mean, std),
    or None where it has none."""
    from safetensors.torch import load_file

    tensors = load_file(path)
    model_tensors = {k: v for k, v in tensors.items() if not k.startswith("netc/")}
    own = netc_state_dict(model)
    missing = sorted(set(own) - set(model_tensors))
    extra = sorted(set(model_tensors) - set(own))
    wrong = sorted(k for k in own if k in model_tensors and tuple(own[k].shape) != tuple(model_tensors[k].shape))
    if missing or extra or wrong:
        raise ValueError(f"checkpoint {path} does not fit net {NET}: missing {missing[:5]}, "
                         f"unexpected {extra[:5]}, wrong shape {wrong[:5]}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(model_tensors[k].to(v.dtype))
    if "netc/data/mean" in tensors and "netc/data/std" in tensors:
        return tensors["netc/data/mean"].tolist(), tensors["netc/data/std"].tolist()
    return None


def save_netc_checkpoint(model, path, mean, std):
    """Writes the model under netc's tensor names with the normalisation,
    atomically, as `netc eval --weights` reads it."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in netc_state_dict(model).items()}
    tensors["netc/data/mean"] = torch.tensor(mean, dtype=torch.float32)
    tensors["netc/data/std"] = torch.tensor(std, dtype=torch.float32)
    tmp = path + ".tmp"
    save_file(tensors, tmp)
    os.replace(tmp, path)


def lr_at(epoch_float, args):
    """The recipe's learning rate at a (fractional) epoch: linear warm-up,
    then constant, cosine to 0, or step decay at the milestones."""
    if args.warmup_epochs > 0 and epoch_float < args.warmup_epochs:
        return args.lr * (epoch_float + 1e-9) / args.warmup_epochs
    if args.schedule == "cosine":
        span = max(args.epochs - args.warmup_epochs, 1e-9)
        t = min(max(epoch_float - args.warmup_epochs, 0.0) / span, 1.0)
        return args.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    if args.schedule == "step":
        return args.lr * args.gamma ** sum(1 for m in args.milestones if epoch_float >= m)
    return args.lr


def _datasets(args):
    """(train set, mean, std): random images for smoke tests, or an image
    folder PATH/train/<class>/*.png."""
    c, h, w = IMAGE_SHAPE
    g = torch.Generator().manual_seed(args.seed)
    if args.data == "random":
        images = torch.rand(args.train_images, c, h, w, generator=g)
        labels = torch.randint(0, NUM_CLASSES, (args.train_images,), generator=g)
        mean = images.mean(dim=(0, 2, 3)).tolist()
        std = images.std(dim=(0, 2, 3)).tolist()
        return torch.utils.data.TensorDataset(images, labels), mean, std, True
    from torchvision import datasets, transforms

    base = [transforms.Resize((h, w))] + ([transforms.Grayscale(c)] if c == 1 else [])
    plain = datasets.ImageFolder(os.path.join(args.data, "train"), transforms.Compose(base + [transforms.ToTensor()]))
    sample = torch.stack([plain[i][0] for i in range(0, len(plain), max(len(plain) // 1000, 1))])
    mean = sample.mean(dim=(0, 2, 3)).tolist()
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()
    aug = list(base)
    if args.crop_pad:
        aug.append(transforms.RandomCrop((h, w), padding=args.crop_pad))
    if args.hflip:
        aug.append(transforms.RandomHorizontalFlip())
    aug += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return datasets.ImageFolder(os.path.join(args.data, "train"), transforms.Compose(aug)), mean, std, False


def _augment(x, args):
    """The recipe's augmentation on a batch of tensors (random data)."""
    if args.crop_pad:
        p = args.crop_pad
        n, _, h, w = x.shape
        padded = F.pad(x, (p, p, p, p))
        out = torch.empty_like(x)
        for i in range(n):
            dy, dx = torch.randint(0, 2 * p + 1, (2,)).tolist()
            out[i] = padded[i, :, dy:dy + h, dx:dx + w]
        x = out
    if args.hflip:
        flip = torch.rand(x.shape[0], device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def main(argv=None):
    r = RECIPE
    ap = argparse.ArgumentParser(description=f"Train net {NET} with its netc recipe (runs under torchrun).")
    ap.add_argument("--data", default="random", help="`random`, or a folder PATH/train/<class>/*.png")
    ap.add_argument("--out", required=True, help="folder for last.safetensors")
    ap.add_argument("--epochs", type=int, default=r["epochs"])
    ap.add_argument("--batch-size", type=int, default=r["batch_size"], help="global batch, split over ranks")
    ap.add_argument("--optimizer", choices=["sgd", "adamw"], default=r["optimizer"])
    ap.add_argument("--lr", type=float, default=r["lr"])
    ap.add_argument("--momentum", type=float, default=r["momentum"])
    ap.add_argument("--nesterov", type=int, default=int(r["nesterov"]))
    ap.add_argument("--weight-decay", type=float, default=r["weight_decay"])
    ap.add_argument("--schedule", choices=["constant", "cosine", "step"], default=r["schedule"])
    ap.add_argument("--milestones", type=int, nargs="*", default=r["milestones"])
    ap.add_argument("--gamma", type=float, default=r["gamma"])
    ap.add_argument("--warmup-epochs", type=float, default=r["warmup_epochs"])
    ap.add_argument("--label-smoothing", type=float, default=r["label_smoothing"])
    ap.add_argument("--grad-clip", type=float, default=r["grad_clip"])
    ap.add_argument("--crop-pad", type=int, default=r["crop_pad"])
    ap.add_argument("--hflip", type=int, default=int(r["hflip"]))
    ap.add_argument("--seed", type=int, default=r["seed"])
    ap.add_argument("--train-images", type=int, default=256, help="images of --data random")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: no limit)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        import torch.distributed as dist

        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    local = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.manual_seed(args.seed)  # the same initial weights on every rank

    dataset, mean, std, raw = _datasets(args)
    sampler = torch.utils.data.distributed.DistributedSampler(dataset, seed=args.seed) if distributed else None
    per_rank = max(args.batch_size // world, 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=per_rank, shuffle=sampler is None, sampler=sampler,
                                         num_workers=0 if raw else args.workers, drop_last=len(dataset) >= per_rank)
    model = @CLASS@().to(device)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None) \
        if distributed else model
    if args.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                              nesterov=bool(args.nesterov), weight_decay=args.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=r["betas"], eps=r["eps"],
                                weight_decay=args.weight_decay)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    mean_t = torch.tensor(mean, device=device)[None, :, None, None]
    std_t = torch.tensor(std, device=device)[None, :, None, None]
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
    steps, done = 0, False
    per_epoch = max(len(loader), 1)
    for epoch in range(args.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        net.train()
        total, correct, seen = 0.0, 0, 0
        for i, (x, y) in enumerate(loader):
            x, y = x.to(device), y.to(device)
            if raw:
                x = (_augment(x, args) - mean_t) / std_t
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch + i / per_epoch, args)
            logits = net(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if args.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            opt.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            steps += 1
            if args.max_steps and steps >= args.max_steps:
                done = True
                break
        if rank == 0:
            print(f"epoch {epoch + 1}: loss {total / max(seen, 1):.4f}, train accuracy {correct / max(seen, 1):.4f}, "
                  f"{steps} steps, lr {opt.param_groups[0]['lr']:.5f}", flush=True)
            save_netc_checkpoint(model, os.path.join(args.out, "last.safetensors"), mean, std)
        if done:
            break
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
