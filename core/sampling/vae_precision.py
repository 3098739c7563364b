"""VAE decode and encode in half precision without black or NaN images.

The real SDXL VAE overflows float16 (activations beyond 65504 become inf, then NaN after a
GroupNorm). Two safeguards, as diffusers and A1111 have them:

- Upcast where the VAE config says ``force_upcast`` (diffusers' SDXL pipelines): a float16
  VAE decodes in float32 and goes back to float16 afterwards; encoding (img2img) upcasts
  for any half precision, as diffusers' SDXL img2img does. Only families whose diffusers
  pipeline does this opt in (``FamilyAdapter.upcast_vae``): SD 1.x VAEs work in float16.
- NaN check (A1111's "Automatically revert VAE to 32-bit floats", on by default): a decode
  in half precision that gives NaN or inf is done again in float32, the VAE stays in
  float32 from then on (as in A1111), and the result's warnings say so. A result still
  NaN in float32 fails the job (``core.sampling.finite``), never a black "done" image.

On a CPU Easel loads models in float32, where neither path triggers; they matter on GPUs
without bfloat16 and on Apple MPS (float16).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

log = logging.getLogger("easel.vae")

NAN_RETRY_WARNING = (
    "the VAE produced NaN/inf in {dtype}: decoded again in float32, and the VAE stays in float32 "
    "for this model (A1111's automatic VAE precision); a VAE made for float16 avoids the cost"
)


@contextmanager
def float32_vae(vae: torch.nn.Module) -> Iterator[None]:
    """``vae`` in float32 for the block, back in its own dtype after it."""
    dtype = vae.dtype
    if dtype == torch.float32:
        yield
        return
    vae.to(torch.float32)
    try:
        yield
    finally:
        vae.to(dtype)


def _force_upcast(adapter: Any, vae: torch.nn.Module) -> bool:
    return bool(getattr(adapter, "upcast_vae", False)) and bool(getattr(vae.config, "force_upcast", False))


def decode(
    adapter: Any, components: dict[str, Any], latents: torch.Tensor, warnings: list[str]
) -> torch.Tensor:
    """``adapter.decode`` with the upcast and the NaN check (images in [-1, 1])."""
    vae = components["vae"]
    if vae.dtype == torch.float16 and _force_upcast(adapter, vae):
        with float32_vae(vae):
            images = adapter.decode(components, latents)
    else:
        images = adapter.decode(components, latents)
    if bool(torch.isfinite(images).all()):  # one host sync per decode, after sampling
        return images
    if vae.dtype != torch.float32:
        message = NAN_RETRY_WARNING.format(dtype=str(vae.dtype).replace("torch.", ""))
        log.warning(message)
        warnings.append(message)
        vae.to(torch.float32)
        images = adapter.decode(components, latents)
        if bool(torch.isfinite(images).all()):
            return images
    # still non-finite in float32: the caller's NaN guard (core/sampling/finite.py) fails
    # the job naming the likely cause; the retry above is all precision can do
    return images


def encode(
    adapter: Any, components: dict[str, Any], pixels: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``adapter.encode_image``, upcast as diffusers' SDXL img2img does."""
    vae = components["vae"]
    if vae.dtype != torch.float32 and _force_upcast(adapter, vae):
        with float32_vae(vae):
            return adapter.encode_image(components, pixels.float(), generator)
    return adapter.encode_image(components, pixels, generator)
