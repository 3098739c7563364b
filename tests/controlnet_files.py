"""Tiny ControlNets for the tests, shaped for the tiny SD1.5 / SDXL models.

``ControlNetModel.from_unet`` copies the UNet's encoder; its output convolutions start at
zero (no effect), so the tests give them random weights: the ControlNet then visibly
changes the image, as a trained one does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

# 64x64 images, VAE factor 8: three stride-2 steps in the conditioning embedding
TINY_CONDITIONING_CHANNELS = (8, 8, 16, 16)


def make_controlnet(model_dir: Path, seed: int = 0):
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(Path(model_dir) / "unet", local_files_only=True)
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=TINY_CONDITIONING_CHANNELS
    )
    generator = torch.Generator().manual_seed(seed)
    zero_convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
    with torch.no_grad():
        for conv in [*zero_convs, controlnet.controlnet_cond_embedding.conv_out]:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 0.2)
    return controlnet


def save_folder(controlnet, folder: Path) -> Path:
    controlnet.save_pretrained(str(folder), safe_serialization=True)
    return folder


def save_single_file(controlnet, path: Path) -> Path:
    """diffusers' key layout in one safetensors file (how many SDXL ControlNets ship)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in controlnet.state_dict().items()}, str(path))
    return path
