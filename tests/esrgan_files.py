"""Tiny upscaler files for the ESRGAN tests, written the way real ones are published."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file


def write_compact(path: Path, scale: int = 2, features: int = 4, seed: int = 0) -> Path:
    """A Real-ESRGAN "Compact" (SRVGGNetCompact) network with random weights: spandrel
    detects it from the ``body.N`` keys. Tiny, so big images run fast."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(seed)
    model = Compact(num_in_ch=3, num_out_ch=3, num_feat=features, num_conv=1, upscale=scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def write_unknown_architecture(path: Path) -> Path:
    """A valid safetensors file whose keys match no architecture spandrel knows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"encoder.alpha.weight": torch.randn(4, 4), "decoder.omega.bias": torch.randn(4)}, str(path))
    return path


def write_corrupt(path: Path) -> Path:
    """A file named .safetensors whose header promises more than the file holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    good = path.with_suffix(".tmp")
    save_file({"model.0.weight": torch.randn(8, 3, 3, 3)}, str(good))
    data = good.read_bytes()
    good.unlink()
    path.write_bytes(data[: len(data) // 2])  # truncated mid-tensor
    return path
