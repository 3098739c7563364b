"""Train the demo LoRA ``easel-outline``: outlined shapes on the demo model.

    python -m tools.demo_lora.train --seed 0 --steps 1000

The base demo model (``models/Stable-diffusion/easel-demo``) only ever saw *filled* shapes.
This trains a LoRA on its UNet (attention projections, transformer feed-forward and
projection layers, ResNet convolutions; rank 8, alpha 8) on the same procedural scenes and
captions, rendered with ``scenes.render(..., style="outline")``. Everything of the base
stays frozen; VAE latents and text-encoder outputs of the training set are computed once
and cached in ``$EASEL_LORA_WORK`` (default ``/tmp/easel-lora-work``), keyed by the base
weights' hash, so a retrained base gets a fresh cache.

Loss: the base's own objective (epsilon, or v for a v-prediction base) with min-SNR-5 weights, 10% empty captions (classifier-free guidance
also sees the style), AdamW with warmup and cosine decay. One CPU thread by default.

The result is written in the diffusers/PEFT key layout (``unet.<module>.lora_A.weight``,
``...lora_B.weight``), fp16 safetensors with kohya-style ``ss_*`` metadata, atomically, to
``models/Lora/easel-outline.safetensors``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tools.demo_model import scenes
from tools.demo_model.common import IMAGE_SIZE, MODEL_DIR, REPO_ROOT, Logger, images_to_tensor

WORK_DIR = Path(os.environ.get("EASEL_LORA_WORK", "/tmp/easel-lora-work"))
LORA_NAME = "easel-outline"
DEFAULT_OUT = REPO_ROOT / "models" / "Lora" / f"{LORA_NAME}.safetensors"
# every Linear/Conv2d of the UNet whose name ends like this gets an adapter
TARGET_MODULES = [
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
]


def base_hash(model_dir: Path) -> str:
    """sha256 (first 12 hex) of the base UNet, VAE and text-encoder weight files."""
    digest = hashlib.sha256()
    for part in ("unet", "vae", "text_encoder"):
        for path in sorted((model_dir / part).glob("*.safetensors")):
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@torch.no_grad()
def build_cache(model_dir: Path, n_scenes: int, seed: int, log: Logger) -> dict:
    """Outline-style latents (VAE posterior mean x scaling factor) of ``n_scenes`` training
    scenes, and the frozen text encoder's output for 4 captions each (+ the empty one)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextModel, CLIPTokenizer

    path = WORK_DIR / f"outline_{base_hash(model_dir)}_seed{seed}_n{n_scenes}.pt"
    if path.exists():
        log(f"latent cache {path}")
        return torch.load(path)
    vae = AutoencoderKL.from_pretrained(model_dir / "vae", torch_dtype=torch.float32).eval()
    text = CLIPTextModel.from_pretrained(model_dir / "text_encoder", torch_dtype=torch.float32).eval()
    tok = CLIPTokenizer.from_pretrained(str(model_dir / "tokenizer"), model_max_length=77)
    scene_list, captions = scenes.training_pairs(n_scenes, seed)
    latents = []
    for i in range(0, n_scenes, 32):
        images = [scenes.render(s, IMAGE_SIZE, style="outline") for s in scene_list[i : i + 32]]
        latents.append(vae.encode(images_to_tensor(images)).latent_dist.mean)
    latents = torch.cat(latents) * vae.config.scaling_factor
    flat = [c for cs in captions for c in cs] + [""]
    embeds = []
    for i in range(0, len(flat), 256):
        ids = tok(
            flat[i : i + 256], padding="max_length", max_length=77, truncation=True, return_tensors="pt"
        )
        embeds.append(text(ids.input_ids).last_hidden_state)
    embeds = torch.cat(embeds)
    cache = {
        "latents": latents,
        "embeds": embeds[:-1].view(n_scenes, -1, *embeds.shape[1:]).half(),  # (n, 4, 77, width)
        "empty": embeds[-1:],
    }
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    torch.save(cache, path)
    log(f"encoded {n_scenes} outline scenes -> {path}")
    return cache


