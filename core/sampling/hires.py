"""Hires fix (A1111's txt2img "Hires. fix"): sample at the requested size, upscale, then
run an img2img pass at the larger size so the model adds detail at its resolution.

Upscaling either stays in latent space ("Latent", "Latent (nearest)", ... interpolate the
latents, as A1111 does) or decodes, runs a registered upscaler (the core's Lanczos, any
neural upscaler an extension registered) and encodes again. The second pass runs exactly
``hr_second_pass_steps`` steps (``steps`` when 0) at ``denoising_strength``, like A1111
does for hires (its "fixed steps" img2img schedule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from core.errors import RequestError
from plugin_api.types import GenerationRequest

# name -> (torch interpolation mode, antialias), A1111's latent upscale modes
LATENT_MODES: dict[str, tuple[str, bool]] = {
    "Latent": ("bilinear", False),
    "Latent (antialiased)": ("bilinear", True),
    "Latent (bicubic)": ("bicubic", False),
    "Latent (bicubic antialiased)": ("bicubic", True),
    "Latent (nearest)": ("nearest", False),
    "Latent (nearest-exact)": ("nearest-exact", False),
}
DEFAULT_UPSCALER = "Latent"
MAX_HR_SCALE = 4.0


@dataclass
class HiresPlan:
    width: int  # the final size
    height: int
    steps: int  # steps the second pass runs
    upscaler: str  # as shown in the infotext
    latent_mode: tuple[str, bool] | None  # set for latent upscaling
    spec: Any | None  # the UpscalerSpec otherwise
    scale_text: str | None  # "Hires upscale" (None when a size was given)
    resize_text: str | None  # "Hires resize"

    def infotext_params(self, denoising_strength: float) -> dict[str, Any]:
        return {
            "Denoising strength": denoising_strength,
            "Hires resize": self.resize_text,
            "Hires upscale": self.scale_text,
            "Hires steps": self.steps,
            "Hires upscaler": self.upscaler,
        }


def hires_upscaler_names(upscalers: Any = None) -> list[str]:
    """What ``hr_upscaler`` may name: the latent modes, then every registered upscaler."""
    return [*LATENT_MODES, *(upscalers.names() if upscalers is not None else [])]


def _number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(field, f"must be a number, got {value!r}")
    if not low <= value <= high:
        raise RequestError(field, f"must be between {low:g} and {high:g}, got {value:g}")
    return float(value)


def plan_hires(req: GenerationRequest, upscalers: Any, multiple: int, max_side: int) -> HiresPlan | None:
    """Check the hires fields of a (size-filled) request; None when hires fix is off."""
    if not req.enable_hr:
        return None
    if req.init_image is not None:
        raise RequestError("enable_hr", "hires fix is for txt2img; img2img already sets its own size")
    resize_x = int(_number(req.hr_resize_x or 0, "hr_resize_x", 0, max_side))
    resize_y = int(_number(req.hr_resize_y or 0, "hr_resize_y", 0, max_side))
    scale_text = resize_text = None
    if resize_x or resize_y:
        # one side given: keep the aspect ratio (A1111)
        width = resize_x or round(req.width * resize_y / req.height)
        height = resize_y or round(req.height * resize_x / req.width)
        resize_text = f"{width}x{height}"
    else:
        scale = _number(req.hr_scale, "hr_scale", 1.0, MAX_HR_SCALE)
        width, height = int(req.width * scale), int(req.height * scale)
        scale_text = f"{scale:g}"
    width, height = width - width % multiple, height - height % multiple
    if not (multiple <= width <= max_side and multiple <= height <= max_side):
        field = "hr_resize_x" if resize_text else "hr_scale"
        raise RequestError(field, f"hires size {width}x{height} is outside {multiple}..{max_side}")
    steps = req.hr_second_pass_steps or req.steps
    steps = int(_number(steps, "hr_second_pass_steps", 1, 150))

    name = (req.hr_upscaler or DEFAULT_UPSCALER).strip()
    latent = {k.casefold(): k for k in LATENT_MODES}.get(name.casefold())
    spec = None
    if latent is None:
        spec = upscalers.get(name) if upscalers is not None else None
        if spec is None:
            known = ", ".join(hires_upscaler_names(upscalers))
            raise RequestError("hr_upscaler", f"no upscaler named {name!r}; choose one of: {known}")
        name = spec.name
    return HiresPlan(
        width=width,
        height=height,
        steps=steps,
        upscaler=latent or name,
        latent_mode=LATENT_MODES[latent] if latent else None,
        spec=spec,
        scale_text=scale_text,
        resize_text=resize_text,
    )


def schedule_length(steps: int, strength: float) -> int:
    """The schedule length whose img2img tail at ``strength`` is exactly ``steps`` steps
    (the loop runs ``int(length * strength)`` of them)."""
    if strength <= 0:
        return steps
    length = max(steps, math.ceil(steps / min(strength, 1.0)))
    while int(length * strength) < steps:
        length += 1
    while length > steps and int((length - 1) * strength) >= steps:
        length -= 1
    return length


def upscale_latents(latents: torch.Tensor, size: tuple[int, int], mode: tuple[str, bool]) -> torch.Tensor:
    """Interpolate (B, C, h, w) latents to ``size`` = (h, w)."""
    interpolation, antialias = mode
    kwargs: dict[str, Any] = {"size": size, "mode": interpolation}
    if interpolation in ("bilinear", "bicubic"):
        kwargs["antialias"] = antialias
        kwargs["align_corners"] = False
    return torch.nn.functional.interpolate(latents.float(), **kwargs)


def upscale_images(images: list[Any], plan: HiresPlan) -> list[Any]:
    """Run the plan's registered upscaler and resize to the exact hires size."""
    from PIL import Image

    out = []
    for image in images:
        scale = max(plan.width / image.width, plan.height / image.height)
        upscaled = plan.spec.upscale(image, scale)
        if not isinstance(upscaled, Image.Image):
            raise RequestError(
                "hr_upscaler", f"upscaler {plan.upscaler!r} returned {type(upscaled).__name__}"
            )
        if upscaled.size != (plan.width, plan.height):
            upscaled = upscaled.resize((plan.width, plan.height), Image.Resampling.LANCZOS)
        out.append(upscaled.convert("RGB"))
    return out
