"""Stage 2: train the UNet and the CLIP text encoder jointly on cached VAE latents.

    python -m tools.demo_model.train_unet --seed 0 --steps 3000

First run encodes ``--n-scenes`` training scenes (never a held-out combo) with the stage-1
VAE (WORK_DIR/vae) into WORK_DIR/latents_*.pt; later runs reuse the cache.  Epsilon loss with
min-SNR-5 weighting (v loss, unweighted, when the schedule predicts v), 10% empty captions (for classifier-free guidance), a little offset
noise, AdamW with warmup + cosine decay, EMA of UNet and text-encoder weights.  Every
``--ckpt-every`` steps the EMA weights are written as a full fp32 pipeline folder to
WORK_DIR/ckpt/step_N (and WORK_DIR/ckpt/latest) which evaluate.py can load directly.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import re
import shutil

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from . import scenes
from .common import (
    IMAGE_SIZE,
    TEXT_CONFIG,
    UNET_CONFIG,
    WORK_DIR,
    Logger,
    images_to_tensor,
    load_tokenizer,
    scheduler_config,
    setup_torch,
)
from .export import save_components


@torch.no_grad()
def foreground_weights(x0: torch.Tensor, extra: float) -> torch.Tensor:
    """(B, 1, h, w) loss weights: 1 + ``extra`` on the latent pixels that differ from the
    scene's background (the per-channel median) and their neighbours (the outline)."""
    background = x0.flatten(2).median(dim=2).values[:, :, None, None]
    distance = (x0 - background).norm(dim=1, keepdim=True)
    mask = (distance > 0.5 * distance.amax(dim=(2, 3), keepdim=True)).float()
    mask = F.max_pool2d(mask, 3, stride=1, padding=1)  # one latent pixel around the shape
    return 1.0 + extra * mask


def tokenize(tok, texts: list[str]) -> torch.Tensor:
    """(len(texts), 77) token ids, padded and truncated as the pipeline does."""
    return tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


@torch.no_grad()
def encode_scenes(vae, scene_list: list, log, what: str = "") -> torch.Tensor:
    """VAE posterior means of the rendered scenes, 32 at a time."""
    lat = []
    for i in range(0, len(scene_list), 32):
        x = images_to_tensor([scenes.render(s, IMAGE_SIZE) for s in scene_list[i : i + 32]])
        lat.append(vae.encode(x).latent_dist.mean)
        if i % 1024 == 0:
            log(f"encoded {what}{i}/{len(scene_list)}")
    return torch.cat(lat)


@torch.no_grad()
def build_cache(vae, tok, n: int, seed: int, log) -> dict:
    path = WORK_DIR / f"latents_seed{seed}_n{n}.pt"
    if path.exists():
        return torch.load(path)
    scene_list, caps = scenes.training_pairs(n, seed)
    vae.eval()
    latents = encode_scenes(vae, scene_list, log)
    ids = tokenize(tok, [c for cs in caps for c in cs]).view(n, -1, 77).to(torch.int32)
    cache = {"latents": latents, "ids": ids, "captions": caps}
    torch.save(cache, path)
    return cache


def load_grown(unet, state: dict, log) -> None:
    """Load a state into a UNet that may have more transformer blocks than the state: the
    extra blocks get zeroed output projections (attn1, attn2, feed-forward), so each is
    an identity (every sub-layer is residual) and the model's function is unchanged."""
    missing, unexpected = unet.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"state has weights this UNet lacks: {unexpected[:5]}")
    blocks = [re.match(r"(.*\.transformer_blocks\.\d+)\.", key) for key in missing]
    for key, block in zip(missing, blocks, strict=True):
        if block is None:
            raise ValueError(f"missing weight outside a new transformer block: {key}")
    grown = sorted({block.group(1) for block in blocks})
    if not grown:
        return
    params = dict(unet.named_parameters())
    with torch.no_grad():
        for prefix in grown:
            for out in (".attn1.to_out.0.", ".attn2.to_out.0.", ".ff.net.2."):
                params[prefix + out + "weight"].zero_()
                params[prefix + out + "bias"].zero_()
    log(f"grew {len(grown)} transformer blocks (identity at start)")


