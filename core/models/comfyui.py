"""ComfyUI's models folder beside A1111's: which subfolder holds what, and the files a
Z-Image transformer is used with.

``--models-dir`` may be an A1111/Forge folder (``Stable-diffusion/``, ``Lora/``...), a
ComfyUI one (``checkpoints/``, ``diffusion_models/``...) or both at once: every kind is read
from all of its names. ComfyUI users have Z-Image-Turbo as three files,
``diffusion_models/z_image_turbo*.safetensors`` (the transformer),
``text_encoders/qwen_3_4b*.safetensors`` (Qwen3-4B; or a GGUF, core/models/gguf_text.py) and
``vae/ae.safetensors`` (the Flux VAE);
:func:`zimage_companions` finds the text encoder and VAE for a transformer, from a sidecar
``<name>.easel.json`` when there is one, else by their tensors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import ModelError
from plugin_api.model_folders import folder_names

A1111_MARKERS = ("Stable-diffusion", "Lora", "ESRGAN")
COMFYUI_MARKERS = (
    "checkpoints",
    "diffusion_models",
    "unet",
    "text_encoders",
    "clip",
    "loras",
    "upscale_models",
)
SIDECAR_SUFFIX = ".easel.json"
# a Qwen3 text encoder (q_norm exists in Qwen3, not Qwen2), with or without ComfyUI's "model."
QWEN3_KEY = "layers.0.self_attn.q_norm.weight"
QWEN3_EMBED = "embed_tokens.weight"
FLUX_VAE_KEY = "decoder.conv_in.weight"  # [channels, 16, 3, 3]: a 16-channel latent VAE
# text encoders also come as llama.cpp GGUF files (city96's T5, Qwen3, Qwen2.5-VL)
TEXT_SUFFIXES = (".safetensors", ".gguf")


__all__ = [
    "FluxFiles",
    "QwenImageFiles",
    "ZImageFiles",
    "flux_companions",
    "folder_names",
    "layouts",
    "qwen_image_companions",
    "zimage_companions",
]


def layouts(models_dir: Path) -> list[str]:
    """Which layouts a models folder has: ["a1111"], ["comfyui"], both, or none."""
    found = []
    if any((models_dir / name).is_dir() for name in A1111_MARKERS):
        found.append("a1111")
    if any((models_dir / name).is_dir() for name in COMFYUI_MARKERS):
        found.append("comfyui")
    return found


@dataclass(frozen=True)
class ZImageFiles:
    transformer: Path
    text_encoder: Path
    vae: Path
    tokenizer: Path | None = None  # a tokenizer folder the user supplies (else the built one)


def _shapes(path: Path) -> dict[str, list[int]]:
    """A companion file's tensor shapes under transformers' names (a GGUF text encoder's
    llama.cpp names are mapped; a GGUF of any other kind has none)."""
    from core.models.files import read_safetensors_header

    if path.suffix == ".gguf":
        from core.models.gguf_text import text_shapes

        return text_shapes(path)
    return {k: v["shape"] for k, v in read_safetensors_header(path).items()}


def qwen3_width(shapes: dict[str, list[int]]) -> int | None:
    """The hidden size of a Qwen3 text encoder file (None: not one)."""
    for prefix in ("model.", ""):
        if prefix + QWEN3_KEY in shapes and prefix + QWEN3_EMBED in shapes:
            return int(shapes[prefix + QWEN3_EMBED][1])
    return None


def is_flux_vae(shapes: dict[str, list[int]], latent_channels: int = 16) -> bool:
    """A Flux VAE file: 16 latent channels for FLUX.1 / Z-Image (``ae.safetensors``), 32 for
    FLUX.2 (``flux2-vae.safetensors``, which also carries the latent BatchNorm ``bn.*``)."""
    conv = shapes.get(FLUX_VAE_KEY) or shapes.get("first_stage_model." + FLUX_VAE_KEY)
    return conv is not None and len(conv) == 4 and conv[1] == latent_channels


def _files(folders: list[Path], suffixes: tuple[str, ...] = (".safetensors",)) -> list[Path]:
    return sorted(
        p
        for folder in folders
        if folder.is_dir()
        for p in folder.rglob("*")
        if p.suffix in suffixes and p.is_file()
    )


def zimage_companions(
    transformer: Path,
    caption_width: int,
    folders: dict[str, list[Path]],
    latent_channels: int = 16,
    family: str = "Z-Image",
) -> ZImageFiles:
    """The Qwen3 text encoder and VAE files for a Z-Image (or FLUX.2 Klein) transformer file.
    ``folders`` maps "text_encoders" and "VAE" to the folders searched; ``caption_width`` is
    the Qwen3 width the transformer expects (Qwen3-4B: 2560; Klein 9B's Qwen3-8B: 4096),
    ``latent_channels`` the VAE's (16; FLUX.2: 32)."""
    sidecar = transformer.with_name(transformer.stem + SIDECAR_SUFFIX)
    if sidecar.is_file():
        return _from_sidecar(transformer, sidecar, folders)
    encoders = [
        p
        for p in _files(folders.get("text_encoders", []), TEXT_SUFFIXES)
        if qwen3_width(_shapes(p)) == caption_width
    ]
    vaes = [p for p in _files(folders.get("VAE", [])) if is_flux_vae(_shapes(p), latent_channels)]
    missing = []
    if not encoders:
        where = ", ".join(str(f) for f in folders.get("text_encoders", [])) or "<models>/text_encoders"
        missing.append(
            f"a Qwen3 text encoder file of width {caption_width} (e.g. qwen_3_4b.safetensors "
            f"or Qwen3-4B-Q8_0.gguf) in {where}"
        )
    if not vaes:
        where = ", ".join(str(f) for f in folders.get("VAE", [])) or "<models>/vae"
        example = "ae.safetensors" if latent_channels == 16 else "flux2-vae.safetensors"
        missing.append(f"a {latent_channels}-channel (Flux) VAE file (e.g. {example}) in {where}")
    if missing:
        raise ModelError(
            f"{transformer}: a {family} file holds only the transformer; Easel needs "
            + " and ".join(missing)
            + f", or a sidecar {sidecar.name} naming them"
        )
    return ZImageFiles(transformer, encoders[0], vaes[0])


def _from_sidecar(transformer: Path, sidecar: Path, folders: dict[str, list[Path]]) -> ZImageFiles:
    """``{"text_encoder": "qwen_3_4b.safetensors", "vae": "ae.safetensors", "tokenizer": "dir"}``:
    names inside the text_encoders/ and vae/ folders, or paths relative to the sidecar."""
    found = read_sidecar(
        sidecar,
        folders,
        {
            "text_encoder": ("text_encoders", True),
            "vae": ("VAE", True),
            "tokenizer": ("text_encoders", False),
        },
    )
    return ZImageFiles(transformer, found["text_encoder"], found["vae"], found.get("tokenizer"))


def read_sidecar(
    sidecar: Path, folders: dict[str, list[Path]], wanted: dict[str, tuple[str, bool]]
) -> dict[str, Path]:
    """The files a sidecar ``<name>.easel.json`` names: ``wanted`` maps each key to the kind
    of folder it is looked up in and whether it is required. A name is looked up inside
    those folders or beside the sidecar, never outside them."""
    try:
        data = json.loads(sidecar.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{sidecar}: unreadable: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelError(
            f"{sidecar}: expected a JSON object with {' and '.join(k for k, (_, r) in wanted.items() if r)}"
        )
    found: dict[str, Path] = {}
    for key, (kind, required) in wanted.items():
        value = data.get(key)
        if value is None and not required:
            continue
        if not isinstance(value, str) or not value:
            raise ModelError(f"{sidecar}: {key!r} must name a file")
        for base in [*folders.get(kind, []), sidecar.parent]:
            candidate = (base / value).resolve()
            if candidate.exists() and candidate.is_relative_to(base.resolve()):
                found[key] = candidate
                break
        else:
            raise ModelError(
                f"{sidecar}: {key} {value!r} not found in {', '.join(map(str, folders.get(kind, [])))}"
            )
    return found


# --- FLUX.1 and Chroma -------------------------------------------------------------------

T5_KEY = "encoder.block.0.layer.0.SelfAttention.q.weight"
T5_EMBED = "shared.weight"
CLIP_EMBED = "embeddings.token_embedding.weight"
CLIP_LAYER = "encoder.layers.0.self_attn.q_proj.weight"


@dataclass(frozen=True)
class FluxFiles:
    transformer: Path
    t5: Path
    vae: Path
    clip: Path | None = None  # CLIP-L (FLUX.1); Chroma has none


# UMT5 (Wan's umt5_xxl_*, often in the same text_encoders/) has T5's names and width but a
# relative attention bias in every block; T5 v1.1 has it in the first block only
UMT5_KEY = "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"


def t5_width(shapes: dict[str, list[int]]) -> int | None:
    """The width of a T5 (v1.1) encoder file (None: not one, or a UMT5)."""
    if T5_KEY in shapes and len(shapes[T5_KEY]) == 2 and UMT5_KEY not in shapes:
        return int(shapes[T5_KEY][1])
    return None


def clip_width(shapes: dict[str, list[int]]) -> int | None:
    """The width of a CLIP text encoder file in transformers' layout (None: not one)."""
    for prefix in ("text_model.", ""):
        if prefix + CLIP_LAYER in shapes and prefix + CLIP_EMBED in shapes:
            return int(shapes[prefix + CLIP_EMBED][1])
    return None


def flux_companions(
    transformer: Path, t5: int, clip: int | None, folders: dict[str, list[Path]], family: str = "FLUX.1"
) -> FluxFiles:
    """The text encoder and VAE files for a Flux or Chroma transformer file: a T5 encoder of
    width ``t5`` (T5-XXL: 4096), a CLIP-L of width ``clip`` (768; None: not needed) and a
    16-channel VAE, from ``folders`` ("text_encoders", "VAE") or a sidecar naming them
    (``{"t5xxl": ..., "clip_l": ..., "vae": ...}``)."""
    sidecar = transformer.with_name(transformer.stem + SIDECAR_SUFFIX)
    if sidecar.is_file():
        wanted = {"t5xxl": ("text_encoders", True), "vae": ("VAE", True)}
        if clip is not None:
            wanted["clip_l"] = ("text_encoders", True)
        found = read_sidecar(sidecar, folders, wanted)
        return FluxFiles(transformer, found["t5xxl"], found["vae"], found.get("clip_l"))
    encoders = [(p, _shapes(p)) for p in _files(folders.get("text_encoders", []), TEXT_SUFFIXES)]
    t5s = [p for p, shapes in encoders if t5_width(shapes) == t5]
    clips = [p for p, shapes in encoders if clip_width(shapes) == clip]
    vaes = [p for p in _files(folders.get("VAE", [])) if is_flux_vae(_shapes(p))]
    missing = []
    where_text = ", ".join(str(f) for f in folders.get("text_encoders", [])) or "<models>/text_encoders"
    if not t5s:
        missing.append(
            f"a T5 text encoder file of width {t5} (e.g. t5xxl_fp16.safetensors, "
            f"t5xxl_fp8_e4m3fn_scaled.safetensors or t5-v1_1-xxl-encoder-Q8_0.gguf) in {where_text}"
        )
    if clip is not None and not clips:
        missing.append(
            f"a CLIP-L text encoder file of width {clip} (e.g. clip_l.safetensors) in {where_text}"
        )
    if not vaes:
        where = ", ".join(str(f) for f in folders.get("VAE", [])) or "<models>/vae"
        missing.append(f"a 16-channel (Flux) VAE file (e.g. ae.safetensors) in {where}")
    if missing:
        raise ModelError(
            f"{transformer}: a {family} file holds only the transformer; Easel needs "
            + " and ".join(missing)
            + f", or a sidecar {sidecar.name} naming them"
        )
    return FluxFiles(transformer, t5s[0], vaes[0], clips[0] if clip is not None else None)


# --- Qwen-Image ---------------------------------------------------------------------------

# Qwen2.5 has biases on q/k/v (Qwen3 has none, and q_norm instead)
QWEN25_KEY = "layers.0.self_attn.q_proj.bias"
QWEN25_PREFIXES = ("model.", "model.language_model.", "")
WAN_VAE_KEY = "decoder.conv1.weight"  # [channels, z_dim, 3, 3, 3]: ComfyUI's Wan-layout VAE


@dataclass(frozen=True)
class QwenImageFiles:
    transformer: Path
    text_encoder: Path
    vae: Path
    tokenizer: Path | None = None  # a tokenizer folder the user names (else the config's or the built one)


def qwen25_width(shapes: dict[str, list[int]]) -> int | None:
    """The hidden size of a Qwen2.5(-VL) language model file (None: not one)."""
    for prefix in QWEN25_PREFIXES:
        embed = shapes.get(prefix + QWEN3_EMBED)
        if prefix + QWEN25_KEY in shapes and embed is not None and len(embed) == 2:
            return int(embed[1])
    return None


def qwen_image_companions(
    transformer: Path, text_width: int, folders: dict[str, list[Path]], vae_channels: int = 16
) -> QwenImageFiles:
    """The text encoder and VAE files for a Qwen-Image transformer file: a Qwen2.5-VL of
    width ``text_width`` (the transformer's ``joint_attention_dim``; 3584 for the 7B) and a
    Wan-style 3D VAE of ``vae_channels`` latent channels, from ``folders`` ("text_encoders", "VAE") or a sidecar naming them
    (``{"text_encoder": ..., "vae": ..., "tokenizer": ...}``). Where several VAEs fit, one
    named ``qwen*`` is preferred (Wan 2.1's VAE has the same shapes)."""
    sidecar = transformer.with_name(transformer.stem + SIDECAR_SUFFIX)
    if sidecar.is_file():
        wanted = {
            "text_encoder": ("text_encoders", True),
            "vae": ("VAE", True),
            "tokenizer": ("text_encoders", False),
        }
        found = read_sidecar(sidecar, folders, wanted)
        return QwenImageFiles(transformer, found["text_encoder"], found["vae"], found.get("tokenizer"))
    encoders = [
        p
        for p in _files(folders.get("text_encoders", []), TEXT_SUFFIXES)
        if qwen25_width(_shapes(p)) == text_width
    ]
    vaes = [p for p in _files(folders.get("VAE", [])) if _vae_channels(_shapes(p)) == vae_channels]
    vaes.sort(key=lambda p: not p.name.lower().startswith("qwen"))
    missing = []
    if not encoders:
        where = ", ".join(str(f) for f in folders.get("text_encoders", [])) or "<models>/text_encoders"
        missing.append(
            f"a Qwen2.5-VL text encoder file of width {text_width} (e.g. qwen_2.5_vl_7b.safetensors "
            f"or Qwen2.5-VL-7B-Instruct-Q8_0.gguf) in {where}"
        )
    if not vaes:
        where = ", ".join(str(f) for f in folders.get("VAE", [])) or "<models>/vae"
        missing.append(f"a Qwen-Image VAE file (e.g. qwen_image_vae.safetensors) in {where}")
    if missing:
        raise ModelError(
            f"{transformer}: a Qwen-Image file holds only the transformer; Easel needs "
            + " and ".join(missing)
            + f", or a sidecar {sidecar.name} naming them"
        )
    return QwenImageFiles(transformer, encoders[0], vaes[0])


def _vae_channels(shapes: dict[str, list[int]]) -> int | None:
    """The latent channels of a Wan-style 3D VAE file (None: not one)."""
    for key in (WAN_VAE_KEY, "decoder.conv_in.weight"):
        conv = shapes.get(key) or shapes.get("first_stage_model." + key)
        if conv is not None and len(conv) == 5:
            return int(conv[1])
    return None
