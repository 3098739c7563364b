"""Tiny SD1.5-, SDXL- and Z-Image-shaped models, built from configs with random weights.

Each is saved both as a diffusers folder and as a single-file checkpoint in the original
key layout (LDM / ComfyUI), written by converting the diffusers keys back to the original
names here (diffusers ships only the other direction). A single file gets its shapes
from a ``<stem>.config/`` folder beside it (configs + tokenizers, no weights; for
Z-Image, whose single files hold only the transformer, a full diffusers folder).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from plugin_api.testing import make_tiny_sd15, tiny_sd15_components

__all__ = [
    "make_tiny_sd15",
    "sd15_to_ldm",
    "tiny_sd15_components",
    "unet_to_ldm",
    "vae_to_ldm",
    "write_config_sidecar",
    "write_single_file",
]

RESNET_TO_LDM = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
UNET_DIRECT = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
}


def _resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    return f"{RESNET_TO_LDM.get(head, head)}.{tail}"


def unet_to_ldm(state: dict[str, torch.Tensor], layers_per_block: int, up_has_attention: list[bool]) -> dict:
    """diffusers UNet2DConditionModel keys -> ``model.diffusion_model.*`` keys."""
    per = layers_per_block + 1
    out = {}
    for key, value in state.items():
        new = None
        for prefix, ldm in UNET_DIRECT.items():
            if key.startswith(prefix + "."):
                new = ldm + key[len(prefix) :]
        if m := re.match(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            i, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{per * i + j + 1}.0.{_resnet(rest)}"
        elif m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            new = f"input_blocks.{per * int(m[1]) + int(m[2]) + 1}.1.{m[3]}"
        elif m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
            new = f"input_blocks.{per * (int(m[1]) + 1)}.0.op.{m[2]}"
        elif m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"middle_block.{2 * int(m[1])}.{_resnet(m[2])}"
        elif m := re.match(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.match(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"output_blocks.{per * int(m[1]) + int(m[2])}.0.{_resnet(m[3])}"
        elif m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            new = f"output_blocks.{per * int(m[1]) + int(m[2])}.1.{m[3]}"
        elif m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            i = int(m[1])
            new = f"output_blocks.{per * i + per - 1}.{2 if up_has_attention[i] else 1}.conv.{m[2]}"
        if new is None:
            raise KeyError(f"no LDM name for UNet key {key}")
        out["model.diffusion_model." + new] = value
    return out


VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def vae_to_ldm(state: dict[str, torch.Tensor], num_blocks: int) -> dict:
    """diffusers AutoencoderKL keys -> ``first_stage_model.*`` keys (attention as 1x1 convs)."""
    out = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", new):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", new):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", new):
            new = f"decoder.up.{num_blocks - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", new):
            new = f"decoder.up.{num_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", new):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)\.(weight|bias)", new):
            new = f"{m[1]}.mid.attn_1.{VAE_ATTENTION[m[2]]}.{m[3]}"
            if m[3] == "weight" and value.ndim == 2:
                value = value[:, :, None, None]  # the original VAE uses 1x1 convolutions
        out["first_stage_model." + new] = value
    return out


def clip_to_ldm(state: dict[str, torch.Tensor], prefix: str) -> dict:
    """transformers CLIPTextModel keys -> ``<prefix>text_model.*`` (transformers 5 dropped
    the ``text_model.`` level; real checkpoints have it)."""
    out = {}
    for key, value in state.items():
        if key.startswith("text_projection"):
            continue
        inner = key if key.startswith("text_model.") else "text_model." + key
        out[prefix + inner] = value
    return out


def sd15_to_ldm(components: dict[str, Any]) -> dict[str, torch.Tensor]:
    unet, vae = components["unet"], components["vae"]
    up_attention = ["CrossAttn" in t for t in unet.config.up_block_types]
    state = unet_to_ldm(unet.state_dict(), unet.config.layers_per_block, up_attention)
    state.update(vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels)))
    state.update(clip_to_ldm(components["text_encoder"].state_dict(), "cond_stage_model.transformer."))
    return state


def write_single_file(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().clone() for k, v in state.items()}, str(path))
    return path


def write_config_sidecar(diffusers_dir: Path, checkpoint: Path, keep_weights: bool = False) -> Path:
    """``<stem>.config/``: the diffusers folder's configs and tokenizers (weights too
    when ``keep_weights``), which the model manager prefers for that checkpoint."""
    target = checkpoint.with_name(checkpoint.stem + ".config")
    shutil.rmtree(target, ignore_errors=True)
    ignore = None if keep_weights else shutil.ignore_patterns("*.safetensors", "*.bin")
    shutil.copytree(diffusers_dir, target, ignore=ignore)
    return target
