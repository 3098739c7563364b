"""Memory: refuse impossible requests up front, fall back on out-of-memory.

On a GPU that runs out of memory while decoding, the decode is retried with a tiled VAE,
then with every other component moved to the CPU (model offload); each fallback is
reported in ``result.warnings``. A request whose estimated need is far beyond the device
is refused before anything runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from core.errors import OutOfMemory, RequestError

log = logging.getLogger("easel.memory")

# Rough activation bytes per latent pixel per image, fp32, for the largest of the
# UNet/transformer pass and the VAE decode at full resolution. Deliberately generous:
# it only refuses requests that are hopeless.
ACTIVATION_BYTES_PER_LATENT_PIXEL = 64 * 1024
HOPELESS_FACTOR = 8.0  # refuse only when the estimate is this many times the device


def device_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 * 1024**3


def estimate_request_bytes(width: int, height: int, batch_size: int, element_size: int, cfg: bool) -> int:
    latent_pixels = (width // 8) * (height // 8)
    images = batch_size * (2 if cfg else 1)
    return int(latent_pixels * images * ACTIVATION_BYTES_PER_LATENT_PIXEL * element_size / 4)


def check_fits(
    width: int,
    height: int,
    batch_size: int,
    dtype: torch.dtype,
    device: torch.device,
    cfg: bool,
    available: int | None = None,
) -> None:
    """Raise RequestError when the request cannot possibly fit, even with fallbacks."""
    need = estimate_request_bytes(
        width, height, batch_size, torch.tensor([], dtype=dtype).element_size(), cfg
    )
    have = available if available is not None else device_memory(device)
    if need > have * HOPELESS_FACTOR:
        raise RequestError(
            "batch_size",
            f"{width}x{height} with batch size {batch_size} needs about {need / 1024**3:.0f} GiB "
            f"on {device.type}, which has {have / 1024**3:.0f} GiB; lower the size or batch size",
        )


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def decode_with_fallbacks(
    decode: Callable[[], torch.Tensor],
    components: dict[str, Any],
    warnings: list[str],
    offload_device: torch.device = torch.device("cpu"),
) -> torch.Tensor:
    """Run ``decode``; on out-of-memory retry with VAE tiling, then with model offload."""
    try:
        return decode()
    except Exception as exc:
        if not is_oom(exc):
            raise
    _empty_cache()
    vae = components.get("vae")
    if vae is not None and hasattr(vae, "enable_tiling"):
        vae.enable_tiling()
        warnings.append("out of memory while decoding: retried with tiled VAE decode")
        log.warning(warnings[-1])
        try:
            return decode()
        except Exception as exc:
            if not is_oom(exc):
                raise
    moved = []
    for name, module in components.items():
        if name != "vae" and isinstance(module, torch.nn.Module):
            module.to(offload_device)
            moved.append(name)
    _empty_cache()
    warnings.append(
        f"out of memory while decoding: moved {', '.join(moved)} to {offload_device} (model offload)"
    )
    log.warning(warnings[-1])
    try:
        return decode()
    except Exception as exc:
        if is_oom(exc):
            raise OutOfMemory(
                "out of memory while decoding, even with tiled decode and model offload"
            ) from exc
        raise


def sample_with_offload(
    sample: Callable[[], torch.Tensor],
    components: dict[str, Any],
    denoiser_name: str,
    warnings: list[str],
    offload_device: torch.device = torch.device("cpu"),
) -> torch.Tensor:
    """Run the sampling loop; on out-of-memory move everything but the denoiser off the
    device (text encoders and VAE are not needed while sampling) and run it once more.
    The VAE comes back for the decode, whose own fallbacks then apply."""
    try:
        return sample()
    except Exception as exc:
        if not is_oom(exc):
            raise
    vae = components.get("vae")
    home = next(vae.parameters()).device if isinstance(vae, torch.nn.Module) else None
    moved = []
    for name, module in components.items():
        if name != denoiser_name and isinstance(module, torch.nn.Module):
            module.to(offload_device)
            moved.append(name)
    _empty_cache()
    warnings.append(
        f"out of memory while sampling: moved {', '.join(moved)} to {offload_device} (model offload)"
    )
    log.warning(warnings[-1])
    try:
        latents = sample()
    except Exception as exc:
        if is_oom(exc):
            raise OutOfMemory("out of memory while sampling, even with the other models offloaded") from exc
        raise
    if home is not None:
        vae.to(home)
    return latents


def _empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
