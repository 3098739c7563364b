"""Train the demo 2x upscaler: a small RRDB (ESRGAN) network on the demo model's scenes.

    nice -n 10 env OMP_NUM_THREADS=1 python -m tools.demo_upscaler.train \
        --out models/ESRGAN/easel-demo-2x.safetensors

Data: scenes from ``tools.demo_model.scenes`` rendered at 128x128 are the targets; the
inputs are the same images box-filtered to 64x64 (an area average, which is what the
renderer's supersampling does, so an input looks like the scene rendered at the lower size).

Network: spandrel's own old-architecture ``RRDBNet`` (32 filters, 1 RRDB block, 2x), so the
saved state dict has the original ESRGAN key layout (``model.0.weight``,
``model.1.sub.0.RDB1.conv1.0.weight``, ..., ``model.1.sub.1.weight`` for the trunk's last
conv, ``model.3`` the upconv, ``model.5`` the HR conv, ``model.7`` the last conv) and
spandrel detects architecture and scale from it like from any downloaded ESRGAN file.

Training, in two phases so it fits in minutes on one shared CPU core:
1. closed form: the first conv hands every pixel its 3x3 RGB neighbourhood, the trunk adds
   nothing yet, the HR convs are identities, and the last conv is solved by least squares
   on the image interiors: the best linear read-out of that neighbourhood;
2. end to end: Adam on the MSE (which is what PSNR measures) over the whole network, with
   random crops (often on an edge, often on the image border), rotations and flips.

Evaluation compares PSNR against bicubic on scenes never seen in training: the 48
held-out (colour, shape, background) combinations of ``scenes.held_out_scenes()`` (the
training split never produces them) plus random scenes from a seed training never uses.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tools.demo_model import scenes

SCALE = 2
HR_SIZE = 128
EVAL_SEED = 424242  # random evaluation scenes; training uses --seed (default 0)


def make_pair(scene: scenes.Scene, hr_size: int = HR_SIZE) -> tuple[Image.Image, Image.Image]:
    """(low-res input, high-res target) for one scene."""
    hr = scenes.render(scene, hr_size)
    lr = hr.resize((hr_size // SCALE, hr_size // SCALE), Image.Resampling.BOX)
    return lr, hr


def to_tensor(images: list[Image.Image]) -> torch.Tensor:
    arr = np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def held_out_eval_scenes(n_random: int = 48) -> list[scenes.Scene]:
    """Scenes never seen in training: the held-out combos and a separate random seed."""
    rng = np.random.default_rng(EVAL_SEED)
    return scenes.held_out_scenes() + [scenes.sample_scene(rng, "any") for _ in range(n_random)]


def build_model(num_filters: int, num_blocks: int) -> torch.nn.Module:
    from spandrel.architectures.ESRGAN import ESRGAN

    return ESRGAN(in_nc=3, out_nc=3, num_filters=num_filters, num_blocks=num_blocks, scale=SCALE)


@torch.no_grad()
def init_neighbourhood_features(model: torch.nn.Module) -> None:
    """Make the first conv hand every pixel its whole 3x3 RGB neighbourhood: channel
    ``9 * colour + tap`` copies one colour at one of the 9 offsets (27 channels; the rest
    keep their random start), and zero the trunk's last conv so the shortcut passes these
    on unchanged. The last conv then reads a 4x4 low-resolution neighbourhood per output
    pixel (bicubic's footprint), and phase 1's least squares picks the best linear filter
    of that form for these images."""
    first = model.model[0]
    if first.weight.shape[0] < 27:
        raise SystemExit("--filters must be at least 27 (one channel per colour and 3x3 offset)")
    first.weight[:27] = 0.0
    first.bias[:27] = 0.0
    for colour in range(3):
        for tap in range(9):
            first.weight[9 * colour + tap, colour, tap // 3, tap % 3] = 1.0
    trunk_out = model.model[1].sub[-1]
    trunk_out.weight.zero_()  # zero-initialised residual: phase 2 learns what to add
    trunk_out.bias.zero_()


@torch.no_grad()
def evaluate(upscale, eval_scenes: list[scenes.Scene]) -> dict[str, float]:
    """Mean PSNR of ``upscale(lr_pil) -> pil`` and of bicubic, against the rendered target."""
    ours, bicubic = [], []
    for scene in eval_scenes:
        lr, hr = make_pair(scene)
        target = np.asarray(hr)
        ours.append(psnr(np.asarray(upscale(lr)), target))
        bicubic.append(psnr(np.asarray(lr.resize(hr.size, Image.Resampling.BICUBIC)), target))
    return {"psnr": float(np.mean(ours)), "psnr_bicubic": float(np.mean(bicubic)), "n": len(eval_scenes)}


def model_upscaler(model: torch.nn.Module):
    def upscale(image: Image.Image) -> Image.Image:
        out = model(to_tensor([image])).clamp(0, 1)
        arr = (out[0].permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
        return Image.fromarray(arr)

    return upscale


def random_batch(lr_all: torch.Tensor, hr_all: torch.Tensor, rng: np.random.Generator, batch: int, crop: int):
    idx = rng.integers(0, lr_all.shape[0], size=batch)
    lrs, hrs = [], []
    for i in idx:
        for _attempt in range(4):  # prefer crops with an edge in them: flat ones teach little
            y, x = (int(v) for v in rng.integers(0, lr_all.shape[-1] - crop + 1, size=2))
            if rng.random() < 0.3:  # and often one on the image border, where zero padding bites
                y = int(rng.choice([0, lr_all.shape[-1] - crop]))
            lr = lr_all[i, :, y : y + crop, x : x + crop]
            if float(lr.std()) > 0.01:
                break
        hr = hr_all[i, :, y * SCALE : (y + crop) * SCALE, x * SCALE : (x + crop) * SCALE]
        k = int(rng.integers(4))  # rotations and flips: the scenes have no preferred direction
        lr, hr = torch.rot90(lr, k, (1, 2)), torch.rot90(hr, k, (1, 2))
        if rng.random() < 0.5:
            lr, hr = lr.flip(2), hr.flip(2)
        lrs.append(lr)
        hrs.append(hr)
    return torch.stack(lrs), torch.stack(hrs)


def save_weights(model: torch.nn.Module, out: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(out)  # atomic: a half-written file never replaces a good one


@torch.no_grad()
def fit_head_least_squares(
    model: torch.nn.Module,
    lr_all: torch.Tensor,
    hr_all: torch.Tensor,
    images: int,
    ridge: float = 1e-4,
    border: int = 6,
) -> None:
    """Phase 1, in closed form: make the upconv and HR conv identities on all channels
    (with a bias that keeps every value positive, so their LeakyReLUs are the identity
    too), and solve the last conv by ridge regression, so the network is the best linear
    read-out of the (random) RRDB features of a 3x3 neighbourhood. Seconds of CPU, and a
    far better start than nearest neighbour for the end-to-end phase."""
    up, hr_conv, last = model.model[3], model.model[5], model.model[7]
    channels = up.weight.shape[0]
    eye = torch.zeros_like(up.weight)
    for c in range(channels):
        eye[c, c, 1, 1] = 1.0
    body = list(model.model)[:3]  # conv0, trunk (shortcut), nearest upsample
    x = lr_all[:images]
    for layer in body:
        x = layer(x)
    offset = float(max(0.0, -x.min().item()) + 0.1)
    up.weight.copy_(eye)
    up.bias.fill_(offset)
    hr_conv.weight.copy_(eye)
    hr_conv.bias.zero_()
    features = hr_conv(model.model[4](up(x)))  # = x + offset, through the real layers
    gram = torch.zeros(channels * 9 + 1, channels * 9 + 1, dtype=torch.float64)
    cross = torch.zeros(channels * 9 + 1, 3, dtype=torch.float64)
    # fit the interior only: near the border the zero padding hides half the
    # neighbourhood, and fitting those pixels too would bend the filter everywhere
    side = features.shape[-1]
    inside = torch.zeros(side, side, dtype=torch.bool)
    inside[border:-border, border:-border] = True
    inside = inside.reshape(-1)
    for i in range(images):
        cols = torch.nn.functional.unfold(features[i : i + 1], 3, padding=1)[0].T.double()  # (HW, C*9)
        cols = torch.cat([cols, torch.ones(cols.shape[0], 1, dtype=torch.float64)], dim=1)[inside]
        target = hr_all[i].reshape(3, -1).T.double()[inside]
        gram += cols.T @ cols
        cross += cols.T @ target
    gram += ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=torch.float64)
    solution = torch.linalg.solve(gram, cross)  # (C*9 + 1, 3)
    last.weight.copy_(solution[:-1].T.reshape(last.weight.shape).float())
    last.bias.copy_(solution[-1].float())


def cosine(base: float, step: int, total: int) -> float:
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/ESRGAN/easel-demo-2x.safetensors"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=600)
    parser.add_argument("--filters", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=16, help="low-resolution crop side")
    parser.add_argument("--ls-images", type=int, default=200, help="phase 1: images for the least squares")
    parser.add_argument("--steps", type=int, default=1500, help="phase 2: the whole network end to end")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--resume", type=Path, default=None, help="weights of an earlier run: phase 2 only")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    pairs = [make_pair(scenes.sample_scene(rng, "train")) for _ in range(args.scenes)]
    lr_all = to_tensor([p[0] for p in pairs])
    hr_all = to_tensor([p[1] for p in pairs])
    eval_scenes = held_out_eval_scenes()
    log = lambda msg: print(f"[{time.time() - t0:7.1f}s] {msg}", flush=True)  # noqa: E731
    log(f"rendered {len(pairs)} training pairs")

    model = build_model(args.filters, args.blocks)
    init_neighbourhood_features(model)
    n_params = sum(p.numel() for p in model.parameters())
    loss_fn = torch.nn.functional.mse_loss  # optimises PSNR directly

    if args.resume is not None:  # go on from a saved run: phase 2 only
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(args.resume)))
        log(f"resumed from {args.resume}")
    else:
        # phase 1: the read-out in closed form (see fit_head_least_squares)
        fit_head_least_squares(model, lr_all, hr_all, args.ls_images)
        log(f"after phase 1 (least squares): {json.dumps(evaluate(model_upscaler(model), eval_scenes[:24]))}")

    # phase 2: everything end to end, with rotations and flips
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    for step in range(args.steps):
        for group in opt.param_groups:
            group["lr"] = cosine(args.lr, step, args.steps)
        lr_b, hr_b = random_batch(lr_all, hr_all, rng, args.batch, args.crop)
        loss = loss_fn(model(lr_b), hr_b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % 100 == 0:
            log(f"step {step + 1} loss {loss.item():.6f}")

    model.eval()
    result = evaluate(model_upscaler(model), eval_scenes)
    wall = time.time() - t0
    report = {
        **result,
        "ls_images": args.ls_images,
        "resumed_from": str(args.resume) if args.resume else "",
        "steps": args.steps,
        "params": n_params,
        "filters": args.filters,
        "blocks": args.blocks,
        "seed": args.seed,
        "wall_s": round(wall, 1),
    }
    log(json.dumps(report))
    save_weights(model, args.out, {k: str(v) for k, v in report.items()})
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