@torch.no_grad()
def build_pair_cache(vae, tok, n_pairs: int, seed: int, p_position: float, log) -> dict:
    """``n_pairs`` pairs of single-shape training scenes that differ only in the shape
    (same colours, position, size, jitter, and the same caption up to the shape word),
    VAE-encoded.  Neither scene of a pair is ever a held-out triple."""
    path = WORK_DIR / f"shape_pairs_seed{seed}_n{n_pairs}_p{p_position}.pt"
    if path.exists():
        return torch.load(path)
    rng = np.random.default_rng(seed + 101)
    pairs, captions = [], []
    while len(pairs) < n_pairs:
        scene = scenes.sample_scene(rng, "train", p_two=0.0)
        shape = scene.shapes[0]
        others = [k for k in scenes.SHAPES if k != shape.kind]
        other = scenes.Scene(
            scene.background, (dataclasses.replace(shape, kind=others[int(rng.integers(len(others)))]),)
        )
        if scenes.is_held_out(other):
            continue
        pairs.append((scene, other))
        for _ in range(4):
            caption_seed = int(rng.integers(2**31))
            with_pos = bool(rng.random() < p_position)
            captions.append(
                [
                    scenes.caption(s, np.random.default_rng(caption_seed), with_pos=with_pos)
                    for s in (scene, other)
                ]
            )
    latents = encode_scenes(vae, [s for pair in pairs for s in pair], log, "pair scenes ")
    ids = tokenize(tok, [c for pair in captions for c in pair])
    cache = {
        "latents": latents.view(n_pairs, 2, *latents.shape[1:]),
        "ids": ids.view(n_pairs, 4, 2, 77).to(torch.int32),
    }
    torch.save(cache, path)
    return cache


def scene_shape_labels(n: int, seed: int) -> torch.Tensor:
    """Index in scenes.SHAPES of each cached scene's shape; -1 for two-shape scenes."""
    scene_list, _ = scenes.training_pairs(n, seed)
    return torch.tensor(
        [scenes.SHAPES.index(s.shapes[0].kind) if len(s.shapes) == 1 else -1 for s in scene_list]
    )


