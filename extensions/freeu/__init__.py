"""FreeU for UNet models (SD1.x/SD2.x, SDXL), written on the ``patch_denoiser`` hook.

FreeU (Si et al. 2023, "FreeU: Free Lunch in Diffusion U-Net") changes what the UNet's
decoder mixes at its two deepest stages: the backbone features' first half of channels
are amplified (``b1``, ``b2``) and the low frequencies of the skip features are damped
(``s1``, ``s2``) before the two are concatenated. No weights change, nothing is trained.

The formulation is diffusers' (``UNet2DConditionModel.enable_freeu``): before every
resnet of up-blocks 0 and 1, ``h[:, :C/2] *= b`` and the skip's centred 2x2 block of
Fourier coefficients is multiplied by ``s``. Here it is applied from outside the model:
a forward pre-hook on each of those up-blocks notes the skip tensors it receives, and a
pre-hook on each of its resnets splits the resnet's input (``cat([h, skip])``) with that
knowledge, re-weights both parts and joins them again. The hooks live only inside the
context manager ``patch_denoiser`` returns, so the UNet is back to normal after the
pass (and for other requests).

Request (``extension_args``; A1111's ``alwayson_scripts`` with ``args``)::

    "freeu": {"b1": 1.5, "b2": 1.6, "s1": 0.9, "s2": 0.2}   or   {"args": [b1, b2, s1, s2]}

The infotext records ``FreeU: b1=..., b2=..., s1=..., s2=...``.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager
from typing import Any

import torch

from plugin_api.errors import InvalidRequest
from plugin_api.hookspecs import hookimpl
from plugin_api.types import GenerationContext, GenerationRequest

NAME = "freeu"
FIELD = f"extension_args.{NAME}"
KEYS = ("b1", "b2", "s1", "s2")
UNET_FAMILIES = ("sd15", "sdxl")


def factors_of(request: GenerationRequest) -> dict[str, float] | None:
    """The request's FreeU factors, None when it asks for none; InvalidRequest names the
    field that is wrong."""
    args: Any = request.extension_args.get(NAME)
    if args is None:
        return None
    if isinstance(args, dict) and "args" in args:
        values = args["args"]
        if not isinstance(values, list) or len(values) != len(KEYS):
            raise InvalidRequest(f"{FIELD}.args", "expected [b1, b2, s1, s2]")
        pairs = [(f"{FIELD}.args.{i}", key, values[i]) for i, key in enumerate(KEYS)]
    elif isinstance(args, dict):
        if set(args) != set(KEYS):
            raise InvalidRequest(FIELD, f"expected the keys {list(KEYS)}, got {sorted(args)}")
        pairs = [(f"{FIELD}.{key}", key, args[key]) for key in KEYS]
    else:
        raise InvalidRequest(FIELD, 'expected {"b1":..., "b2":..., "s1":..., "s2":...}')
    factors = {}
    for field, key, value in pairs:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidRequest(field, f"expected a number, got {value!r}")
        if not 0.0 <= value <= 4.0:
            raise InvalidRequest(field, f"must be from 0 to 4, got {value}")
        factors[key] = float(value)
    return factors


def fourier_filter(x: torch.Tensor, scale: float, threshold: int = 1) -> torch.Tensor:
    """``x`` with its lowest spatial frequencies (the centred ``2*threshold`` square of
    the shifted spectrum) multiplied by ``scale``. In float32: half-precision FFTs are
    unsupported (bf16) or unstable (fp16)."""
    freq = torch.fft.fftshift(torch.fft.fftn(x.float(), dim=(-2, -1)), dim=(-2, -1))
    height, width = freq.shape[-2:]
    row, col = height // 2, width // 2
    mask = torch.ones(freq.shape[-2:], device=x.device)
    mask[row - threshold : row + threshold, col - threshold : col + threshold] = scale
    filtered = torch.fft.ifftn(torch.fft.ifftshift(freq * mask, dim=(-2, -1)), dim=(-2, -1))
    return filtered.real.to(x.dtype)


class FreeUPatch(AbstractContextManager):
    """Forward pre-hooks on the UNet's up-blocks 0 and 1 and their resnets, while entered."""

    def __init__(self, unet: Any, factors: dict[str, float]) -> None:
        self.unet = unet
        self.stages = [(factors["b1"], factors["s1"]), (factors["b2"], factors["s2"])]
        self.handles: list[Any] = []

    def __enter__(self) -> FreeUPatch:
        for block, (backbone, skip) in zip(self.unet.up_blocks, self.stages, strict=False):
            received: dict[str, tuple] = {}
            self.handles.append(block.register_forward_pre_hook(self._note_skips(received), with_kwargs=True))
            for index, resnet in enumerate(block.resnets):
                hook = self._reweigh(received, index, backbone, skip)
                self.handles.append(resnet.register_forward_pre_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    @staticmethod
    def _note_skips(received: dict[str, tuple]) -> Any:
        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            skips = kwargs.get("res_hidden_states_tuple", args[1] if len(args) > 1 else None)
            received["skips"] = tuple(skips)

        return hook

    @staticmethod
    def _reweigh(received: dict[str, tuple], index: int, backbone: float, skip: float) -> Any:
        def hook(module: Any, args: tuple) -> tuple:
            joined, *rest = args
            # resnet ``index`` of an up-block takes the skips from the last one backwards
            skip_channels = received["skips"][-(index + 1)].shape[1]
            hidden, skips = joined[:, :-skip_channels], joined[:, -skip_channels:]
            half = hidden.shape[1] // 2
            hidden = torch.cat([hidden[:, :half] * backbone, hidden[:, half:]], dim=1)
            return (torch.cat([hidden, fourier_filter(skips, skip)], dim=1), *rest)

        return hook


@hookimpl
def validate_request(request: GenerationRequest, family: str) -> None:
    if factors_of(request) is not None and family not in UNET_FAMILIES:
        raise InvalidRequest(FIELD, f"FreeU needs a UNet model (SD1.x, SD2.x, SDXL), not {family!r}")


@hookimpl
def before_sample(ctx: GenerationContext) -> None:
    factors = factors_of(ctx.request)
    if factors is not None:
        ctx.extra_params["FreeU"] = ", ".join(f"{key}={factors[key]:g}" for key in KEYS)


@hookimpl
def patch_denoiser(ctx: GenerationContext, denoiser: Any) -> FreeUPatch | None:
    factors = factors_of(ctx.request)
    if factors is None or not hasattr(denoiser, "up_blocks"):
        return None
    return FreeUPatch(denoiser, factors)
