"""Memory modes: how much of a model lives on the device while it generates.

From most to least device memory (and fastest to slowest):

- ``full``: every component on the device.
- ``tiled-vae``: the same, but the VAE decodes and encodes in tiles, so a large image does
  not need its whole decoder activation at once.
- ``model-offload``: components wait in CPU memory; only the one working now (text
  encoders, then the denoiser, then the VAE) is on the device. Costs one copy of each
  component per generation.
- ``sequential-offload``: weights stream to the device layer by layer during every call.
  Needs little more than the largest layer, and is many times slower.

``choose_mode`` picks the first mode whose estimated peak fits in the free device memory
(``auto``, the default); ``EASEL_MEMORY_MODE`` / ``--memory-mode`` fix one. When a mode
runs out of memory anyway, the engine retries the step in ``next_mode`` and says so in the
result's warnings (``core.models.offload.Placement.run``).

The estimates are deliberately simple: weights are exact (bytes of every parameter and
buffer); activations scale with the number of (latent) pixels, calibrated generously
against SD1.5/SDXL peaks, because a too-optimistic plan costs an out-of-memory retry while
a too-pessimistic one only costs speed on a card that was nearly full anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from core.config import MEMORY_MODE_CHOICES as MODE_CHOICES
from core.errors import SettingError

MODES: tuple[str, ...] = MODE_CHOICES[1:]  # from most device memory to least

# Activation bytes per latent pixel per image in the batch, at 2 bytes per element, for
# one denoiser call (the SDXL UNet's peak with SDPA is ~0.5 GiB per 1024x1024 image).
SAMPLE_BYTES_PER_LATENT_PIXEL = 32 * 1024
# VAE decode: bytes per output pixel per image at 2 bytes per element (the SD VAE decoder's
# full-resolution blocks keep a few 128-256-channel maps alive: ~1.5 GiB at 1024x1024).
DECODE_BYTES_PER_PIXEL = 1536
TILE_PIXELS = 512 * 512  # diffusers' default VAE tile (tile_sample_min_size 512)
# Left free for the CUDA context's own allocations, the allocator's fragmentation and
# everything that is not a weight or an activation (latents, conditioning, previews).
HEADROOM_BYTES = 768 * 1024**2
HEADROOM_FRACTION = 0.05


def validate_mode(value: str) -> str:
    mode = value.strip().lower().replace("_", "-")
    if mode not in MODE_CHOICES:
        raise SettingError(f"EASEL_MEMORY_MODE / --memory-mode must be one of {', '.join(MODE_CHOICES)}, not {value!r}")
    return mode


def next_mode(mode: str) -> str | None:
    """The mode that needs less memory than ``mode``; None after the last one."""
    index = MODES.index(mode)
    return MODES[index + 1] if index + 1 < len(MODES) else None


def module_bytes(module: torch.nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(frozen=True)
class MemoryNeeds:
    """What one generation needs on the device, in bytes."""

    weights: dict[str, int]  # per component (modules only)
    denoiser: str  # the component that runs every step ("unet", "transformer")
    sample: int  # activations of one denoiser call (the CFG batch included)
    decode: int  # activations of an untiled VAE decode of the whole batch
    decode_tiled: int  # ... of a tiled one

    @property
    def text_weights(self) -> int:
        return sum(b for name, b in self.weights.items() if name not in (self.denoiser, "vae"))

    def peak(self, mode: str) -> int:
        """Estimated device bytes at the worst moment of a generation in ``mode``."""
        total = sum(self.weights.values())
        denoiser, vae = self.weights.get(self.denoiser, 0), self.weights.get("vae", 0)
        if mode == "full":
            return total + max(self.sample, self.decode)
        if mode == "tiled-vae":
            return total + max(self.sample, self.decode_tiled)
        if mode == "model-offload":
            return max(self.text_weights, denoiser + self.sample, vae + self.decode_tiled)
        # sequential: one layer at a time; the activations stay
        return max(self.sample, self.decode_tiled) + max(self.weights.values(), default=0) // 16


def sample_activation_bytes(
    width: int, height: int, batch_size: int, cfg: bool, element_size: int, latent_factor: int = 8
) -> int:
    """Activations of one denoiser call over the whole (CFG) batch."""
    latent_pixels = (width // latent_factor) * (height // latent_factor)
    cfg_batch = batch_size * (2 if cfg else 1)
    return int(latent_pixels * cfg_batch * SAMPLE_BYTES_PER_LATENT_PIXEL * element_size / 2)


def estimate_needs(
    weights: dict[str, int],
    denoiser: str,
    *,
    width: int,
    height: int,
    batch_size: int,
    cfg: bool,
    element_size: int,
    latent_factor: int = 8,
) -> MemoryNeeds:
    scale = element_size / 2
    pixels = width * height
    return MemoryNeeds(
        weights=dict(weights),
        denoiser=denoiser,
        sample=sample_activation_bytes(width, height, batch_size, cfg, element_size, latent_factor),
        decode=int(pixels * batch_size * DECODE_BYTES_PER_PIXEL * scale),
        decode_tiled=int(min(pixels, TILE_PIXELS) * batch_size * DECODE_BYTES_PER_PIXEL * scale),
    )


def choose_mode(needs: MemoryNeeds, available: int) -> tuple[str, str]:
    """The first mode whose estimated peak fits in ``available`` device bytes (free memory
    plus what this model already holds there), with the reason in words."""
    budget = int(available * (1 - HEADROOM_FRACTION)) - HEADROOM_BYTES
    for mode in MODES[:-1]:
        peak = needs.peak(mode)
        if peak <= budget:
            return mode, f"needs ~{_gib(peak)} of {_gib(available)} available"
    peak = needs.peak(MODES[-1])
    return MODES[-1], f"model-offload needs ~{_gib(needs.peak('model-offload'))}, {_gib(available)} available"


def _gib(value: int) -> str:
    return f"{value / 1024**3:.1f} GiB"


def plan_memory_mode(
    setting: str, model: Any, device: torch.device, *, width: int, height: int, batch_size: int, cfg: bool
) -> tuple[str, str]:
    """The mode for one generation of ``model`` (a LoadedModel) and why: the setting when it
    names one; else ``full`` off CUDA, where the weights are in host memory anyway; else the
    first mode that fits in the free GPU memory plus what the model already holds there."""
    if setting != "auto":
        return setting, "set by EASEL_MEMORY_MODE / --memory-mode"
    if device.type != "cuda":
        return "full", f"the weights are in {device.type} memory already"
    modules = model.modules()
    needs = estimate_needs(
        {name: module_bytes(module) for name, module in modules.items()},
        model.adapter.denoiser_name,
        width=width,
        height=height,
        batch_size=batch_size,
        cfg=cfg,
        element_size=torch.tensor([], dtype=model.dtype).element_size(),
    )
    free, _total = torch.cuda.mem_get_info(device)
    resident = sum(
        module_bytes(module)
        for module in modules.values()
        if next(module.parameters(), torch.empty(0)).device.type == "cuda"
    )
    return choose_mode(needs, free + resident)
