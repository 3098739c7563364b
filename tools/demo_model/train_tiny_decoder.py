"""Train the demo model's tiny preview decoder (a TAESD-shaped ``AutoencoderTiny``).

The demo model has a VAE of its own, so the public TAESD files (made for SD1.5's VAE) do
not fit it. This distils its decoder into diffusers' ``AutoencoderTiny`` with 16 channels
per stage: training scenes are encoded with the demo VAE (posterior mean, scaled: the
latents a sampler gives) and the tiny decoder learns the demo VAE's own decode of them
(L1 + MSE), on random 8x8 latent crops (64 px), on the CPU in minutes. Only the decoder is
trained and only its tensors are written (``decoder.layers.*``, diffusers' key names: previews
never encode, and an untrained encoder would double the file). Written to
``models/Stable-diffusion/easel-demo/vae_approx/`` (config.json + safetensors), where Easel's
"TAESD" preview method finds a model's own tiny decoder (core/previews).

    python -m tools.demo_model.train_tiny_decoder --steps 3000 --seed 0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from tools.demo_model import scenes
from tools.demo_model.common import MODEL_DIR, images_to_tensor, setup_torch

WIDTHS = (16, 16, 16, 16)
CROP = 8  # latent pixels (64 px of image)


def teacher_pairs(vae, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled latents of ``count`` training scenes and the demo VAE's decode of them."""
    rng = np.random.default_rng(seed)
    images = images_to_tensor([scenes.render(scenes.sample_scene(rng), 128) for _ in range(count)])
    latents, decoded = [], []
    with torch.no_grad():
        for chunk in images.split(32):
            latent = vae.encode(chunk).latent_dist.mean * vae.config.scaling_factor
            latents.append(latent)
            decoded.append(vae.decode(latent / vae.config.scaling_factor).sample.clamp(-1, 1))
    return torch.cat(latents), torch.cat(decoded)


def save_decoder(tiny, out: Path) -> None:
    """config.json and the decoder's tensors only, under diffusers' names."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    tiny.save_config(out)
    tensors = {f"decoder.{k}": v.detach().contiguous() for k, v in tiny.decoder.state_dict().items()}
    save_file(tensors, str(out / "diffusion_pytorch_model.safetensors"))


def main(argv: list[str] | None = None) -> None:
    from diffusers import AutoencoderKL, AutoencoderTiny

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--scenes", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=MODEL_DIR / "vae_approx")
    args = parser.parse_args(argv)
    setup_torch(args.seed)

    vae = AutoencoderKL.from_pretrained(MODEL_DIR, subfolder="vae", torch_dtype=torch.float32).eval()
    latents, targets = teacher_pairs(vae, args.scenes, args.seed)
    held_latents, held_targets = teacher_pairs(vae, 32, args.seed + 1)
    tiny = AutoencoderTiny(
        encoder_block_out_channels=WIDTHS, decoder_block_out_channels=WIDTHS, latent_channels=4
    )
    optimizer = torch.optim.Adam(tiny.decoder.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    generator = torch.Generator().manual_seed(args.seed)
    started = time.time()
    side = latents.shape[-1]
    for step in range(1, args.steps + 1):
        pick = torch.randint(0, len(latents), (args.batch,), generator=generator)
        top, left = torch.randint(0, side - CROP + 1, (2,), generator=generator).tolist()
        x = latents[pick, :, top : top + CROP, left : left + CROP]
        y = targets[pick, :, top * 8 : (top + CROP) * 8, left * 8 : (left + CROP) * 8]
        out = tiny.decoder(x)
        loss = (out - y).abs().mean() + ((out - y) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps:
            with torch.no_grad():
                held = (tiny.decoder(held_latents) - held_targets).abs().mean() * 127.5
            print(
                f"step {step} loss {loss.item():.4f} held-out error {held:.2f}/255 {time.time() - started:.0f} s"
            )
        if time.time() - started > args.max_seconds:
            print(f"stopped at step {step}: --max-seconds")
            break
    save_decoder(tiny.eval(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
