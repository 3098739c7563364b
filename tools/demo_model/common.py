"""Shared configuration and helpers for the demo-model training scripts."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKENIZER_DIR = REPO_ROOT / "core" / "model_configs" / "clip_tokenizer"
MODEL_DIR = REPO_ROOT / "models" / "Stable-diffusion" / "easel-demo"
WORK_DIR = Path(os.environ.get("EASEL_DEMO_WORK", "/tmp/easel-demo-work"))  # caches, checkpoints

IMAGE_SIZE = 128
LATENT_SIZE = IMAGE_SIZE // 8

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(32, 32, 64, 64),
    layers_per_block=1,
    latent_channels=4,
    # few groups on purpose: a GroupNorm with ~1 channel per group maps a flat colour field
    # to zero, and these scenes are mostly flat colour
    norm_num_groups=4,
    sample_size=IMAGE_SIZE,
    mid_block_add_attention=False,
)

TEXT_CONFIG = dict(
    vocab_size=49408,
    hidden_size=64,
    intermediate_size=256,
    num_hidden_layers=3,
    num_attention_heads=4,
    max_position_embeddings=77,
    projection_dim=64,
    bos_token_id=49406,
    eos_token_id=49407,
    pad_token_id=49407,
    hidden_act="quick_gelu",
)

UNET_CONFIG = dict(
    sample_size=LATENT_SIZE,
    in_channels=4,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(32, 64, 128),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=TEXT_CONFIG["hidden_size"],
    attention_head_dim=32,
    norm_num_groups=8,  # >= 4 channels per group (see VAE_CONFIG)
)

# The shipped model (session 3 on) uses the "tail" schedule and predicts v (SCHEDULER_CONFIG).
#
# Why: with SD1.5's schedule a flat high-contrast shape on a 16x16 latent is still visible
# through the noise at t=999, so the first model put it wherever the initial noise
# suggested and ignored the position words (same seed with "left"/"right"/"top"/"bottom":
# identical images). The "tail" schedule ramps the betas to 0.05 after t=800
# (alpha_bar(999) 9.4e-5 instead of 4.7e-3; sampling starts at t=999), and v-prediction
# makes the model predict the image itself at high noise, where an epsilon model gains
# only alpha_bar by getting it right. README.md tells how it was trained.
TAIL_START = 800
TAIL_BETA_END = 0.05


def tail_betas() -> list[float]:
    import numpy as np

    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    betas[TAIL_START:] = np.linspace(betas[TAIL_START], TAIL_BETA_END, 1000 - TAIL_START)
    return [round(float(b), 8) for b in betas]


def scheduler_config(schedule: str = "sd15", prediction: str = "epsilon") -> dict:
    config = dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type=prediction,
        timestep_spacing="leading",
        steps_offset=1,
    )
    if schedule == "tail":
        config.update(trained_betas=tail_betas(), timestep_spacing="trailing")
    elif schedule != "sd15":
        raise ValueError(f"unknown schedule {schedule!r}")
    return config


SCHEDULER_CONFIG = scheduler_config("tail", "v_prediction")

DEFAULT_CFG = 4.0
DEFAULT_STEPS = 20
# Strong guidance early (layout, colours), weak late (request.late_cfg_*): strong guidance
# in the low-noise steps is what rounds squares and caves triangles into stars. Chosen on
# scenes.validation_prompts() for the step-12000 weights (shape 0.865 against 0.583 at CFG 6
# throughout); "a red circle on a blue background" stays a circle on 16 of 16 seeds.
# See README "Session 6".
LATE_CFG_SCALE = 1.5
LATE_CFG_START = 0.3
# the one size the model was trained at (easel.json "sizes": Easel's size presets and its
# far-above-native warning follow it, core/models/sizes.py)
NATIVE_SIZES = [[IMAGE_SIZE, IMAGE_SIZE]]
RECOMMENDED = {
    "sampler": "Euler",  # the folder's scheduler, as the evaluation runs it
    "steps": DEFAULT_STEPS,
    "cfg_scale": DEFAULT_CFG,
    "late_cfg_scale": LATE_CFG_SCALE,
    "late_cfg_start": LATE_CFG_START,
}


def setup_torch(seed: int) -> None:
    torch.manual_seed(seed)
    torch.set_flush_denormal(True)
    np.random.seed(seed % (2**32))
    torch.set_num_threads(int(os.environ.get("EASEL_DEMO_THREADS", "2")))


def load_tokenizer(path: Path | str = TOKENIZER_DIR):
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(path), model_max_length=77)
    assert len(tok) == 49408, len(tok)
    return tok


def images_to_tensor(images) -> torch.Tensor:
    """List of PIL images -> float tensor (N, 3, H, W) in [-1, 1]."""
    arr = np.stack([np.asarray(im, dtype=np.float32) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2) / 127.5 - 1.0


def tensor_to_images(x: torch.Tensor):
    from PIL import Image

    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]


class Logger:
    def __init__(self, path: Path | None = None):
        self.t0 = time.time()
        self.path = path

    def __call__(self, msg: str) -> None:
        line = f"[{time.time() - self.t0:7.1f}s] {msg}"
        print(line, flush=True)
        if self.path:
            with open(self.path, "a") as f:
                f.write(line + "\n")
