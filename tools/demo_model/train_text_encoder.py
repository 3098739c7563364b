"""Teach the shipped demo model's text encoder free phrasing (issue #29), UNet and VAE frozen.

    python -m tools.demo_model.train_text_encoder --seed 0 --steps 3000 --max-seconds 3600

Starts from the shipped text encoder (``--model``) and trains only it, so the shipped UNet,
VAE, LoRA (UNet keys only) and ControlNet (fed by the same UNet's cross-attention
states) keep working. Each step draws ``--batch`` cached training scenes and, for each, a
free-phrased caption (``phrasings.paraphrase``, probability ``--p-paraphrase``; otherwise an
original one) and an original caption naming the same attributes. The loss is

- distillation: the frozen UNet's v prediction with the new encoder on the free caption
  against its prediction with the *old* encoder on the original caption (same x_t, t):
  "the paraphrase should mean to the UNet what the original means"; a low-variance target;
- denoising (``--denoise-weight``): the usual v loss of that prediction against the truth;
- a regulariser (``--keep-weight``): MSE between new and old encoder's last hidden states on
  the original captions and the empty caption (the unconditional branch of CFG), so what
  already worked (the held-out combinations) stays as it was.

Latents: the training scenes of ``scenes.training_pairs(n, seed)`` encoded by the shipped
VAE's encoder (posterior mean x scaling_factor), cached in WORK_DIR. Checkpoints (text encoder
only, fp32, EMA weights if ``--ema``) go to WORK_DIR/te_ckpt/step_N; evaluate one with
``python -m tools.demo_model.evaluate --text-encoder WORK_DIR/te_ckpt/step_N``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel

from . import phrasings, scenes
from .common import IMAGE_SIZE, MODEL_DIR, WORK_DIR, Logger, images_to_tensor, load_tokenizer, setup_torch


def tokenize(tok, texts: list[str]) -> torch.Tensor:
    return tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids


@torch.no_grad()
def cached_latents(model_dir: Path, n: int, seed: int, log) -> torch.Tensor:
    """Scaled VAE latents of ``scenes.training_pairs(n, seed)`` (encoded once, then cached)."""
    path = WORK_DIR / f"te_latents_seed{seed}_n{n}.pt"
    if path.exists():
        return torch.load(path)
    vae = AutoencoderKL.from_pretrained(model_dir / "vae", torch_dtype=torch.float32).eval()
    scene_list, _ = scenes.training_pairs(n, seed)
    chunks = []
    for i in range(0, n, 32):
        x = images_to_tensor([scenes.render(s, IMAGE_SIZE) for s in scene_list[i : i + 32]])
        chunks.append(vae.encode(x).latent_dist.mean * vae.config.scaling_factor)
        if i % 512 == 0:
            log(f"encoded {i}/{n} scenes")
    latents = torch.cat(chunks)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(latents, path)
    return latents


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(MODEL_DIR), help="the shipped folder (UNet, VAE, start encoder)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--max-seconds", type=float, default=None, help="stop (with a checkpoint) after this")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--n-scenes", type=int, default=3000)
    ap.add_argument("--p-paraphrase", type=float, default=0.75)
    ap.add_argument("--drop", type=float, default=0.05, help="empty captions (CFG's unconditional branch)")
    ap.add_argument("--denoise-weight", type=float, default=0.5)
    ap.add_argument("--keep-weight", type=float, default=1.0)
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay of the checkpointed weights (0: none)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--embedding-lr-scale", type=float, default=1.0, help="token table lr = this x --lr")
    ap.add_argument("--resume", default=None, help="WORK_DIR/te_ckpt/state.pt")
    ap.add_argument(
        "--fresh-optimizer",
        action="store_true",
        help="with --resume: keep the weights (and the EMA), start AdamW and the lr schedule anew",
    )
    ap.add_argument("--out", default=str(WORK_DIR / "te_ckpt"))
    args = ap.parse_args()

    setup_torch(args.seed)
    model_dir = Path(args.model)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = Logger(out_dir / "train.log")
    log(f"args {vars(args)}")
    tok = load_tokenizer(model_dir / "tokenizer")
    latents = cached_latents(model_dir, args.n_scenes, args.seed, log)
    scene_list, _ = scenes.training_pairs(args.n_scenes, args.seed)

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet", torch_dtype=torch.float32)
    unet.eval().requires_grad_(False)
    old_text = CLIPTextModel.from_pretrained(model_dir / "text_encoder", torch_dtype=torch.float32)
    old_text.eval().requires_grad_(False)
    text = copy.deepcopy(old_text).requires_grad_(True)
    text.train()
    ema_text = copy.deepcopy(text).requires_grad_(False) if args.ema else None
    from diffusers import EulerDiscreteScheduler

    noise_sched = DDPMScheduler.from_config(EulerDiscreteScheduler.load_config(model_dir / "scheduler"))
    assert noise_sched.config.prediction_type == "v_prediction", noise_sched.config.prediction_type

    params = [p for p in text.parameters()]
    # the words people use that the original captions never did ("upper", "backdrop") start
    # as untrained rows of the token table, far from the trained ones; Adam moves each row
    # by about lr per step, so the table gets a larger rate to get there in a CPU budget
    table = text.get_input_embeddings().weight
    rest = [p for p in params if p is not table]
    opt = torch.optim.AdamW(
        [{"params": [table], "lr": args.lr * args.embedding_lr_scale}, {"params": rest, "lr": args.lr}],
        weight_decay=0.0,
        betas=(0.9, 0.99),
    )

    def lr_at(step):
        # (with --fresh-optimizer the schedule's step 0 is the resumed step: warmup again)
        w = min(1.0, step / args.warmup)
        return w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, args.steps) / args.steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    start = 0
    if args.resume:
        state = torch.load(args.resume)
        text.load_state_dict(state["text"])
        if ema_text is not None and state.get("ema_text"):
            ema_text.load_state_dict(state["ema_text"])
        if not args.fresh_optimizer:
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
        start = state["step"]
        log(f"resumed from step {start}")
    gen = torch.Generator().manual_seed(args.seed + 1 + start)
    rng = np.random.default_rng(args.seed + 17 + start)
    forbidden = phrasings.held_out_skeletons()
    empty_ids = tokenize(tok, [""])

    # a fixed probe batch (captions, noise, timesteps): a clean curve where the training
    # losses are noisy (random t, random captions)
    probe_rng = np.random.default_rng(12345)
    probe_idx = probe_rng.choice(latents.shape[0], size=min(64, latents.shape[0]), replace=False)
    probe_free, probe_original = [], []
    for i in probe_idx.tolist():
        text_free, ws, wp = phrasings.paraphrase(scene_list[i], probe_rng, _forbidden=forbidden)
        probe_free.append(text_free)
        probe_original.append(phrasings.original_caption(scene_list[i], probe_rng, ws, wp))
    probe_gen = torch.Generator().manual_seed(54321)
    probe_x0 = latents[torch.from_numpy(probe_idx)]
    probe_noise = torch.randn(probe_x0.shape, generator=probe_gen)
    probe_t = torch.randint(0, 1000, (len(probe_idx),), generator=probe_gen)
    probe_xt = noise_sched.add_noise(probe_x0, probe_noise, probe_t)
    probe_free_ids, probe_original_ids = tokenize(tok, probe_free), tokenize(tok, probe_original)
    with torch.no_grad():
        probe_old_states = old_text(probe_original_ids).last_hidden_state
        probe_teacher = unet(probe_xt, probe_t, probe_old_states).sample

    @torch.no_grad()
    def probe(model) -> str:
        """Distillation loss on the probe's free captions and drift on its original ones."""
        free_pred = unet(probe_xt, probe_t, model(probe_free_ids).last_hidden_state).sample
        drift = F.mse_loss(model(probe_original_ids).last_hidden_state, probe_old_states)
        return f"probe distill {F.mse_loss(free_pred, probe_teacher).item():.4f} keep {drift.item():.5f}"

    log(f"step {start} {probe(ema_text or text)}")

    def checkpoint(step: int) -> None:
        folder = out_dir / f"step_{step}"
        (ema_text or text).save_pretrained(folder, safe_serialization=True)
        torch.save(
            {
                "text": text.state_dict(),
                "ema_text": ema_text.state_dict() if ema_text is not None else None,
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "step": step,
            },
            out_dir / "state.pt",
        )
        (out_dir / "latest_step.json").write_text(json.dumps({"step": step}))
        log(f"checkpoint {folder}; {probe(ema_text or text)}")

    t0 = time.time()
    running = None
    n = latents.shape[0]
    for step in range(start + 1, args.steps + 1):
        idx = torch.randint(0, n, (args.batch,), generator=gen)
        free, original = [], []
        for i in idx.tolist():
            scene = scene_list[i]
            if rng.random() < args.drop:
                free.append("")
                original.append("")
                continue
            if rng.random() < args.p_paraphrase:
                text_free, ws, wp = phrasings.paraphrase(scene, rng, _forbidden=forbidden)
            else:
                ws, wp = bool(rng.random() < 0.6), bool(rng.random() < 0.75)
                text_free = phrasings.original_caption(scene, rng, ws, wp)
            free.append(text_free)
            original.append(phrasings.original_caption(scene, rng, ws, wp))
        free_ids, original_ids = tokenize(tok, free), tokenize(tok, original)
        x0 = latents[idx]
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, 1000, (args.batch,), generator=gen)
        xt = noise_sched.add_noise(x0, noise, t)
        with torch.no_grad():
            old_states = old_text(torch.cat([original_ids, empty_ids])).last_hidden_state
            teacher = unet(xt, t, old_states[: args.batch]).sample
        new_states = text(torch.cat([free_ids, original_ids, empty_ids])).last_hidden_state
        pred = unet(xt, t, new_states[: args.batch]).sample
        distill = F.mse_loss(pred, teacher)
        denoise = F.mse_loss(pred, noise_sched.get_velocity(x0, noise, t))
        keep = F.mse_loss(new_states[args.batch :], old_states)
        loss = distill + args.denoise_weight * denoise + args.keep_weight * keep
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if ema_text is not None:
            decay = min(args.ema, (1 + step - start) / (10 + step - start))
            with torch.no_grad():
                for src, dst in zip(text.parameters(), ema_text.parameters(), strict=True):
                    dst.lerp_(src, 1 - decay)
        values = np.array([loss.item(), distill.item(), denoise.item(), keep.item()])
        running = values if running is None else 0.95 * running + 0.05 * values
        if step % 10 == 0 or step == start + 1:
            log(
                f"step {step} loss {running[0]:.4f} distill {running[1]:.4f} denoise {running[2]:.4f} "
                f"keep {running[3]:.5f} gn {grad_norm:.2f} lr {sched.get_last_lr()[0]:.2e} "
                f"{(time.time() - t0) / (step - start):.2f} s/step"
            )
        out_of_time = args.max_seconds is not None and time.time() - t0 > args.max_seconds
        if step % args.ckpt_every == 0 or step == args.steps or out_of_time:
            checkpoint(step)
        if out_of_time:
            log(f"--max-seconds reached at step {step}")
            break
    log("done")


if __name__ == "__main__":
    main()
