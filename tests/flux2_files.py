"""Tiny FLUX.2 Klein models and the files users have them in, for tests.

``tiny_klein_components``: a diffusers Flux2KleinPipeline's components at toy sizes (hidden
64, one double and one single block, a 28-layer Qwen3 of width 32 so that layers 9, 18
and 27 exist, a 2-level VAE with 8 latent channels and random BatchNorm statistics) whose
tokenizer is Easel's own Qwen3 one, so the text encoder reads real token ids.
``klein_to_bfl``: the transformer under BFL's original names (the inverse of diffusers'
``convert_flux2_transformer_checkpoint_to_diffusers``); ``vae_to_bfl``: the VAE as BFL's /
ComfyUI's ``flux2-vae.safetensors`` lays it out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests import tiny_models

HIDDEN = 64  # 2 heads x 32; the single blocks' output layer is 64 + 192 = 256 wide (Q4_K fits)
QWEN_WIDTH = 32
TEXT_WIDTH = 3 * QWEN_WIDTH  # three Qwen3 layers side by side
LATENT_CHANNELS = 8


def tiny_klein_components(tokenizer_cache: Path, seed: int = 0) -> dict[str, Any]:
    from diffusers import AutoencoderKLFlux2, FlowMatchEulerDiscreteScheduler, Flux2Transformer2DModel
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from core.config import MODEL_CONFIGS_DIR
    from core.families.qwen_tokenizer import qwen3_tokenizer

    torch.manual_seed(seed)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=4 * LATENT_CHANNELS, num_layers=1, num_single_layers=1, attention_head_dim=32,
        num_attention_heads=2, joint_attention_dim=TEXT_WIDTH, mlp_ratio=3.0, axes_dims_rope=(8, 8, 8, 8),
        guidance_embeds=False,
    )  # fmt: skip
    vae = AutoencoderKLFlux2(
        block_out_channels=(16, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=LATENT_CHANNELS,
        norm_num_groups=8,
    )  # fmt: skip
    # statistics that are not the identity, so the (de)normalisation is exercised
    vae.bn.running_mean.copy_(torch.randn(4 * LATENT_CHANNELS) * 0.2)
    vae.bn.running_var.copy_(torch.rand(4 * LATENT_CHANNELS) + 0.5)
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=151936, hidden_size=QWEN_WIDTH, intermediate_size=64, num_hidden_layers=28,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
            tie_word_embeddings=True,
        )
    )  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(
        str(MODEL_CONFIGS_DIR / "flux2-klein-4b" / "scheduler")
    )
    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "text_encoder": text_encoder.eval(),
        "tokenizer": qwen3_tokenizer(tokenizer_cache),
        "scheduler": scheduler,
    }


DIRECT = {
    "time_guidance_embed.timestep_embedder.linear_1.": "time_in.in_layer.",
    "time_guidance_embed.timestep_embedder.linear_2.": "time_in.out_layer.",
    "double_stream_modulation_img.linear.": "double_stream_modulation_img.lin.",
    "double_stream_modulation_txt.linear.": "double_stream_modulation_txt.lin.",
    "single_stream_modulation.linear.": "single_stream_modulation.lin.",
    "x_embedder.": "img_in.",
    "context_embedder.": "txt_in.",
    "proj_out.": "final_layer.linear.",
}
DOUBLE = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
    "attn.to_out.0.": "img_attn.proj.",
    "attn.to_add_out.": "txt_attn.proj.",
    "ff.linear_in.": "img_mlp.0.",
    "ff.linear_out.": "img_mlp.2.",
    "ff_context.linear_in.": "txt_mlp.0.",
    "ff_context.linear_out.": "txt_mlp.2.",
}
SINGLE = {
    "attn.to_qkv_mlp_proj.": "linear1.",
    "attn.to_out.": "linear2.",
    "attn.norm_q.weight": "norm.query_norm.scale",
    "attn.norm_k.weight": "norm.key_norm.scale",
}


def _rename(rest: str, table: dict[str, str]) -> str | None:
    for ours, theirs in table.items():
        if rest.startswith(ours):
            return theirs + rest.removeprefix(ours)
    return None


def klein_to_bfl(transformer: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The transformer's weights under BFL's names (``flux-2-klein-4b.safetensors``)."""
    state = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for i in range(len(transformer.transformer_blocks)):
        block = f"transformer_blocks.{i}."
        for names, target in (
            ("to_q to_k to_v", "img_attn.qkv"),
            ("add_q_proj add_k_proj add_v_proj", "txt_attn.qkv"),
        ):
            out[f"double_blocks.{i}.{target}.weight"] = torch.cat(
                [state.pop(f"{block}attn.{n}.weight") for n in names.split()]
            )
        for key in [k for k in state if k.startswith(block)]:
            renamed = _rename(key.removeprefix(block), DOUBLE)
            assert renamed is not None, key
            out[f"double_blocks.{i}.{renamed}"] = state.pop(key)
    for i in range(len(transformer.single_transformer_blocks)):
        block = f"single_transformer_blocks.{i}."
        for key in [k for k in state if k.startswith(block)]:
            renamed = _rename(key.removeprefix(block), SINGLE)
            assert renamed is not None, key
            out[f"single_blocks.{i}.{renamed}"] = state.pop(key)
    # BFL stores (shift, scale); diffusers' AdaLayerNormContinuous holds (scale, shift)
    scale, shift = state.pop("norm_out.linear.weight").chunk(2, dim=0)
    out["final_layer.adaLN_modulation.1.weight"] = torch.cat([shift, scale])
    for key in list(state):
        renamed = _rename(key, DIRECT)
        assert renamed is not None, key
        out[renamed] = state.pop(key)
    return {prefix + k: v.contiguous() for k, v in out.items()}


