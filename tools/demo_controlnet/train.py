"""Train the demo canny ControlNet for the demo model and ship it.

    nice -n 10 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 \
        python -m tools.demo_controlnet.train --seed 0 --steps 200

The base model (``models/Stable-diffusion/easel-demo``: UNet and text encoder) stays
frozen; ``ControlNetModel.from_unet`` copies its encoder half, and only that copy (with
its zero-initialised output convolutions and a small conditioning embedding) is trained.

Data: procedural scenes from ``tools/demo_model/scenes.py`` rendered at 128x128, encoded
once with the demo VAE (posterior mean, cached under ``$EASEL_DEMO_WORK``); the control
image is ``cv2.Canny(rgb, 100, 200)`` of the rendered scene, exactly what the extension's
``canny`` preprocessor computes. A third of the captions name a WRONG position (the scene
with its shape moved elsewhere, captioned) and 10% are empty, so the ControlNet learns
that the edge map, not the prompt, decides where the shape goes. Timesteps are biased to
high noise (t = 999 u^0.5), where layout is decided.

Writes ``models/ControlNet/easel-demo-canny/`` (diffusers folder, fp16 safetensors) and
prints the position accuracy of ``evaluate`` with and without the ControlNet.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from tools.demo_model import scenes
from tools.demo_model.common import IMAGE_SIZE, MODEL_DIR, REPO_ROOT, WORK_DIR, images_to_tensor

OUT_DIR = REPO_ROOT / "models" / "ControlNet" / "easel-demo-canny"
# a smaller conditioning embedding than diffusers' default (16, 32, 96, 256): the edge maps
# are simple and the asset should stay a few MB
CONDITIONING_CHANNELS = (16, 32, 64, 128)
CANNY_LOW, CANNY_HIGH = 100, 200


def canny_map(image) -> np.ndarray:
    """(H, W, 3) uint8 edge map, as the extension's canny preprocessor makes it."""
    edges = cv2.Canny(np.asarray(image.convert("RGB")), CANNY_LOW, CANNY_HIGH)
    return np.repeat(edges[:, :, None], 3, axis=2)


def control_tensor(maps: list[np.ndarray]) -> torch.Tensor:
    """Edge maps -> (N, 3, H, W) float in [0, 1] (the ControlNet's input range)."""
    return torch.from_numpy(np.stack(maps)).permute(0, 3, 1, 2).float() / 255.0


def moved(scene: scenes.Scene, rng: np.random.Generator) -> scenes.Scene:
    """The same scene with its single shape at another position (for wrong captions)."""
    shape = scene.shapes[0]
    others = [p for p in scenes.POSITION_NAMES if p != shape.position]
    position = others[int(rng.integers(len(others)))]
    return scenes.Scene(scene.background, (scenes.make_shape(shape.kind, shape.color, position, shape.size),))


def captions_for(scene: scenes.Scene, rng: np.random.Generator) -> list[str]:
    """Two true captions and one that names a wrong position (single-shape scenes)."""
    caps = [scenes.caption(scene, rng), scenes.caption(scene, rng)]
    if len(scene.shapes) == 1:
        caps.append(scenes.caption(moved(scene, rng), rng, with_pos=True))
    else:
        caps.append(scenes.caption(scene, rng))
    return caps


def load_base(dtype: torch.dtype = torch.float32):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet = UNet2DConditionModel.from_pretrained(MODEL_DIR / "unet", local_files_only=True).to(dtype)
    text = CLIPTextModel.from_pretrained(MODEL_DIR / "text_encoder", local_files_only=True).to(dtype)
    vae = AutoencoderKL.from_pretrained(MODEL_DIR / "vae", local_files_only=True).to(dtype)
    tok = CLIPTokenizer.from_pretrained(MODEL_DIR / "tokenizer", model_max_length=77)
    assert len(tok) == 49408, len(tok)
    for module in (unet, text, vae):
        module.eval().requires_grad_(False)
    return unet, text, vae, tok


def base_fingerprint() -> str:
    """Size + mtime of the base UNet file: a new demo model invalidates the cache."""
    stat = (MODEL_DIR / "unet" / "diffusion_pytorch_model.safetensors").stat()
    return f"{stat.st_size}-{int(stat.st_mtime)}"


