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


def tiny_qwen_image_components(seed: int = 0, head_dim: int = 16) -> dict[str, Any]:
    """``head_dim`` 32 makes the transformer 64 wide: its MLP's 256-wide rows hold whole
    K-quant blocks (the GGUF tests)."""
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
        attention_head_dim=head_dim,
        num_attention_heads=2,
        joint_attention_dim=32,
        axes_dims_rope=(head_dim // 4, 3 * head_dim // 8, 3 * head_dim // 8),
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


# --- ComfyUI's layouts (written here independently of the loaders under test) -------------

WAN_RESIDUAL = {
    "norm1.": "residual.0.",
    "conv1.": "residual.2.",
    "norm2.": "residual.3.",
    "conv2.": "residual.6.",
}
WAN_RESIDUAL["conv_shortcut."] = "shortcut."


def _wan_inner(rest: str) -> str:
    for ours, theirs in WAN_RESIDUAL.items():
        if rest.startswith(ours):
            return theirs + rest.removeprefix(ours)
    return rest


def vae_to_wan(vae: torch.nn.Module) -> dict[str, torch.Tensor]:
    """An ``AutoencoderKLQwenImage``'s weights in the Wan 2.1 layout of ComfyUI's
    ``qwen_image_vae.safetensors`` (``comfy/ldm/wan/vae.py``): flat ``downsamples`` /
    ``upsamples`` lists of residual blocks and resamplers, ``middle``, ``head``."""
    import re

    flat = {}
    for i, block in enumerate(vae.decoder.up_blocks):
        for name in [f"resnets.{j}" for j in range(len(block.resnets))] + (
            ["upsamplers.0"] if block.upsamplers else []
        ):
            flat[f"up_blocks.{i}.{name}"] = len(flat)
    out = {}
    for key, value in vae.state_dict().items():
        value = value.detach().clone()
        if key.startswith(("quant_conv.", "post_quant_conv.")):
            out[("conv1." if key.startswith("quant") else "conv2.") + key.split(".", 1)[1]] = value
            continue
        part, rest = key.split(".", 1)
        if m := re.match(r"down_blocks\.(\d+)\.(.+)$", rest):
            out[f"{part}.downsamples.{m[1]}.{_wan_inner(m[2])}"] = value
        elif m := re.match(r"(up_blocks\.\d+\.(?:resnets|upsamplers)\.\d+)\.(.+)$", rest):
            out[f"{part}.upsamples.{flat[m[1]]}.{_wan_inner(m[2])}"] = value
        elif m := re.match(r"mid_block\.(resnets|attentions)\.(\d)\.(.+)$", rest):
            index = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[f"{m[1]}.{m[2]}"]
            out[f"{part}.middle.{index}.{_wan_inner(m[3])}"] = value
        else:
            renamed = {"conv_in.": "conv1.", "norm_out.": "head.0.", "conv_out.": "head.2."}
            head = next(h for h in renamed if rest.startswith(h))
            out[f"{part}.{renamed[head]}{rest.removeprefix(head)}"] = value
    return out


def text_encoder_as_comfyui(text_encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Qwen2.5-VL's weights in the original Hugging Face names ComfyUI's
    ``qwen_2.5_vl_7b.safetensors`` keeps (``model.layers.*``, ``visual.*``), without the
    language-model head (ComfyUI's Qwen25_7BVLI has none)."""
    out = {}
    for key, value in text_encoder.state_dict().items():
        if key.startswith("lm_head."):
            continue
        key = key.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
        out[key] = value.detach().clone()
    return out