def positional_caption_ids(tok, n: int, seed: int, p_position: float) -> torch.Tensor:
    """New captions for the cached scenes (the same ``training_pairs(n, seed)``), naming
    the position of a single shape with probability ``p_position`` instead of 0.75: at
    pure noise the caption is all the model has to place the shape with."""
    scene_list, _ = scenes.training_pairs(n, seed)
    rng = np.random.default_rng(seed + 7)
    flat = [
        scenes.caption(scene, rng, with_pos=bool(rng.random() < p_position))
        for scene in scene_list
        for _ in range(4)
    ]
    return tokenize(tok, flat).view(n, 4, 77)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=8e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--n-scenes", type=int, default=12000)
    ap.add_argument("--drop", type=float, default=0.1, help="caption dropout")
    ap.add_argument("--offset-noise", type=float, default=0.05)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--resume", default=None, help="training state .pt to resume from")
    ap.add_argument(
        "--fresh-optimizer",
        action="store_true",
        help="with --resume: keep the weights, start AdamW and the lr schedule anew (--lr, --warmup)",
    )
    ap.add_argument(
        "--t-power",
        type=float,
        default=1.0,
        help="t = 999 * u**p, u uniform: p < 1 samples more high-noise timesteps (where the "
        "layout and colours are decided)",
    )
    ap.add_argument("--schedule", choices=("sd15", "tail"), default="sd15", help="noise schedule (common.py)")
    ap.add_argument("--prediction", choices=("epsilon", "v_prediction"), default="epsilon")
    ap.add_argument(
        "--position-captions",
        type=float,
        default=None,
        help="re-caption the cached scenes, naming a single shape's position with this probability",
    )
    ap.add_argument(
        "--fg-weight",
        type=float,
        default=0.0,
        help="extra loss weight on the latent pixels in and around the shapes (0: none); "
        "shape outlines are a few latent pixels out of 256, mostly flat background",
    )
    ap.add_argument(
        "--shape-aux",
        type=float,
        default=0.0,
        help="weight of an auxiliary loss that asks the text encoder's (mean, normalised) "
        "output to tell the shape of a single-shape scene (0: off); the shape words' "
        "embeddings were found nearly equal (circle/square, triangle/star)",
    )
    ap.add_argument(
        "--shape-pairs",
        type=int,
        default=0,
        help="pairs of scenes that differ only in the shape added to every batch (0: none), "
        "each pair with the same noise and timestep",
    )
    ap.add_argument(
        "--pair-weight",
        type=float,
        default=0.0,
        help="extra weight on the difference of a pair's predictions (against the "
        "difference of its targets): the part of the loss only the shape word can explain",
    )
    ap.add_argument("--n-pairs", type=int, default=2000, help="shape pairs to render and encode")
    ap.add_argument(
        "--transformer-layers",
        type=int,
        default=1,
        help="transformer blocks per attention layer; more than the resumed state has: the "
        "new blocks start as exact identities (zeroed output projections)",
    )
    ap.add_argument(
        "--pixel-loss",
        type=float,
        default=0.0,
        help="weight of an image-space loss: the x0 estimate of --pixel-batch samples (t < "
        "--pixel-max-t) decoded by the frozen shipped decoder (WORK_DIR/vae_dec) against the "
        "rendered scene, where corners and straight edges weigh what they weigh in the picture",
    )
    ap.add_argument("--pixel-batch", type=int, default=8)
    ap.add_argument("--pixel-max-t", type=int, default=600)
    args = ap.parse_args()
    if args.pixel_loss and args.prediction != "v_prediction":
        ap.error("--pixel-loss reads the x0 estimate from a v prediction; add --prediction v_prediction")
    if args.shape_aux and args.shape_pairs:
        ap.error("--shape-aux labels the regular batch only; use it without --shape-pairs")
    sched_config = scheduler_config(args.schedule, args.prediction)
    setup_torch(args.seed)
    log = Logger(WORK_DIR / "train_unet.log")
    tok = load_tokenizer()
    vae = AutoencoderKL.from_pretrained(WORK_DIR / "vae")
    cache = build_cache(vae, tok, args.n_scenes, args.seed, log)
    latents, ids = cache["latents"], cache["ids"].long()
    if args.position_captions is not None:
        ids = positional_caption_ids(tok, args.n_scenes, args.seed, args.position_captions)
        log(f"re-captioned: position named with probability {args.position_captions}")
    if args.shape_pairs:
        pair_cache = build_pair_cache(vae, tok, args.n_pairs, args.seed, args.position_captions or 0.75, log)
    std = latents.std().item()
    scaling = 1.0 / std
    vae.register_to_config(scaling_factor=round(scaling, 5))
    log(
        f"latents {tuple(latents.shape)} mean {latents.mean():.3f} std {std:.3f} -> scaling_factor {scaling:.5f}"
    )
    latents = latents * scaling
    if args.shape_pairs:
        pair_latents, pair_ids = pair_cache["latents"] * scaling, pair_cache["ids"].long()
    if args.pixel_loss:
        decoder = AutoencoderKL.from_pretrained(WORK_DIR / "vae_dec").eval().requires_grad_(False)
        train_scenes = scenes.training_pairs(args.n_scenes, args.seed)[0]
    empty_ids = tok([""], padding="max_length", max_length=77, return_tensors="pt").input_ids

    text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    unet = UNet2DConditionModel(**{**UNET_CONFIG, "transformer_layers_per_block": args.transformer_layers})
    log(
        f"params: unet {sum(p.numel() for p in unet.parameters()) / 1e6:.3f}M "
        f"text {sum(p.numel() for p in text.parameters()) / 1e6:.3f}M "
        f"vae {sum(p.numel() for p in vae.parameters()) / 1e6:.3f}M"
    )
    params = list(unet.parameters()) + list(text.parameters())
    if args.shape_aux:
        shape_head = torch.nn.Linear(TEXT_CONFIG["hidden_size"], len(scenes.SHAPES), bias=False)
        shape_labels = scene_shape_labels(args.n_scenes, args.seed)
        params += list(shape_head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99))

    def lr_at(step):
        w = min(1.0, step / args.warmup)
        return w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, args.steps) / args.steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    noise_sched = DDPMScheduler(**sched_config)
    alphas = noise_sched.alphas_cumprod
    snr = alphas / (1 - alphas)
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text).eval()
    for p in list(ema_unet.parameters()) + list(ema_text.parameters()):
        p.requires_grad_(False)
    start = 0
    if args.resume:
        st = torch.load(args.resume)
        load_grown(unet, st["unet"], log)
        text.load_state_dict(st["text"])
        load_grown(ema_unet, st["ema_unet"], log)
        ema_text.load_state_dict(st["ema_text"])
        if not args.fresh_optimizer:
            # (a fresh AdamW re-learns its per-weight step sizes: weights that had tiny
            # gradients so far, like unused words, get full-size steps again)
            opt.load_state_dict(st["opt"])
            sched.load_state_dict(st["sched"])
        start = st["step"]
        torch.set_rng_state(st["rng"])
        log(f"resumed from step {start}")
    gen = torch.Generator().manual_seed(args.seed + 1 + start)
    n = latents.shape[0]
    ncap = ids.shape[1]
    unet.train()
    text.train()
    ema_loss = None
    ckdir = WORK_DIR / "ckpt"
    for step in range(start + 1, args.steps + 1):
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        cap = torch.randint(0, ncap, (args.batch,), generator=gen)
        x0 = latents[idx]
        tok_ids = ids[idx, cap]
        drop = torch.rand(args.batch, generator=gen) < args.drop
        tok_ids = torch.where(drop[:, None], empty_ids.expand(args.batch, -1), tok_ids)
        noise = torch.randn(x0.shape, generator=gen)
        if args.offset_noise:
            noise = noise + args.offset_noise * torch.randn(x0.shape[0], x0.shape[1], 1, 1, generator=gen)
        if args.t_power == 1.0:
            t = torch.randint(0, 1000, (args.batch,), generator=gen)
        else:
            t = (999.0 * torch.rand(args.batch, generator=gen) ** args.t_power).round().long()
        k = args.shape_pairs
        if k:
            # both scenes of a pair get the same noise and timestep, so the difference of
            # their targets is exactly what the shape word has to explain
            pidx = torch.randint(0, pair_latents.shape[0], (k,), generator=gen)
            pcap = torch.randint(0, pair_ids.shape[1], (k,), generator=gen)
            pnoise = torch.randn((k, *x0.shape[1:]), generator=gen)
            pt = torch.randint(0, 1000, (k,), generator=gen)
            x0 = torch.cat([x0, pair_latents[pidx, 0], pair_latents[pidx, 1]])
            tok_ids = torch.cat([tok_ids, pair_ids[pidx, pcap, 0], pair_ids[pidx, pcap, 1]])
            noise = torch.cat([noise, pnoise, pnoise])
            t = torch.cat([t, pt, pt])
        xt = noise_sched.add_noise(x0, noise, t)
        cond = text(tok_ids).last_hidden_state
        pred = unet(xt, t, cond).sample
        aux = torch.zeros(())
        if args.shape_aux:
            # a cosine classifier: the head cannot win by growing, the embeddings must part
            labels = torch.where(drop, -1, shape_labels[idx])
            features = F.normalize(cond.mean(dim=1), dim=-1)
            logits = 10.0 * features @ F.normalize(shape_head.weight, dim=-1).T
            if (labels >= 0).any():
                aux = F.cross_entropy(logits, labels, ignore_index=-1)
        if args.prediction == "v_prediction":
            # plain v loss: at high noise it is the x0 loss at full weight, which is where
            # the layout has to come from the text
            target, w = noise_sched.get_velocity(x0, noise, t), torch.ones_like(snr[t])
        else:
            target, w = noise, torch.clamp(snr[t], max=5.0) / snr[t]
        per_pixel = F.mse_loss(pred, target, reduction="none")
        if args.fg_weight:
            per_pixel = per_pixel * foreground_weights(x0, args.fg_weight)
        loss = (per_pixel.mean(dim=(1, 2, 3)) * w).mean() + args.shape_aux * aux
        if k and args.pair_weight:
            b = args.batch
            pred_diff = pred[b : b + k] - pred[b + k :]
            target_diff = target[b : b + k] - target[b + k :]
            loss = loss + args.pair_weight * F.mse_loss(pred_diff, target_diff)
        pix = torch.zeros(())
        if args.pixel_loss:
            # only captioned samples at low/mid noise: there the x0 estimate should already
            # show the named shape, and a decoded picture weighs corners as a viewer does
            sel = torch.nonzero((t[: args.batch] < args.pixel_max_t) & ~drop).flatten()[: args.pixel_batch]
            if len(sel):
                ab = alphas[t[sel]].view(-1, 1, 1, 1)
                x0_hat = ab.sqrt() * xt[sel] - (1 - ab).sqrt() * pred[sel]
                picture = decoder.decode(x0_hat / scaling).sample
                truth = images_to_tensor(
                    [scenes.render(train_scenes[i], IMAGE_SIZE) for i in idx[sel].tolist()]
                )
                pix = F.mse_loss(picture, truth)
                loss = loss + args.pixel_loss * pix
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for src, dst in ((unet, ema_unet), (text, ema_text)):
                for ps, pd in zip(src.parameters(), dst.parameters(), strict=False):
                    pd.lerp_(ps, 1 - decay)
        ema_loss = loss.item() if ema_loss is None else 0.98 * ema_loss + 0.02 * loss.item()
        if step % 25 == 0 or step == start + 1:
            log(
                f"step {step} loss {ema_loss:.4f} aux {aux.item():.3f} pix {pix.item():.4f} gn {gn:.2f} "
                f"lr {sched.get_last_lr()[0]:.2e}"
            )
        if step % args.ckpt_every == 0 or step == args.steps:
            out = ckdir / f"step_{step}"
            save_components(out, ema_unet, ema_text, vae, fp16=False, scheduler_config=sched_config)
            torch.save(
                {
                    "unet": unet.state_dict(),
                    "text": text.state_dict(),
                    "ema_unet": ema_unet.state_dict(),
                    "ema_text": ema_text.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "step": step,
                    "rng": torch.get_rng_state(),
                },
                ckdir / "state.pt",
            )
            latest = ckdir / "latest"
            if latest.exists():
                shutil.rmtree(latest)
            shutil.copytree(out, latest)
            (ckdir / "latest_step.json").write_text(json.dumps({"step": step}))
            log(f"checkpoint {out}")
    log("done")


if __name__ == "__main__":
    main()
