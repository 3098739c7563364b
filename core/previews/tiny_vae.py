"""Tiny autoencoders (TAESD, TAESDXL, TAEF1) as preview decoders, from the files users have.

A1111/Forge keep them in ``models/VAE-approx/`` (``taesd_decoder.pth``, ``taesdxl_decoder.pth``,
``taef1_decoder.pth``), ComfyUI in ``models/vae_approx/`` (``*_decoder.safetensors``), and
diffusers users have Hugging Face folders (``taesd/`` with ``config.json`` and
``diffusion_pytorch_model.safetensors``). Two key layouts exist:

- the original ``taesd.py`` decoder, an ``nn.Sequential`` whose index 0 is a parameterless
  clamp: ``1.weight``, ``3.conv.0.weight``..., sometimes under ``decoder.`` or
  ``taesd_decoder.``;
- diffusers' ``AutoencoderTiny``: ``decoder.layers.0.weight``... (the same layers, one
  index lower, since diffusers does the clamp in ``forward``).

Both are read into diffusers' ``DecoderTiny``, its shape (latent channels, widths, blocks per
stage) taken from the tensors themselves, so files of any width load. The decoder takes the
model's scaled latents, as A1111's and ComfyUI's previewers give it (TAESD was trained on
them). Pickle files (``.pth``) load only with ``--allow-pickle``, and then with
``weights_only=True``, as checkpoints do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import ModelError
from core.models.files import load_pickle_state_dict

FOLDER_KIND = "VAE-approx"  # A1111's folder name (ComfyUI's vae_approx: plugin_api.model_folders)
SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt")
ORIGINAL_PREFIXES = ("taesd_decoder.", "decoder.", "")
DIFFUSERS_PREFIX = "decoder.layers."
_INDEX = re.compile(r"^(\d+)\.(.+)$")


@dataclass(frozen=True)
class TinyVaeFile:
    name: str  # the file or folder name, as listed
    path: Path


def candidate_names(stem: str) -> list[str]:
    """File and folder names for one model kind ("taesd"), the most specific first."""
    names = []
    for base in (f"{stem}_decoder", stem):
        names += [base + suffix for suffix in (*SAFE_SUFFIXES, *PICKLE_SUFFIXES)]
    return [*names, stem]  # a diffusers folder


def find_tiny_vae(folders: list[Path], stems: tuple[str, ...], allow_pickle: bool) -> TinyVaeFile | None:
    """The first usable tiny VAE for a family (its ``tiny_vae_names``) in ``folders``."""
    for folder in folders:
        for stem in stems:
            for name in candidate_names(stem):
                path = folder / name
                if path.is_dir() and (path / "config.json").is_file():
                    return TinyVaeFile(name, path)
                if not path.is_file():
                    continue
                if path.suffix.lower() in SAFE_SUFFIXES or allow_pickle:
                    return TinyVaeFile(name, path)
    return None


def _read_state_dict(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if path.suffix.lower() in SAFE_SUFFIXES:
        return load_file(str(path))
    if path.suffix.lower() in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise ModelError(f"{path.name}: pickle files load only with --allow-pickle")
        # the checkpoints' reader: weights_only, a "state_dict" inside unwrapped
        data = load_pickle_state_dict(path)
        return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    raise ModelError(f"{path.name}: not a .safetensors or .pth file")


def decoder_layers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The decoder's tensors keyed as ``DecoderTiny`` keys them (``layers.N...``), from
    either layout; ModelError when neither matches."""
    if any(k.startswith(DIFFUSERS_PREFIX) for k in state_dict):
        return {k[len("decoder.") :]: v for k, v in state_dict.items() if k.startswith(DIFFUSERS_PREFIX)}
    for prefix in ORIGINAL_PREFIXES:
        picked: dict[str, torch.Tensor] = {}
        for key, value in state_dict.items():
            match = _INDEX.match(key[len(prefix) :]) if key.startswith(prefix) else None
            if match and int(match.group(1)) >= 1:
                picked[f"layers.{int(match.group(1)) - 1}.{match.group(2)}"] = value
        if "layers.0.weight" in picked:
            return picked
    raise ModelError("not a tiny autoencoder decoder (neither the taesd nor the diffusers key layout)")


def decoder_shape(layers: dict[str, torch.Tensor]) -> dict[str, Any]:
    """``DecoderTiny``'s arguments read from the tensors: latent channels, the blocks and
    width of every stage (a stage ends at a plain convolution), output channels."""
    indices = sorted({int(k.split(".")[1]) for k in layers})
    first = layers.get("layers.0.weight")
    if first is None or first.ndim != 4:
        raise ModelError("tiny VAE: its first convolution is missing")
    num_blocks: list[int] = []
    widths: list[int] = []
    count, out_channels = 0, None
    for index in indices[1:]:
        if f"layers.{index}.conv.0.weight" in layers:
            if count == 0:
                widths.append(int(layers[f"layers.{index}.conv.0.weight"].shape[0]))
            count += 1
        elif f"layers.{index}.weight" in layers:
            if count == 0:
                raise ModelError(f"tiny VAE: convolution {index} follows no block")
            num_blocks.append(count)
            out_channels = int(layers[f"layers.{index}.weight"].shape[0])
            count = 0
    if not num_blocks or count:
        raise ModelError("tiny VAE: its layers do not end in an output convolution")
    return {
        "in_channels": int(first.shape[1]),
        "out_channels": out_channels,
        "num_blocks": tuple(num_blocks),
        "block_out_channels": tuple(widths),
    }


class TinyDecoder:
    """A loaded tiny decoder: scaled latents -> images in [-1, 1]."""

    def __init__(self, module: torch.nn.Module, name: str, scale: float = 1.0, shift: float = 0.0) -> None:
        self.module = module.eval()
        self.name = name
        self.scale, self.shift = scale, shift

    @property
    def latent_channels(self) -> int:
        return int(self.module.layers[0].in_channels)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        first = next(self.module.parameters())
        if first.device != latents.device:
            self.module.to(latents.device)
        x = latents.to(torch.float32) / self.scale + self.shift
        with torch.inference_mode():
            return self.module(x)


def load_tiny_decoder(found: TinyVaeFile, allow_pickle: bool) -> TinyDecoder:
    """ModelError naming the file when it is not a tiny VAE decoder of either layout."""
    from diffusers.models.autoencoders.vae import DecoderTiny

    path, options = found.path, {}
    try:
        if path.is_dir():
            options = json.loads((path / "config.json").read_text("utf-8"))
            weights = path / "diffusion_pytorch_model.safetensors"
            if not weights.is_file():
                raise ModelError("its folder has no diffusion_pytorch_model.safetensors")
            state_dict = _read_state_dict(weights, allow_pickle)
        else:
            state_dict = _read_state_dict(path, allow_pickle)
        layers = decoder_layers(state_dict)
        shape = decoder_shape(layers)
        module = DecoderTiny(
            **shape,
            upsampling_scaling_factor=int(options.get("upsampling_scaling_factor", 2)),
            act_fn=str(options.get("act_fn", "relu")),
            upsample_fn=str(options.get("upsample_fn", "nearest")),
        )
        module.load_state_dict({k: v.float() for k, v in layers.items()}, strict=True)
    except ModelError as exc:
        raise ModelError(f"tiny VAE {found.name}: {exc}") from exc
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise ModelError(f"tiny VAE {found.name}: could not be loaded ({exc})") from exc
    scale = float(options.get("scaling_factor", 1.0) or 1.0)
    shift = float(options.get("shift_factor", 0.0) or 0.0)
    return TinyDecoder(module, found.name, scale, shift)