@torch.no_grad()
def build_cache(vae, text, tok, n: int, seed: int, log) -> dict:
    path = WORK_DIR / f"controlnet_cache_seed{seed}_n{n}_{base_fingerprint()}.pt"
    if path.exists():
        return torch.load(path)
    rng = np.random.default_rng(seed)
    latents, controls, embeds = [], [], []
    for start in range(0, n, 64):
        batch = [scenes.sample_scene(rng, "train") for _ in range(min(64, n - start))]
        images = [scenes.render(s, IMAGE_SIZE) for s in batch]
        latents.append(vae.encode(images_to_tensor(images)).latent_dist.mean * vae.config.scaling_factor)
        controls.append(torch.from_numpy(np.stack([canny_map(im)[:, :, 0] for im in images])))
        caps = [c for s in batch for c in captions_for(s, rng)]
        ids = tok(caps, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        embeds.append(text(ids).last_hidden_state.view(len(batch), 3, 77, -1).half())
        log(f"cached {start + len(batch)}/{n} scenes")
    empty = tok([""], padding="max_length", max_length=77, return_tensors="pt").input_ids
    cache = {
        "latents": torch.cat(latents),
        "edges": torch.cat(controls),  # uint8 (N, H, W)
        "embeds": torch.cat(embeds),  # fp16 (N, 3, 77, D): stored small, used as fp32
        "empty": text(empty).last_hidden_state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cache, path)
    return cache


def make_controlnet(unet, hint_gain: float, seed: int):
    """The ControlNet with its output convolutions at zero (it starts as a no-op) and a
    hint embedding that passes the edge map on at a useful strength.

    diffusers' default (small uniform init, the last convolution at zero) attenuates a
    sparse 1-pixel edge map to almost nothing over its 8 convolutions: measured here, the
    edge map changed the residuals by 1e-4 of their size, and two runs (600 and 100
    steps) learned nothing about it. So: He-normal convolutions without bias (the output
    is the edge signal alone), the last one scaled by ``hint_gain`` (30 brings the hint to
    about 2/3 of ``conv_in``'s features for a circle's edge map).
    """
    from diffusers import ControlNetModel

    controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONDITIONING_CHANNELS)
    embedding = controlnet.controlnet_cond_embedding
    generator = torch.Generator().manual_seed(seed)
    convs = [embedding.conv_in, *embedding.blocks, embedding.conv_out]
    with torch.no_grad():
        for conv in convs:
            std = (2.0 / conv.weight[0].numel()) ** 0.5 * (hint_gain if conv is embedding.conv_out else 1.0)
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * std)
            conv.bias.zero_()
    return controlnet


def save_controlnet(controlnet, out: Path) -> float:
    """fp16 diffusers folder, written to a temp folder then renamed; returns its size in MB."""
    import copy
    import shutil

    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    copy.deepcopy(controlnet).half().save_pretrained(tmp, safe_serialization=True)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6


def train(args, log) -> object:
    from diffusers import DDPMScheduler

    unet, text, vae, tok = load_base()
    cache = build_cache(vae, text, tok, args.n_scenes, args.seed, log)
    latents, edges, embeds, empty = cache["latents"], cache["edges"], cache["embeds"], cache["empty"]
    noise_sched = DDPMScheduler.from_pretrained(MODEL_DIR / "scheduler")
    v_prediction = noise_sched.config.prediction_type == "v_prediction"
    log(f"base objective: {noise_sched.config.prediction_type}")
    controlnet = make_controlnet(unet, args.hint_gain, args.seed)
    controlnet.train()
    log(f"controlnet params {sum(p.numel() for p in controlnet.parameters()) / 1e6:.3f}M")
    params = [p for p in controlnet.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed + 1)
    n = latents.shape[0]
    ema_loss = None
    started = time.time()
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        which = torch.randint(0, embeds.shape[1], (args.batch,), generator=gen)
        cond = embeds[idx, which].float()
        drop = torch.rand(args.batch, generator=gen) < args.drop
        cond = torch.where(drop[:, None, None], empty.expand_as(cond), cond)
        x0 = latents[idx]
        control = edges[idx].float().div(255.0)[:, None].expand(-1, 3, -1, -1)
        noise = torch.randn(x0.shape, generator=gen)
        t = (999.0 * torch.rand(args.batch, generator=gen) ** args.t_power).round().long()
        xt = noise_sched.add_noise(x0, noise, t)
        down, mid = controlnet(xt, t, cond, controlnet_cond=control, return_dict=False)
        pred = unet(
            xt, t, cond, down_block_additional_residuals=down, mid_block_additional_residual=mid
        ).sample
        # the base's own objective (a retrained base may predict v)
        loss = F.mse_loss(pred, noise_sched.get_velocity(x0, noise, t) if v_prediction else noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema_loss = loss.item() if ema_loss is None else 0.95 * ema_loss + 0.05 * loss.item()
        if step % 20 == 0 or step == 1:
            log(f"step {step} loss {ema_loss:.4f} ({(time.time() - started) / step:.2f} s/step)")
        if args.save_every and step % args.save_every == 0 and step < args.steps:
            controlnet.eval()
            save_controlnet(controlnet, args.out)  # a usable snapshot while training goes on
            controlnet.train()
            log(f"snapshot at step {step} -> {args.out}")
    controlnet.eval()
    return controlnet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--n-scenes", type=int, default=2000)
    ap.add_argument("--drop", type=float, default=0.1, help="empty-caption rate (for CFG)")
    ap.add_argument("--t-power", type=float, default=0.5, help="t = 999 u^p; p < 1 favours high noise")
    ap.add_argument("--hint-gain", type=float, default=30.0, help="scale of the hint embedding's last conv")
    ap.add_argument(
        "--save-every", type=int, default=100, help="write a snapshot every N steps (0: only at the end)"
    )
    ap.add_argument("--out", type=Path, default=OUT_DIR)
    ap.add_argument("--eval-seeds", type=int, default=3, help="seeds per position in the evaluation")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(int(os.environ.get("EASEL_DEMO_THREADS", "1")))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from tools.demo_model.common import Logger

    log = Logger(WORK_DIR / "train_controlnet.log")
    started = time.time()
    controlnet = train(args, log)
    wall = time.time() - started
    size = save_controlnet(controlnet, args.out)
    log(f"saved {args.out} ({size:.2f} MB) after {wall:.0f} s of training")
    from tools.demo_controlnet.evaluate import position_accuracy

    report = position_accuracy(args.out, seeds_per_position=args.eval_seeds)
    report.update(
        {"train_wall_s": round(wall), "size_mb": round(size, 2), "args": vars(args) | {"out": str(args.out)}}
    )
    log(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
