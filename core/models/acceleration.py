"""The accelerated path: speed-ups applied once to a model when it is loaded.

Each one is chosen from ``Settings`` (``EASEL_COMPILE``, ``EASEL_CHANNELS_LAST``,
``EASEL_FUSE_QKV``, ``EASEL_CUDA_GRAPHS``); ``auto`` means "on where it pays off":

- attention: diffusers' default processors already call
  ``torch.nn.functional.scaled_dot_product_attention`` (flash / memory-efficient kernels
  on CUDA), so nothing is swapped in; ``attention_backend`` reports what is in use.
- channels_last (NHWC) for the UNet and the VAE: auto = on CUDA, where cuDNN's
  convolutions prefer it. On CPU it is slower for these small convolutions.
- fused QKV projections (one matmul instead of three): opt-in, because LoRA adapters
  target ``to_q``/``to_k``/``to_v`` and the fused path would ignore them.
- regional ``torch.compile``: the blocks a denoiser repeats (its transformer blocks and
  ResNet blocks) are compiled once per shape and reused by every instance, which is most
  of full compilation's speed for a fraction of its warm-up (diffusers'
  ``compile_repeated_blocks`` idea, extended to the UNet's blocks). auto = on CUDA. The
  Inductor cache lives in ``<data>/.easel/inductor`` so warm-up is paid once per machine,
  not once per start. ``full`` compiles the whole denoiser (longer warm-up).
- CUDA graphs (compile mode ``reduce-overhead``): opt-in, for static shapes.

Compilation errors never fail a generation: Dynamo falls back to eager for the frame
that could not be compiled (``suppress_errors``), and a missing feature is reported
in the list this module returns, not raised.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import SettingError
from core.models.fp8 import convert_to_fp8, fp8_support

log = logging.getLogger("easel.acceleration")

COMPILE_MODES = ("auto", "off", "regional", "full")
# Repeated blocks of the UNet families (UNet2DConditionModel has no ``_repeated_blocks``);
# transformer denoisers (Z-Image, Flux) name theirs in ``_repeated_blocks``.
UNET_REPEATED_BLOCKS = ("BasicTransformerBlock", "ResnetBlock2D")
# one compiled graph per distinct block shape: SDXL's UNet has about 20
DYNAMO_CACHE_SIZE = 64


@dataclass(frozen=True)
class AccelerationOptions:
    compile: str = "auto"  # auto | off | regional | full
    channels_last: str = "auto"  # auto | on | off
    fuse_qkv: bool = False
    cuda_graphs: bool = False
    fp8: bool = False  # lossy: core/models/fp8.py
    cache_dir: Path | None = None  # Inductor's on-disk cache

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise SettingError(f"EASEL_COMPILE: expected one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if self.channels_last not in ("auto", "on", "off"):
            raise SettingError(f"EASEL_CHANNELS_LAST: expected auto, on or off, got {self.channels_last!r}")

    def compile_mode(self, device: torch.device) -> str:
        if self.compile == "auto":
            return "regional" if device.type == "cuda" else "off"
        return self.compile

    def use_channels_last(self, device: torch.device) -> bool:
        if self.channels_last == "auto":
            return device.type == "cuda"
        return self.channels_last == "on"


def attention_backend() -> str:
    """What diffusers' default attention runs on (for reports)."""
    if not torch.cuda.is_available():
        return "sdpa (math/cpu)"
    flash = torch.backends.cuda.flash_sdp_enabled()
    return "sdpa (flash)" if flash else "sdpa (memory-efficient)"


def setup_compile_cache(cache_dir: Path | None) -> None:
    """Keep Inductor's compiled kernels across restarts (the FX graph cache is on by
    default; its directory defaults to /tmp, which many machines clear)."""
    if cache_dir is not None and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        cache_dir.mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir)
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, DYNAMO_CACHE_SIZE)
    torch._dynamo.config.accumulated_cache_size_limit = max(
        torch._dynamo.config.accumulated_cache_size_limit, DYNAMO_CACHE_SIZE * 4
    )
    # a frame that cannot be compiled runs eagerly instead of failing the generation
    torch._dynamo.config.suppress_errors = True


def compile_regions(denoiser: torch.nn.Module, mode: str | None) -> int:
    """Compile every repeated block of ``denoiser`` in place; returns how many."""
    names = tuple(getattr(denoiser, "_repeated_blocks", None) or UNET_REPEATED_BLOCKS)
    count = 0
    for module in denoiser.modules():
        if type(module).__name__ in names:
            module.compile(fullgraph=False, dynamic=False, mode=mode)
            count += 1
    return count


def accelerate(components: dict[str, Any], denoiser_name: str, device: torch.device, options: AccelerationOptions) -> list[str]:
    """Apply the chosen speed-ups to freshly loaded components; returns what was applied
    (shown in ``easel models`` and the bench JSON)."""
    applied = [attention_backend()]
    denoiser = components.get(denoiser_name)
    vae = components.get("vae")
    if options.use_channels_last(device):
        for name, module in ((denoiser_name, denoiser), ("vae", vae)):
            # transformers have no convolutions to speed up
            if module is not None and type(module).__name__ in ("UNet2DConditionModel", "AutoencoderKL"):
                module.to(memory_format=torch.channels_last)
                applied.append(f"channels_last:{name}")
    if options.fuse_qkv and denoiser is not None:
        try:
            denoiser.fuse_qkv_projections()
            applied.append("fuse_qkv")
        except (AttributeError, ValueError) as exc:  # no such method / added KV projections
            applied.append(f"fuse_qkv:unsupported ({exc})")
    if options.fp8 and denoiser is not None:
        # before compiling, so that the compiled graphs hold the FP8 matmuls
        reason = fp8_support(device)
        if reason is None:
            applied.append(f"fp8({convert_to_fp8(denoiser)} linear layers)")
        else:
            applied.append(f"fp8:unsupported ({reason})")
            log.warning("EASEL_FP8 left off: %s", reason)
    mode = options.compile_mode(device)
    if mode != "off" and denoiser is not None:
        setup_compile_cache(options.cache_dir)
        compile_mode = "reduce-overhead" if options.cuda_graphs and device.type == "cuda" else None
        if mode == "full":
            denoiser.compile(fullgraph=False, dynamic=False, mode=compile_mode)
            applied.append("compile:full")
        else:
            count = compile_regions(denoiser, compile_mode)
            applied.append(f"compile:regional({count} blocks)")
        if compile_mode:
            applied.append("cuda_graphs")
    log.info("acceleration on %s: %s", device, ", ".join(applied))
    return applied
