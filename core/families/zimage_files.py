"""A Z-Image pipeline from ComfyUI's three files: transformer, Qwen3 text encoder, Flux VAE.

Shapes come from a config folder (the shipped ``core/model_configs/zimage`` or a
``<name>.config/`` beside the transformer), weights from the files, each converted as
diffusers/transformers do: the transformer and the VAE (original BFL layout) with diffusers'
single-file loaders, the text encoder (transformers' Qwen3 keys, ComfyUI prefixes them with
``model.``) with transformers' own ``from_pretrained``, which also builds the buffers that
the file does not hold (the rotary frequencies). A weight left on the meta device would
only fail after sampling, so any such weight is reported here, naming the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelError
from core.families.flux_files import read_state
from core.families.unloaded_weights import refuse_meta
from core.models.comfyui import ZImageFiles

COMFY_TEXT_PREFIX = "model."


def is_full_folder(config_dir: Path) -> bool:
    """True when the config folder carries the text encoder's and the VAE's weights."""
    return any((config_dir / "text_encoder").glob("*.safetensors")) and any(
        (config_dir / "vae").glob("*.safetensors")
    )


def original_layout_files(transformer: Path, config_dir: Path) -> ZImageFiles | None:
    """The issue #21 case: a full ``<name>.config/`` whose ``vae/`` holds ComfyUI's
    ``ae.safetensors`` (original BFL keys: ``encoder.down.0.block.0...``) rather than a
    diffusers VAE. diffusers' from_pretrained would leave every VAE weight unloaded; these
    files are loaded as ComfyUI's instead (the text encoder's keys work either way)."""
    from core.models.files import read_safetensors_header

    vaes = sorted((config_dir / "vae").glob("*.safetensors"))
    encoders = sorted((config_dir / "text_encoder").glob("*.safetensors"))
    if len(vaes) != 1 or len(encoders) != 1:
        return None  # sharded files are diffusers' own
    keys = read_safetensors_header(vaes[0])
    if not any(k.startswith(("encoder.down.", "first_stage_model.encoder.down.")) for k in keys):
        return None
    tokenizer = config_dir / "tokenizer" if (config_dir / "tokenizer").is_dir() else None
    return ZImageFiles(transformer, encoders[0], vaes[0], tokenizer)


def caption_width(config_dir: Path) -> int:
    import json

    try:
        config = json.loads((config_dir / "transformer" / "config.json").read_text("utf-8"))
        return int(config["cap_feat_dim"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{config_dir}/transformer/config.json: no cap_feat_dim: {exc}") from exc


def load_text_encoder(path: Path, config_dir: Path, dtype: torch.dtype) -> torch.nn.Module:
    """Qwen3 from ComfyUI's file (FP8 weights widened, scales applied) or a llama.cpp
    GGUF (``Qwen3-4B-Q8_0.gguf``: dequantised to ``dtype``, see core/models/gguf_text.py)."""
    from transformers import AutoConfig, Qwen3Model

    from core.families.flux_files import is_gguf
    from core.models.gguf_text import read_text_encoder

    config = AutoConfig.from_pretrained(str(config_dir / "text_encoder"), local_files_only=True)
    gguf = is_gguf(path)
    state = read_text_encoder(path, "qwen3", dtype) if gguf else read_state(path, dtype)
    state = {k.removeprefix(COMFY_TEXT_PREFIX): v for k, v in state.items() if not k.startswith("lm_head.")}
    if not any(k.startswith("layers.") for k in state):
        raise ModelError(f"{path}: not a Qwen3 text encoder (no layers.* / model.layers.* tensors)")
    # transformers' own loading: meta init, dtype, the rotary buffers the file lacks
    model, info = Qwen3Model.from_pretrained(
        None, config=config, state_dict=state, dtype=dtype, output_loading_info=True
    )
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise ModelError(f"{path}: not a Qwen3 text encoder for this config: {missing[0]}{more} missing")
    unexpected = sorted(info.get("unexpected_keys") or []) if gguf else []
    if unexpected:  # every GGUF tensor was mapped by name: a deeper or other model
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise ModelError(f"{path}: not a Qwen3 text encoder for this config: it has {unexpected[0]}{more}")
    return model


def load_from_files(
    files: ZImageFiles,
    config_dir: Path,
    dtype: torch.dtype,
    tokenizer_cache: Path,
    load_transformer: Callable[[Path], Any] | None = None,
    load_vae: Callable[[Path], Any] | None = None,
    family: str = "Z-Image",
) -> dict[str, Any]:
    """Components from a transformer file, a Qwen3 text encoder file and a VAE file.
    ``load_transformer``/``load_vae`` read their file (default: Z-Image's, through diffusers'
    single-file loaders); FLUX.2 Klein passes its own and shares the rest."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImageTransformer2DModel

    from core.families.qwen_tokenizer import qwen3_tokenizer

    def load(what: str, path: Path, loader: Any) -> Any:
        try:
            return loader()
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{path}: cannot load as the {family} {what}: {type(exc).__name__}: {exc}"
            ) from exc

    if load_transformer is None:

        def load_transformer(path: Path) -> Any:
            return ZImageTransformer2DModel.from_single_file(
                str(path), config=str(config_dir), subfolder="transformer", local_files_only=True, dtype=dtype
            )

    if load_vae is None:

        def load_vae(path: Path) -> Any:
            return AutoencoderKL.from_single_file(
                str(path), config=str(config_dir), subfolder="vae", local_files_only=True, dtype=dtype
            )

    transformer = load("transformer", files.transformer, lambda: load_transformer(files.transformer))
    vae = load("VAE", files.vae, lambda: load_vae(files.vae))
    encoder = load(
        "text encoder", files.text_encoder, lambda: load_text_encoder(files.text_encoder, config_dir, dtype)
    )
    if files.tokenizer is not None or (config_dir / "tokenizer").is_dir():
        from transformers import AutoTokenizer

        folder = files.tokenizer or config_dir / "tokenizer"
        tokenizer = load(
            "tokenizer", folder, lambda: AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        )
    else:
        tokenizer = qwen3_tokenizer(tokenizer_cache)
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(str(config_dir), subfolder="scheduler")
    components = {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": encoder,
        "tokenizer": tokenizer,
        "scheduler": scheduler,
    }
    for name, path in (
        ("transformer", files.transformer),
        ("vae", files.vae),
        ("text_encoder", files.text_encoder),
    ):
        refuse_meta(components[name], str(path))
    return components
