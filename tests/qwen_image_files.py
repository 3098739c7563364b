"""A tiny Qwen-Image pipeline built here from configs (no download): Qwen2.5-VL text
encoder, the 3D Qwen-Image VAE, the MMDiT transformer, the tiny trained Qwen tokenizer of
``tests.tiny_models`` and the scheduler settings Qwen-Image ships (dynamic exponential shift)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tests.tiny_models import tiny_qwen_tokenizer


def shipped_scheduler_config() -> dict[str, Any]:
    from core.config import MODEL_CONFIGS_DIR

    path = MODEL_CONFIGS_DIR / "qwen_image" / "scheduler" / "scheduler_config.json"
    return json.loads(path.read_text("utf-8"))


def tiny_qwen_image_components(seed: int = 0) -> dict[str, Any]:
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = tiny_qwen_tokenizer()
    torch.manual_seed(seed)
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        rope_scaling={"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},
        rope_theta=1e6,
        bos_token_id=0,
        eos_token_id=2,
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=32),
        vocab_size=len(tokenizer),
        hidden_size=32,
        bos_token_id=0,
        eos_token_id=2,
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    transformer = QwenImageTransformer2DModel(
        patch_size=2,
        in_channels=16,
        out_channels=4,
        num_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKLQwenImage(
        base_dim=8,
        z_dim=4,
        dim_mult=[1, 2, 2],
        num_res_blocks=1,
        temperal_downsample=[False, True],
        latents_mean=[0.1, -0.2, 0.3, 0.0],
        latents_std=[1.5, 0.8, 1.2, 1.0],
    )
    # at random init the image barely hears the text (cond and uncond predictions differ by
    # less than one 8-bit level in the image): louder text values make CFG, and so a wrong
    # CFG, visible in the tests
    with torch.no_grad():
        transformer.txt_in.weight.mul_(30)
        for block in transformer.transformer_blocks:
            block.attn.add_v_proj.weight.mul_(30**0.5)
        transformer.proj_out.weight.mul_(3)
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(shipped_scheduler_config())
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }


def make_tiny_qwen_image(folder: Path, seed: int = 0) -> Path:
    from diffusers import QwenImagePipeline

    QwenImagePipeline(**tiny_qwen_image_components(seed)).save_pretrained(str(folder))
    return Path(folder)
