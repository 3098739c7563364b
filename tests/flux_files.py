"""Tiny FLUX.1 models and the files users have them in, for tests.

``tiny_flux_components``: a diffusers FluxPipeline's components at toy sizes (hidden 64,
one double and one single block) whose tokenizers are Easel's real ones (CLIP-L's shipped
vocabulary, T5's shipped tokenizer.json), so the text encoders read real token ids;
``guidance=False`` is FLUX.1-schnell's shape (no guidance embedding, schnell's scheduler);
``write_flux_folder`` saves them as a diffusers folder.
``flux_to_bfl``: the transformer in BFL's original layout (the inverse of diffusers'
``convert_flux_transformer_checkpoint_to_diffusers``). ``write_gguf`` and ``to_fp8_scaled``
write the transformer as city96's GGUF files and ComfyUI's scaled FP8 files are laid out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

HIDDEN = 64  # 2 heads x 32; the MLP is 256 wide, so Q4_K (256-element blocks) applies to it
TEXT_WIDTH = 32  # T5 and CLIP widths (joint_attention_dim, pooled_projection_dim)


def tiny_flux_components(seed: int = 0, guidance: bool = True) -> dict[str, Any]:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    from core.config import MODEL_CONFIGS_DIR
    from core.models.manager import materialize_config_dir

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=32,
        num_attention_heads=2, joint_attention_dim=TEXT_WIDTH, pooled_projection_dim=TEXT_WIDTH,
        guidance_embeds=guidance, axes_dims_rope=(8, 12, 12),
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(16, 16), layers_per_block=1,
        latent_channels=16, norm_num_groups=8, use_quant_conv=False, use_post_quant_conv=False,
        scaling_factor=0.3611, shift_factor=0.1159, sample_size=1024,  # tiles as FLUX.1's: from 1024 px
    )  # fmt: skip
    clip = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=TEXT_WIDTH, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            projection_dim=TEXT_WIDTH, vocab_size=49408, max_position_embeddings=77,
        )
    )  # fmt: skip
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=32128, d_model=TEXT_WIDTH, d_kv=16, d_ff=64, num_layers=1, num_heads=2,
            feed_forward_proj="gated-gelu", is_gated_act=True, dense_act_fn="gelu_new",
        )
    )  # fmt: skip
    variant = "flux-dev" if guidance else "flux-schnell"
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(
        str(MODEL_CONFIGS_DIR / variant / "scheduler")
    )
    configs = materialize_config_dir(MODEL_CONFIGS_DIR / variant, Path(_cache_dir()))
    from transformers import AutoTokenizer

    return {
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "text_encoder": clip.eval(),
        "text_encoder_2": t5.eval(),
        "tokenizer": AutoTokenizer.from_pretrained(str(configs / "tokenizer")),
        "tokenizer_2": AutoTokenizer.from_pretrained(str(configs / "tokenizer_2")),
        "scheduler": scheduler,
    }


def write_flux_folder(path: Path, seed: int = 0, guidance: bool = True) -> dict[str, Any]:
    """A tiny FLUX.1-dev (``guidance``) or -schnell as a diffusers folder; its components."""
    from diffusers import FluxPipeline

    components = tiny_flux_components(seed=seed, guidance=guidance)
    FluxPipeline(**components).save_pretrained(str(path))
    return components


def tiny_chroma_components(seed: int = 0) -> dict[str, Any]:
    """A tiny Chroma: FLUX.1's tiny blocks without modulation, the approximator, T5 only."""
    from diffusers import ChromaTransformer2DModel

    flux = tiny_flux_components(seed=seed)
    torch.manual_seed(seed + 1)
    transformer = ChromaTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=32,
        num_attention_heads=2, joint_attention_dim=TEXT_WIDTH, axes_dims_rope=(8, 12, 12),
        approximator_num_channels=16, approximator_hidden_dim=64, approximator_layers=2,
    )  # fmt: skip
    return {
        "transformer": transformer.eval(),
        "vae": flux["vae"],
        "text_encoder": flux["text_encoder_2"],
        "tokenizer": flux["tokenizer_2"],
        "scheduler": flux["scheduler"],
    }


def _cache_dir() -> str:
    import tempfile

    return str(Path(tempfile.gettempdir()) / "easel-test-model-configs")