def lora_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter weights in the diffusers/PEFT file layout, fp16."""
    from peft.utils import get_peft_model_state_dict

    return {f"unet.{k}": v.detach().half().contiguous() for k, v in get_peft_model_state_dict(unet).items()}


def save_lora(state: dict[str, torch.Tensor], out: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, default=MODEL_DIR, help="the base model folder (diffusers)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--n-scenes", type=int, default=1000)
    ap.add_argument("--drop", type=float, default=0.1, help="fraction of empty captions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--save-every", type=int, default=0, help="also write OUT.stepN.safetensors every N steps"
    )
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    log = Logger(WORK_DIR / "train.log")
    started = time.time()

    from diffusers import DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig

    cache = build_cache(args.base, args.n_scenes, args.seed, log)
    latents, embeds, empty = cache["latents"], cache["embeds"], cache["empty"]
    unet = UNet2DConditionModel.from_pretrained(args.base / "unet", torch_dtype=torch.float32)
    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(
            r=args.rank, lora_alpha=args.rank, target_modules=TARGET_MODULES, init_lora_weights="gaussian"
        )
    )
    params = [p for n, p in unet.named_parameters() if "lora_" in n]
    for p in params:
        p.requires_grad_(True)
    n_params = sum(p.numel() for p in params)
    log(f"LoRA rank {args.rank}: {n_params} parameters ({n_params * 2 / 1e6:.2f} MB in fp16)")

    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / args.warmup)
        return warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    noise_sched = DDPMScheduler.from_pretrained(args.base / "scheduler")
    snr = noise_sched.alphas_cumprod / (1 - noise_sched.alphas_cumprod)
    v_prediction = noise_sched.config.prediction_type == "v_prediction"
    log(f"base objective: {noise_sched.config.prediction_type}")
    gen = torch.Generator().manual_seed(args.seed + 1)
    n, n_caps = embeds.shape[0], embeds.shape[1]
    unet.train()
    ema_loss = None
    for step in range(args.steps):
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        cap = torch.randint(0, n_caps, (args.batch,), generator=gen)
        cond = embeds[idx, cap].float()
        drop = torch.rand(args.batch, generator=gen) < args.drop
        cond = torch.where(drop[:, None, None], empty.expand_as(cond), cond)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (args.batch,), generator=gen)
        pred = unet(noise_sched.add_noise(x0, noise, t), t, cond).sample
        if v_prediction:  # the base's own objective (a retrained base may use v)
            target, weight = (
                noise_sched.get_velocity(x0, noise, t),
                torch.clamp(snr[t], max=5.0) / (snr[t] + 1),
            )
        else:
            target, weight = noise, torch.clamp(snr[t], max=5.0) / snr[t]
        loss = (F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2, 3)) * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
        if (step + 1) % 50 == 0 or step == 0:
            log(f"step {step + 1}/{args.steps} loss {ema_loss:.4f} lr {sched.get_last_lr()[0]:.2e}")
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            save_lora(lora_state(unet), args.out.with_suffix(f".step{step + 1}.safetensors"), {})

    state = lora_state(unet)
    wall = time.time() - started
    metadata = {
        "ss_base_model_version": "sd_v1",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(args.rank),
        "ss_network_alpha": str(args.rank),
        "ss_output_name": LORA_NAME,
        "ss_training_comment": "outlined shapes on the Easel demo model (tools/demo_lora/train.py)",
        "easel_family": "sd15",
        "easel_base_model": args.base.name,
        "easel_base_hash": base_hash(args.base),
        "easel_training": json.dumps(
            {k: v for k, v in vars(args).items() if k not in ("out", "base", "save_every")}
            | {"wall_s": round(wall)}
        ),
    }
    save_lora(state, args.out, metadata)
    log(f"saved {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(state)} tensors) after {wall:.0f} s")


if __name__ == "__main__":
    main()
