"""Refuse impossible requests up front.

A request whose estimated need is far beyond the device is refused before anything runs.
What fits is arranged by a memory mode, and an out-of-memory error retries in the next
one (``core.models.memory_modes``, ``core.models.offload``).
"""

from __future__ import annotations

import torch

from core.errors import RequestError
from core.models.memory_modes import sample_activation_bytes

HOPELESS_FACTOR = 8.0  # refuse only when the estimate is this many times the device


def device_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 16 * 1024**3


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
    # the memory modes' estimate of one denoiser call (deliberately generous: this only
    # refuses requests that are hopeless)
    need = sample_activation_bytes(
        width, height, batch_size, cfg, torch.tensor([], dtype=dtype).element_size()
    )
    have = available if available is not None else device_memory(device)
    if need > have * HOPELESS_FACTOR:
        raise RequestError(
            "batch_size",
            f"{width}x{height} with batch size {batch_size} needs about {need / 1024**3:.0f} GiB "
            f"on {device.type}, which has {have / 1024**3:.0f} GiB; lower the size or batch size",
        )
