"""Stage 1: train the tiny AutoencoderKL (f=8, 4 latent channels) on rendered scenes.

    python -m tools.demo_model.train_vae --seed 0 --steps 1500

The VAE has no attention, so it is trained on random 64x64 crops (4x cheaper) of 128x128
scenes; it is fully convolutional and works on full images afterwards.
Writes WORK_DIR/vae (fp32 diffusers folder).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from diffusers import AutoencoderKL

from . import scenes
from .common import IMAGE_SIZE, VAE_CONFIG, WORK_DIR, Logger, images_to_tensor, setup_torch


def reconstruction_loss(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 + MSE on [-1, 1] images."""
    return (decoded - target).abs().mean() + ((decoded - target) ** 2).mean()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--kl", type=float, default=1e-6)
    ap.add_argument("--out", default=str(WORK_DIR / "vae"))
    ap.add_argument("--init", default=None, help="start from this VAE folder")
    ap.add_argument(
        "--decoder-only",
        action="store_true",
        help="freeze the encoder (latent space unchanged) and fine-tune the decoder on z = mean",
    )
    ap.add_argument(
        "--sampled",
        nargs="+",
        default=None,
        help="with --decoder-only: sampled_latents caches; each step also decodes --sampled-batch "
        "of the UNet's own latents and is scored against the scenes they were sampled from",
    )
    ap.add_argument("--sampled-batch", type=int, default=8)
    ap.add_argument("--save-every", type=int, default=100)
    args = ap.parse_args()
    if args.sampled and not args.decoder_only:
        ap.error("--sampled needs --decoder-only (the latent space must not move)")
    setup_torch(args.seed)
    log = Logger()
    rng = np.random.default_rng(args.seed)
    vae = AutoencoderKL.from_pretrained(args.init) if args.init else AutoencoderKL(**VAE_CONFIG)
    if args.decoder_only:
        for m in (vae.encoder, vae.quant_conv):
            m.requires_grad_(False)
    log(f"vae params {sum(p.numel() for p in vae.parameters()) / 1e6:.3f}M")
    opt = torch.optim.AdamW([p for p in vae.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / 100)
            * (0.5 * (1 + np.cos(np.pi * min(s, args.steps) / args.steps)) * 0.9 + 0.1)
        ),
    )
    sampled = None
    if args.sampled:
        # our own caches (they hold Scene objects, hence weights_only=False)
        caches = [torch.load(path, weights_only=False) for path in args.sampled]
        sampled = {
            "latents": torch.cat([c["latents"] for c in caches]),
            "scenes": [scene for c in caches for scene in c["scenes"]],
        }
        log(f"{len(sampled['scenes'])} sampled latents")
    vae.train()
    ema = None
    for step in range(1, args.steps + 1):
        imgs = [scenes.render(scenes.sample_scene(rng, "any"), IMAGE_SIZE) for _ in range(args.batch)]
        x = images_to_tensor(imgs)
        if args.crop < IMAGE_SIZE:
            crops = []
            for i in range(x.shape[0]):
                ox, oy = (int(v) * 8 for v in rng.integers(0, (IMAGE_SIZE - args.crop) // 8 + 1, size=2))
                crops.append(x[i, :, oy : oy + args.crop, ox : ox + args.crop])
            x = torch.stack(crops)
        if args.decoder_only:
            with torch.no_grad():
                z = vae.encode(x).latent_dist.mean
            l_kl = torch.zeros(())
        else:
            post = vae.encode(x).latent_dist
            z = post.sample()
            l_kl = post.kl().mean()
        rec = vae.decode(z).sample
        l_rec = reconstruction_loss(rec, x)
        if sampled is not None:
            # whole 128x128 images: the decoder has to see a shape's whole outline to tell
            # a lumpy square from a circle
            pick = rng.integers(0, len(sampled["scenes"]), size=args.sampled_batch)
            target = images_to_tensor([scenes.render(sampled["scenes"][i], IMAGE_SIZE) for i in pick])
            drawn = vae.decode(sampled["latents"][torch.from_numpy(pick)]).sample
            l_rec = 0.5 * l_rec + 0.5 * reconstruction_loss(drawn, target)
        loss = l_rec + args.kl * l_kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        ema = l_rec.item() if ema is None else 0.95 * ema + 0.05 * l_rec.item()
        if step % 50 == 0 or step == 1:
            log(f"step {step} rec {ema:.4f} kl {l_kl.item():.1f} zstd {z.std().item():.3f}")
        if step % args.save_every == 0 or step == args.steps:
            vae.save_pretrained(args.out, safe_serialization=True)
    log(f"saved {args.out}")


if __name__ == "__main__":
    main()
