"""Train the demo 2x upscaler: a tiny RRDB (ESRGAN) network on the demo model's scenes.

    nice -n 10 env OMP_NUM_THREADS=1 python -m tools.demo_upscaler.train \
        --out models/ESRGAN/easel-demo-2x.safetensors

High-resolution targets are scenes from ``tools.demo_model.scenes`` rendered at 128x128; the
low-resolution inputs are the same images box-filtered to 64x64 (the area average is what the
renderer's supersampling does, so the inputs look like a scene rendered at the lower size).
The network is spandrel's own old-architecture ``RRDBNet``, so the saved state dict has the
original ESRGAN key layout (``model.0.weight``, ``model.1.sub.0.RDB1.conv1.0.weight``, ...,
``model.3.weight`` for the upconv, ``model.6/8.weight`` for the HR convs) and spandrel
detects architecture and scale from it like from any downloaded ESRGAN file.

Evaluation (``evaluate``) compares PSNR against bicubic on held-out scenes: the 48 held-out
combinations of ``scenes.held_out_scenes()`` (never produced for training) plus random
scenes from a seed the training data never uses.
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
def init_as_smooth_upsampler(model: torch.nn.Module, smooth_upconv: bool = False) -> None:
    """Start from a working upscaler instead of noise: channels 0-2 carry the RGB image
    through every convolution unchanged (the trunk's last conv writes nothing into them,
    so its shortcut passes them on; LeakyReLU is the identity on colours >= 0), and the
    upconv smooths the nearest-neighbour upsampling with a [1 2 1]x[1 2 1]/16 kernel, so
    the untrained network is a bilinear-like upscaler. Training then only has to learn
    the correction (sharp edges), which one CPU core manages in minutes; from random
    weights it first spends thousands of steps learning to reproduce flat colours."""
    convs = [m for m in model.model if isinstance(m, torch.nn.Conv2d)]
    trunk_out = model.model[1].sub[-1]
    smooth = torch.tensor([1.0, 2.0, 1.0])
    smooth = torch.outer(smooth, smooth) / 16
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1.0
    for layer in [*convs, trunk_out]:
        kernel = smooth if smooth_upconv and layer is model.model[3] else identity
        out_channels = min(3, layer.weight.shape[0])
        # tiny, not zero: gradients reach the other channels from the first step
        layer.weight[:out_channels] = torch.randn_like(layer.weight[:out_channels]) * 1e-3
        layer.bias[:out_channels] = 0.0
        if layer is trunk_out:
            continue  # adds nothing to the RGB channels: the shortcut carries them
        for c in range(out_channels):
            layer.weight[c, c] = kernel


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("models/ESRGAN/easel-demo-2x.safetensors"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=1500)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=24, help="low-resolution crop side")
    parser.add_argument("--minutes", type=float, default=12.0, help="training time budget")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--loss", choices=("l1", "mse"), default="mse", help="mse optimises PSNR directly")
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
    print(f"rendered {len(pairs)} training pairs in {time.time() - t0:.1f}s", flush=True)

    model = build_model(args.filters, args.blocks)
    init_as_smooth_upsampler(model)
    print(
        "untrained (smooth upsampler):",
        json.dumps(evaluate(model_upscaler(model), eval_scenes[:24])),
        flush=True,
    )
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    loss_fn = torch.nn.functional.mse_loss if args.loss == "mse" else torch.nn.functional.l1_loss
    budget_s = args.minutes * 60
    step, t_train = 0, time.time()
    while time.time() - t_train < budget_s:
        frac = (time.time() - t_train) / budget_s
        for group in opt.param_groups:  # cosine decay over the time budget
            group["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        lr_b, hr_b = random_batch(lr_all, hr_all, rng, args.batch, args.crop)
        loss = loss_fn(model(lr_b), hr_b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {loss.item():.6f} {time.time() - t_train:.0f}s", flush=True)

    model.eval()
    result = evaluate(model_upscaler(model), eval_scenes)
    wall = time.time() - t0
    report = {
        **result,
        "steps": step,
        "params": n_params,
        "filters": args.filters,
        "blocks": args.blocks,
        "seed": args.seed,
        "wall_s": round(wall, 1),
    }
    print(json.dumps(report), flush=True)
    save_weights(model, args.out, {k: str(v) for k, v in report.items()})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)", flush=True)


if __name__ == "__main__":
    main()