DIRECT = {
    "time_text_embed.timestep_embedder.linear_1.": "time_in.in_layer.",
    "time_text_embed.timestep_embedder.linear_2.": "time_in.out_layer.",
    "time_text_embed.text_embedder.linear_1.": "vector_in.in_layer.",
    "time_text_embed.text_embedder.linear_2.": "vector_in.out_layer.",
    "time_text_embed.guidance_embedder.linear_1.": "guidance_in.in_layer.",
    "time_text_embed.guidance_embedder.linear_2.": "guidance_in.out_layer.",
    "context_embedder.": "txt_in.",
    "x_embedder.": "img_in.",
    "proj_out.": "final_layer.linear.",
}
DOUBLE = {
    "norm1.linear.": "img_mod.lin.",
    "norm1_context.linear.": "txt_mod.lin.",
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
    "ff.net.0.proj.": "img_mlp.0.",
    "ff.net.2.": "img_mlp.2.",
    "ff_context.net.0.proj.": "txt_mlp.0.",
    "ff_context.net.2.": "txt_mlp.2.",
    "attn.to_out.0.": "img_attn.proj.",
    "attn.to_add_out.": "txt_attn.proj.",
}
SINGLE = {
    "norm.linear.": "modulation.lin.",
    "proj_out.": "linear2.",
    "attn.norm_q.weight": "norm.query_norm.scale",
    "attn.norm_k.weight": "norm.key_norm.scale",
}


