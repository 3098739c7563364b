"""The files FLUX.1 comes in, loaded into diffusers' components.

A Flux transformer file is BFL's original layout (``double_blocks.*``, ``single_blocks.*``),
bare (``flux1-dev.safetensors``) or ComfyUI-prefixed (``model.diffusion_model.``); in
bf16/fp16, in FP8 (``float8_e4m3fn`` weights, optionally "scaled" as ComfyUI writes them:
a ``scale_weight`` tensor beside each weight) or as GGUF (city96's ComfyUI-GGUF files:
the same names, Q8_0/Q5_K/Q4_K... blocks). diffusers converts the layout
(``from_single_file`` with the shipped config) and runs GGUF weights through its own GGUF
quantizer (dequantised per layer at run time, so the file's memory saving is kept).
FP8 files are widened to the compute dtype on load (their scales applied).

The text encoders and the VAE come from ComfyUI's ``text_encoders/`` (``clip/``) and
``vae/`` files (``clip_l.safetensors``, ``t5xxl_fp16.safetensors``, an FP8 one
(``t5xxl_fp8_e4m3fn[_scaled].safetensors``: widened with their scales as above) or
city96's GGUF T5 encoder (``t5-v1_1-xxl-encoder-Q8_0.gguf``: ``core/models/gguf_text.py``),
``ae.safetensors``), found by their tensors or named in a sidecar ``<name>.easel.json``,
or from a full diffusers folder at ``<name>.config/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.errors import ModelError
from core.families.flux_keys import bfl_to_diffusers

COMFY_PREFIX = "model.diffusion_model."
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
# ComfyUI's scaled FP8 checkpoints: a "scaled_fp8" marker and "<layer>.scale_weight" beside
# each "<layer>.weight" (newer ComfyUI quantised files call it "<layer>.weight_scale")
SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
INPUT_SCALE_SUFFIXES = (".scale_input", ".input_scale")
MARKERS = ("scaled_fp8", "comfy_quant")
FAMILIES = ("flux", "chroma")  # the families whose single files load through this module
# transformers whose BFL names diffusers' own converter maps at any size (FLUX.2: it splits
# the fused qkv in three equal parts and keeps linear1 fused), so Easel's mapping is not used
DIFFUSERS_CONVERTS = ("Flux2Transformer2DModel",)


def companion_widths(config_dir: Path) -> tuple[str, int, int | None]:
    """(pipeline class, T5 width, CLIP width or None) a config folder asks for: the T5 width
    is the transformer's ``joint_attention_dim``, CLIP's its ``pooled_projection_dim``."""
    import json

    try:
        index = json.loads((config_dir / "model_index.json").read_text("utf-8"))
        transformer = json.loads((config_dir / "transformer" / "config.json").read_text("utf-8"))
        pipeline = str(index["_class_name"])
        t5 = int(transformer.get("joint_attention_dim", 4096))
        clip = None if pipeline == "ChromaPipeline" else int(transformer.get("pooled_projection_dim", 768))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{config_dir}: not a Flux config folder: {exc}") from exc
    return pipeline, t5, clip


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def dequantize_fp8(state: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """FP8 weights (scaled or not) widened to ``dtype``; other tensors as they are."""
    scales: dict[str, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in MARKERS or key.endswith(INPUT_SCALE_SUFFIXES) or key.endswith(".comfy_quant"):
            continue
        suffix = next((s for s in SCALE_SUFFIXES if key.endswith(s)), None)
        if suffix is not None:
            scales[key.removesuffix(suffix) + ".weight"] = value
            continue
        out[key] = value
    for key, value in out.items():
        if value.dtype not in FP8_DTYPES:
            continue
        wide = value.to(torch.float32)
        scale = scales.get(key)
        if scale is not None:
            scale = scale.to(torch.float32)
            if scale.numel() > 1 and scale.ndim == 1 and scale.shape[0] == wide.shape[0]:
                scale = scale.view(-1, *([1] * (wide.ndim - 1)))  # one scale per output row
            wide = wide * scale
        out[key] = wide.to(dtype)
    stray = sorted(set(scales) - set(out))
    if stray:
        raise ModelError(f"scale tensors without weights: {stray[0]}")
    return out


def read_state(path: Path, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, FP8 ones widened to ``dtype``."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: unreadable safetensors file: {exc}") from exc
    return dequantize_fp8(state, dtype)


def load_transformer(path: Path, config_dir: Path, dtype: torch.dtype, class_name: str) -> torch.nn.Module:
    """The transformer of a single file (safetensors, FP8 or GGUF), shaped by ``config_dir``:
    FLUX.1 / Chroma (``bfl_to_diffusers``) or FLUX.2 (diffusers' converter)."""
    import diffusers

    model_class = getattr(diffusers, class_name)
    kwargs: dict[str, Any] = {
        "config": str(config_dir),
        "subfolder": "transformer",
        "local_files_only": True,
        "dtype": dtype,
    }
    try:
        if is_gguf(path):
            from diffusers.models.model_loading_utils import load_gguf_checkpoint

            kwargs["quantization_config"] = diffusers.GGUFQuantizationConfig(compute_dtype=dtype)
            state = load_gguf_checkpoint(str(path), return_tensors=True)
        else:
            state = read_state(path, dtype)
        state = {k.removeprefix(COMFY_PREFIX): v for k, v in state.items()}
        if class_name not in DIFFUSERS_CONVERTS:
            state = bfl_to_diffusers(state, inner_dim(config_dir))
        return model_class.from_single_file(state, **kwargs)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: cannot load as a {class_name}: {type(exc).__name__}: {exc}") from exc


def inner_dim(config_dir: Path) -> int:
    import json

    try:
        config = json.loads((config_dir / "transformer" / "config.json").read_text("utf-8"))
        return int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{config_dir}/transformer/config.json: no attention sizes: {exc}") from exc


def load_text_model(path: Path, config_dir: Path, subfolder: str, dtype: torch.dtype, what: str) -> Any:
    """A transformers text encoder (CLIPTextModel, T5EncoderModel) from one ComfyUI file
    (``text_model.`` levels and FP8 weights as ComfyUI writes them), config from
    ``config_dir/subfolder``; a weight the file lacks is an error naming it."""
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(config_dir / subfolder), local_files_only=True)
    model_class = getattr(transformers, config.architectures[0])
    gguf = is_gguf(path)
    if gguf:
        if config.model_type != "t5":
            raise ModelError(f"{path}: a GGUF {what} is not supported; use its safetensors file")
        from core.models.gguf_text import read_text_encoder

        state = read_text_encoder(path, "t5", dtype)  # dequantised: costs the compute dtype's memory
    else:
        state = read_state(path, dtype)
    # transformers 5's CLIPTextModel has no "text_model." level; ComfyUI's clip_l keeps it
    state = {k.removeprefix("text_model."): v for k, v in state.items()}
    try:
        model, info = model_class.from_pretrained(
            None, config=config, state_dict=state, dtype=dtype, output_loading_info=True
        )
    except Exception as exc:
        raise ModelError(f"{path}: cannot load as the {what}: {type(exc).__name__}: {exc}") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelError(f"{path}: not a {what} for this config: {missing[0]}{more} missing")
    # a GGUF's tensors are all mapped by name, so one left over is a deeper model (ComfyUI's
    # safetensors carry extras such as CLIP's text_projection, which are left alone)
    unexpected = sorted(info.get("unexpected_keys") or []) if gguf else []
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise ModelError(f"{path}: not a {what} for this config: it has {unexpected[0]}{more}")
    return model