def vae_to_bfl(vae: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The VAE as ``flux2-vae.safetensors``: LDM names, the quant convs inside the encoder
    and decoder, the latent BatchNorm as ``bn.*``."""
    state = dict(vae.state_dict())
    bn = {k: state.pop(k) for k in list(state) if k.startswith("bn.")}
    quant = {k: state.pop(k) for k in list(state) if k.startswith(("quant_conv.", "post_quant_conv."))}
    ldm = tiny_models.vae_to_ldm(state, len(vae.config.block_out_channels))
    out = {k.removeprefix("first_stage_model."): v for k, v in ldm.items()}
    for key, value in quant.items():
        out[("encoder." if key.startswith("quant_conv.") else "decoder.") + key] = value
    out.update(bn)
    return out


# (out, in) of the tiny model's layers, under each LoRA layout's names
LORA_TARGETS = {
    # diffusers / ai-toolkit's diffusers export: "transformer." + the module path
    "diffusers": {
        "transformer.transformer_blocks.0.attn.to_q": (HIDDEN, HIDDEN),
        "transformer.transformer_blocks.0.attn.add_k_proj": (HIDDEN, HIDDEN),
        "transformer.transformer_blocks.0.ff.linear_in": (6 * HIDDEN, HIDDEN),
        "transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj": (9 * HIDDEN, HIDDEN),
        "transformer.single_transformer_blocks.0.attn.to_out": (HIDDEN, 4 * HIDDEN),
    },
    # ComfyUI / ai-toolkit: "diffusion_model." + BFL's names, qkv and linear1 fused
    "comfyui": {
        "diffusion_model.double_blocks.0.img_attn.qkv": (3 * HIDDEN, HIDDEN),
        "diffusion_model.double_blocks.0.txt_attn.proj": (HIDDEN, HIDDEN),
        "diffusion_model.double_blocks.0.img_mlp.0": (6 * HIDDEN, HIDDEN),
        "diffusion_model.single_blocks.0.linear1": (9 * HIDDEN, HIDDEN),
        "diffusion_model.single_blocks.0.linear2": (HIDDEN, 4 * HIDDEN),
    },
    # kohya (sd-scripts): "lora_unet_" + the BFL path with "_", lora_down/lora_up and alpha
    "kohya": {
        "lora_unet_double_blocks_0_img_attn_qkv": (3 * HIDDEN, HIDDEN),
        "lora_unet_double_blocks_0_txt_mlp_2": (HIDDEN, 3 * HIDDEN),
        "lora_unet_single_blocks_0_linear1": (9 * HIDDEN, HIDDEN),
        "lora_unet_single_blocks_0_linear2": (HIDDEN, 4 * HIDDEN),
    },
}


def write_lora(path: Path, layout: str, seed: int, rank: int = 4) -> Path:
    """A Klein LoRA in ``layout`` ("diffusers", "comfyui": lora_A/lora_B without alpha, scale
    1; "kohya": lora_down/lora_up with alpha = rank / 2)."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    down, up = ("lora_down", "lora_up") if layout == "kohya" else ("lora_A", "lora_B")
    size = 0.6 if layout == "kohya" else 0.3  # kohya's alpha halves its effect
    state = {}
    for name, (out_features, in_features) in LORA_TARGETS[layout].items():
        state[f"{name}.{down}.weight"] = torch.randn(rank, in_features, generator=generator) * size
        state[f"{name}.{up}.weight"] = torch.randn(out_features, rank, generator=generator) * size
        if layout == "kohya":
            state[f"{name}.alpha"] = torch.tensor(rank / 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path