def _swap_halves(tensor: torch.Tensor) -> torch.Tensor:
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def flux_to_bfl(transformer: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """The transformer's weights under BFL's original names (``flux1-dev.safetensors``)."""
    state = {k: v.detach().clone() for k, v in transformer.state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for i in range(len(transformer.transformer_blocks)):
        block = f"transformer_blocks.{i}."
        for kind in ("weight", "bias"):
            for names, target in (
                ("to_q to_k to_v", "img_attn.qkv"),
                ("add_q_proj add_k_proj add_v_proj", "txt_attn.qkv"),
            ):
                parts = [state.pop(f"{block}attn.{n}.{kind}") for n in names.split()]
                out[f"double_blocks.{i}.{target}.{kind}"] = torch.cat(parts)
        for key in [k for k in state if k.startswith(block)]:
            rest = key.removeprefix(block)
            for ours, theirs in DOUBLE.items():
                if rest.startswith(ours):
                    out[f"double_blocks.{i}.{theirs}{rest.removeprefix(ours)}"] = state.pop(key)
                    break
    for i in range(len(transformer.single_transformer_blocks)):
        block = f"single_transformer_blocks.{i}."
        for kind in ("weight", "bias"):
            parts = [state.pop(f"{block}attn.{n}.{kind}") for n in ("to_q", "to_k", "to_v")]
            parts.append(state.pop(f"{block}proj_mlp.{kind}"))
            out[f"single_blocks.{i}.linear1.{kind}"] = torch.cat(parts)
        for key in [k for k in state if k.startswith(block)]:
            rest = key.removeprefix(block)
            for ours, theirs in SINGLE.items():
                if rest.startswith(ours):
                    out[f"single_blocks.{i}.{theirs}{rest.removeprefix(ours)}"] = state.pop(key)
                    break
    for kind in ("weight", "bias"):
        if f"norm_out.linear.{kind}" in state:  # FLUX.1; Chroma's final norm has no weights
            out[f"final_layer.adaLN_modulation.1.{kind}"] = _swap_halves(state.pop(f"norm_out.linear.{kind}"))
    for key in [k for k in state if k.startswith("distilled_guidance_layer.")]:
        renamed = re.sub(r"layers\.(\d+)\.linear_1", r"layers.\1.in_layer", key)
        renamed = re.sub(r"layers\.(\d+)\.linear_2", r"layers.\1.out_layer", renamed)
        renamed = re.sub(r"norms\.(\d+)\.weight", r"norms.\1.scale", renamed)
        out[renamed] = state.pop(key)
    for key in list(state):
        for ours, theirs in DIRECT.items():
            if key.startswith(ours):
                out[theirs + key.removeprefix(ours)] = state.pop(key)
                break
    assert not state, f"unconverted: {sorted(state)[:5]}"
    return {prefix + k: v.contiguous() for k, v in out.items()}


def write_gguf(path: Path, bfl: dict[str, torch.Tensor], qtype_name: str) -> dict[str, torch.Tensor]:
    """``bfl`` as a city96-style GGUF file: 2-D weights whose rows fit the quant's blocks in
    ``qtype_name`` (Q8_0, Q5_K, Q4_K...), the rest in F32. Returns the weights the file holds,
    dequantised (what the file means)."""
    import gguf

    qtype = gguf.GGMLQuantizationType[qtype_name]
    block, _ = gguf.GGML_QUANT_SIZES[qtype]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch="flux")
    meant: dict[str, torch.Tensor] = {}
    for name, tensor in bfl.items():
        data = tensor.float().numpy()
        if data.ndim == 2 and data.shape[1] % block == 0:
            quantized = _quantize(data, qtype)
            writer.add_tensor(name, quantized, raw_dtype=qtype)
            meant[name] = torch.from_numpy(
                np.asarray(gguf.quants.dequantize(quantized, qtype), dtype=np.float32)
            )
        else:
            writer.add_tensor(name, data)
            meant[name] = torch.from_numpy(data.copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return meant


def _quantize(data: np.ndarray, qtype: Any) -> np.ndarray:
    """gguf's own quantizer where it has one (Q8_0, Q5_0...). It has none for the K-quants:
    their blocks are made from random codes under small scales (a valid block is any bytes
    with finite scales; its meaning is gguf's dequantize, which the reference uses)."""
    import gguf

    try:
        return gguf.quants.quantize(data, qtype)
    except NotImplementedError:
        pass
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    rows, blocks = data.shape[0], data.shape[1] // block
    rng = np.random.default_rng(int(abs(data).sum() * 1000) % 2**32)
    raw = rng.integers(0, 256, size=(rows, blocks, size), dtype=np.uint8)
    scale = np.frombuffer(np.array([0.0002], dtype=np.float16).tobytes(), dtype=np.uint8)
    raw[:, :, 0:2] = scale  # d and dmin (Q2_K..Q5_K start with them; Q6_K ends with d)
    raw[:, :, 2:4] = scale
    if qtype.name == "Q6_K":
        raw[:, :, -2:] = scale
    return raw.reshape(rows, blocks * size)


def to_fp8_scaled(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """ComfyUI's scaled FP8 layout: each 2-D weight as float8_e4m3fn with a ``scale_weight``
    beside it, a ``scaled_fp8`` marker. Returns (file tensors, what they mean)."""
    out: dict[str, torch.Tensor] = {"scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    meant: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if tensor.ndim == 2 and name.endswith(".weight"):
            scale = tensor.abs().max().float() / 448.0
            fp8 = (tensor.float() / scale).to(torch.float8_e4m3fn)
            out[name] = fp8
            out[name.removesuffix(".weight") + ".scale_weight"] = scale.reshape(1)
            meant[name] = fp8.float() * scale
        else:
            out[name] = tensor
            meant[name] = tensor
    return out, meant


# kohya's names for some FLUX.1 layers (sd-scripts' networks/lora_flux.py): "lora_unet_" +
# the BFL module path with "_" for "."; qkv and linear1 are fused as in the BFL file
KOHYA_TARGETS = {
    "lora_unet_double_blocks_0_img_attn_qkv": (3 * HIDDEN, HIDDEN),
    "lora_unet_double_blocks_0_img_attn_proj": (HIDDEN, HIDDEN),
    "lora_unet_double_blocks_0_txt_attn_qkv": (3 * HIDDEN, HIDDEN),
    "lora_unet_double_blocks_0_img_mlp_0": (4 * HIDDEN, HIDDEN),
    "lora_unet_double_blocks_0_txt_mlp_2": (HIDDEN, 4 * HIDDEN),
    "lora_unet_single_blocks_0_linear2": (HIDDEN, 5 * HIDDEN),
}


def write_kohya_lora(path: Path, seed: int, rank: int = 4) -> Path:
    """A kohya-format FLUX.1 LoRA (lora_down/lora_up/alpha) over :data:`KOHYA_TARGETS`."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, (out_features, in_features) in KOHYA_TARGETS.items():
        state[f"{name}.lora_down.weight"] = torch.randn(rank, in_features, generator=generator) * 0.3
        state[f"{name}.lora_up.weight"] = torch.randn(out_features, rank, generator=generator) * 0.3
        state[f"{name}.alpha"] = torch.tensor(float(rank))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        state,
        str(path),
        metadata={"ss_base_model_version": "flux1", "ss_network_module": "networks.lora_flux"},
    )
    return path
