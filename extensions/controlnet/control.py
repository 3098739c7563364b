"""Running the ControlNets beside the denoiser: prepared units and per-step residuals.

Each unit's residuals are computed with its weight as ``conditioning_scale`` and summed
over the units that apply at this step (``start <= step/total <= end``). The sum goes
back through ``denoiser_kwargs`` as ``down_block_additional_residuals`` and
``mid_block_additional_residual``, the keyword arguments diffusers' UNet takes; the core
adds them to the UNet's skip connections. A step where no unit applies returns nothing,
so the UNet call is exactly the one without ControlNet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from extensions.controlnet.units import ControlUnit


@dataclass
class PreparedUnit:
    unit: ControlUnit
    model: Any  # diffusers ControlNetModel on the denoiser's device and dtype
    control: torch.Tensor  # (1, 3, H, W) in [0, 1]
    control_image: Image.Image  # the preprocessed map, as the ControlNet sees it


def image_to_control(image: Image.Image, device: Any, dtype: Any) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].to(device=device, dtype=dtype)


def residuals(
    prepared: list[PreparedUnit],
    fraction: float,
    latents: torch.Tensor,
    timestep: float,
    inputs: dict[str, Any],
) -> dict[str, Any] | None:
    """The summed residuals of the units that apply at ``fraction``, or None."""
    active = [p for p in prepared if p.unit.applies_at(fraction)]
    if not active:
        return None
    hidden = inputs["encoder_hidden_states"]
    added = inputs.get("added_cond_kwargs") or None
    down_sum: list[torch.Tensor] | None = None
    mid_sum: torch.Tensor | None = None
    for item in active:
        model = item.model
        t = torch.tensor(timestep, dtype=torch.float32, device=latents.device)
        cond = item.control.expand(latents.shape[0], -1, -1, -1)
        down, mid = model(
            latents.to(model.dtype),
            t,
            encoder_hidden_states=hidden.to(model.dtype),
            controlnet_cond=cond,
            conditioning_scale=item.unit.weight,
            added_cond_kwargs=_cast(added, model.dtype),
            return_dict=False,
        )
        if down_sum is None:
            down_sum, mid_sum = list(down), mid
        else:
            down_sum = [a + b for a, b in zip(down_sum, down, strict=True)]
            mid_sum = mid_sum + mid
    return {"down_block_additional_residuals": down_sum, "mid_block_additional_residual": mid_sum}


def _cast(added: dict[str, Any] | None, dtype: Any) -> dict[str, Any] | None:
    if not added:
        return None
    return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in added.items()}
