"""Latents as the UNet draws them, paired with the scenes they should show.

    python -m tools.demo_model.sampled_latents --model models/Stable-diffusion/easel-demo --n 2000

For ``--n`` training scenes (never a held-out triple): VAE-encode the rendered scene, noise
it to a random point of the sampling schedule (img2img strength in ``--strength``), and let
the model's own UNet finish the sampling with one of the ``--cfg`` scales, through
diffusers' img2img pipeline.  The result is what the decoder really receives at run time:
lumpy edges, rounded corners, guidance overshoot.  ``train_vae --sampled`` fine-tunes the
decoder on these pairs, so that it draws the clean shape the latent was meant to be.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from diffusers import StableDiffusionImg2ImgPipeline

from . import scenes
from .common import IMAGE_SIZE, WORK_DIR, Logger, images_to_tensor, setup_torch


def cache_path(n: int, seed: int):
    return WORK_DIR / f"sampled_latents_seed{seed}_n{n}.pt"


@torch.no_grad()
def build(model: str, n: int, seed: int, strength: tuple[float, float], cfgs: list[float], log) -> dict:
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
        model, local_files_only=True, safety_checker=None, feature_extractor=None, torch_dtype=torch.float32
    )
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(seed + 303)
    scene_list = [scenes.sample_scene(rng, "train") for _ in range(n)]
    captions = [scenes.caption(s, rng) for s in scene_list]
    scaling = pipe.vae.config.scaling_factor
    sampled = []
    batch = 8
    for i in range(0, n, batch):
        chunk = scene_list[i : i + batch]
        x = images_to_tensor([scenes.render(s, IMAGE_SIZE) for s in chunk])
        z0 = pipe.vae.encode(x).latent_dist.mean * scaling
        # one strength and scale per batch (the pipeline takes one of each)
        s = float(rng.uniform(*strength))
        cfg = float(cfgs[int(rng.integers(len(cfgs)))])
        out = pipe(
            captions[i : i + batch],
            image=z0,  # 4 channels: the pipeline takes them as (scaled) latents
            strength=s,
            guidance_scale=cfg,
            num_inference_steps=20,
            generator=[torch.Generator().manual_seed(seed * 100_000 + i + k) for k in range(len(chunk))],
            output_type="latent",
        ).images
        sampled.append(out / scaling)
        if i % 200 == 0:
            log(f"sampled {i}/{n} (strength {s:.2f}, cfg {cfg})")
    return {"latents": torch.cat(sampled), "scenes": scene_list, "captions": captions}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="diffusers folder whose UNet draws the latents")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strength", type=float, nargs=2, default=(0.2, 0.6))
    ap.add_argument("--cfg", type=float, nargs="+", default=[1.5, 3.0, 6.0])
    args = ap.parse_args()
    setup_torch(args.seed)
    log = Logger(WORK_DIR / "sampled_latents.log")
    cache = build(args.model, args.n, args.seed, tuple(args.strength), args.cfg, log)
    torch.save(cache, cache_path(args.n, args.seed))
    log(f"wrote {cache_path(args.n, args.seed)}")


if __name__ == "__main__":
    main()
