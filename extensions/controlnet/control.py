"""Running the ControlNets beside the denoiser: prepared units and per-step residuals.

Each unit's residuals are computed with its weight as ``conditioning_scale`` and summed
over the units that apply at this step (``start <= step/total <= end``). The sum goes
back through ``denoiser_kwargs`` as ``down_block_additional_residuals`` and
``mid_block_additional_residual``, the keyword arguments diffusers' UNet takes; the core
adds them to the UNet's skip connections. A step where no unit applies returns nothing,
so the UNet call is exactly the one without ControlNet.

``control_mode`` follows sd-webui-controlnet: "My prompt is more important" and
"ControlNet is more important" use its soft weighting (the residual of block ``i`` of
``n`` scaled by ``0.825 ** (n - 1 - i)``: shallow blocks, which fix layout and detail,
count less than the deep ones); "ControlNet is more important" also applies the
residuals to the conditional half of the CFG batch only, so CFG pushes the image towards
the control (its "CFG-side" injection). diffusers' ``guess_mode`` is the same idea with
the same 0.825 ladder, but in its pipeline, not in the ControlNet call Easel makes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from extensions.controlnet.units import BALANCED, CONTROL_MODE, ControlUnit

SOFT_DECAY = 0.825  # sd-webui-controlnet's (and ControlNet's guess mode) per-block ladder


@dataclass
class PreparedUnit:
    unit: ControlUnit
    model: Any  # diffusers ControlNetModel on the denoiser's device and dtype
    control: torch.Tensor  # (1, 3, H, W) in [0, 1]
    control_image: Image.Image  # the preprocessed map, as the ControlNet sees it
    vae_factor: int = 8  # latent pixels per side
    # the map at other sizes: the hires pass's latents are larger, and the ControlNet's
    # conditioning must match them (the map is resized, as sd-webui-controlnet does)
    resized: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)

    def control_for(self, latents: torch.Tensor) -> torch.Tensor:
        size = (latents.shape[-2] * self.vae_factor, latents.shape[-1] * self.vae_factor)
        if tuple(self.control.shape[-2:]) == size:
            return self.control
        if size not in self.resized:
            image = self.control_image.resize((size[1], size[0]), Image.Resampling.LANCZOS)
            self.resized[size] = image_to_control(image, self.control.device, self.control.dtype)
        return self.resized[size]


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
        cond = item.control_for(latents).expand(latents.shape[0], -1, -1, -1)
        down, mid = model(
            latents.to(model.dtype),
            t,
            encoder_hidden_states=hidden.to(model.dtype),
            controlnet_cond=cond,
            conditioning_scale=item.unit.weight,
            added_cond_kwargs=_cast(added, model.dtype),
            return_dict=False,
        )
        down, mid = _apply_control_mode(item.unit, list(down), mid, bool(inputs.get("cfg_batch")))
        if down_sum is None:
            down_sum, mid_sum = list(down), mid
        else:
            down_sum = [a + b for a, b in zip(down_sum, down, strict=True)]
            mid_sum = mid_sum + mid
    return {"down_block_additional_residuals": down_sum, "mid_block_additional_residual": mid_sum}


def _apply_control_mode(
    unit: ControlUnit, down: list[torch.Tensor], mid: torch.Tensor, cfg_batch: bool
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The residuals after sd-webui-controlnet's control mode (Balanced: unchanged)."""
    if unit.control_mode == BALANCED:
        return down, mid
    count = len(down) + 1  # the mid block is the deepest, weight 1
    down = [d * SOFT_DECAY ** float(count - 1 - i) for i, d in enumerate(down)]
    if unit.control_mode == CONTROL_MODE and cfg_batch:
        # the batch is [uncond..., cond...]: zero the uncond rows
        half = mid.shape[0] // 2
        mark = torch.ones(mid.shape[0], 1, 1, 1, dtype=mid.dtype, device=mid.device)
        mark[:half] = 0
        down = [d * mark for d in down]
        mid = mid * mark
    return down, mid


def _cast(added: dict[str, Any] | None, dtype: Any) -> dict[str, Any] | None:
    if not added:
        return None
    return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in added.items()}
