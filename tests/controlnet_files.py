"""Tiny ControlNets for the tests, shaped for the tiny SD1.5 / SDXL models.

``ControlNetModel.from_unet`` copies the UNet's encoder; its output convolutions start at
zero (no effect), so the tests give them random weights: the ControlNet then visibly
changes the image, as a trained one does.
"""

from __future__ import annotations

import re
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


def controlnet_to_ldm(controlnet) -> dict[str, torch.Tensor]:
    """diffusers ControlNetModel keys -> the original ``control_model.*`` layout (what
    lllyasviel's control_v11*.safetensors files use)."""
    from tests.tiny_models import unet_to_ldm

    state = {k: v.contiguous() for k, v in controlnet.state_dict().items()}
    blocks = len({k.split(".")[2] for k in state if k.startswith("controlnet_cond_embedding.blocks.")})
    out, encoder = {}, {}
    for key, value in state.items():
        if m := re.match(r"controlnet_down_blocks\.(\d+)\.(weight|bias)", key):
            out[f"zero_convs.{m[1]}.0.{m[2]}"] = value
        elif m := re.match(r"controlnet_mid_block\.(weight|bias)", key):
            out[f"middle_block_out.0.{m[1]}"] = value
        elif m := re.match(r"controlnet_cond_embedding\.conv_in\.(weight|bias)", key):
            out[f"input_hint_block.0.{m[1]}"] = value
        elif m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(weight|bias)", key):
            out[f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"] = value
        elif m := re.match(r"controlnet_cond_embedding\.conv_out\.(weight|bias)", key):
            out[f"input_hint_block.{2 * (blocks + 1)}.{m[1]}"] = value
        else:
            encoder[key] = value
    ldm = unet_to_ldm(encoder, controlnet.config.layers_per_block, [])
    out.update({k.removeprefix("model.diffusion_model."): v for k, v in ldm.items()})
    return {"control_model." + k: v for k, v in out.items()}


def build_models_folder(root: Path, sd15_dir: Path, sdxl_dir: Path | None = None) -> Path:
    """An A1111 models folder: the tiny models linked, and in ControlNet/ two SD1.5
    ControlNets (folder + the same as a single file, and a second one), an SDXL one, a
    truncated file, a pickle file and an empty annotators folder."""
    (root / "Stable-diffusion").mkdir(parents=True)
    for target in (sd15_dir, sdxl_dir):
        if target is not None:
            (root / "Stable-diffusion" / target.name).symlink_to(target, target_is_directory=True)
    folder = root / "ControlNet"
    sd15 = make_controlnet(sd15_dir, seed=1)
    save_folder(sd15, folder / "tiny-sd15-cn")
    save_single_file(sd15, folder / "tiny-sd15-cn-file.safetensors")
    save_file(controlnet_to_ldm(sd15), str(folder / "tiny-sd15-cn-ldm.safetensors"))
    save_folder(make_controlnet(sd15_dir, seed=2), folder / "tiny-sd15-cn-b")
    if sdxl_dir is not None:
        save_folder(make_controlnet(sdxl_dir, seed=3), folder / "tiny-sdxl-cn")
    raw = (folder / "tiny-sd15-cn-file.safetensors").read_bytes()
    (folder / "broken.safetensors").write_bytes(raw[: len(raw) // 3])
    torch.save({"x": torch.ones(1)}, folder / "evil.pth")
    (folder / "annotators").mkdir()
    return root