def load_vae(path: Path, config_dir: Path, dtype: torch.dtype) -> Any:
    from diffusers import AutoencoderKL

    try:
        return AutoencoderKL.from_single_file(
            str(path), config=str(config_dir), subfolder="vae", local_files_only=True, dtype=dtype
        )
    except Exception as exc:
        raise ModelError(f"{path}: cannot load as the Flux VAE: {type(exc).__name__}: {exc}") from exc


def load_from_files(files: Any, config_dir: Path, dtype: torch.dtype, pipeline: str) -> dict[str, Any]:
    """Components from a transformer file and its companions (``core.models.comfyui.FluxFiles``)."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import AutoTokenizer

    from core.families.unloaded_weights import refuse_meta

    transformer_class = (
        "ChromaTransformer2DModel" if pipeline == "ChromaPipeline" else "FluxTransformer2DModel"
    )
    components: dict[str, Any] = {
        "transformer": load_transformer(files.transformer, config_dir, dtype, transformer_class),
        "vae": load_vae(files.vae, config_dir, dtype),
        "scheduler": FlowMatchEulerDiscreteScheduler.from_pretrained(str(config_dir), subfolder="scheduler"),
    }
    sources = {"transformer": files.transformer, "vae": files.vae}
    t5_name = "text_encoder" if pipeline == "ChromaPipeline" else "text_encoder_2"
    components[t5_name] = load_text_model(files.t5, config_dir, t5_name, dtype, "T5-XXL text encoder")
    sources[t5_name] = files.t5
    if files.clip is not None:
        components["text_encoder"] = load_text_model(
            files.clip, config_dir, "text_encoder", dtype, "CLIP-L text encoder"
        )
        sources["text_encoder"] = files.clip
    for folder in ("tokenizer", "tokenizer_2"):
        if (config_dir / folder).is_dir():
            components[folder] = AutoTokenizer.from_pretrained(
                str(config_dir / folder), local_files_only=True
            )
    for name, source in sources.items():
        refuse_meta(components[name], str(source))
    return components
