"""Upscaling a PIL image with a neural upscaler file: load once (cached), run tiled on the
host's device (fp16 on a GPU when the architecture supports it), repeat the network
until the requested scale is reached, then resize to the exact size with Lanczos, as
A1111 does. The alpha channel is kept: it is resized with Lanczos beside the colours."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from extensions.esrgan.loading import LoadedUpscaler, UpscalerFile, UpscalerFileError, load_upscaler
from extensions.esrgan.tiling import (
    DEFAULT_OVERLAP,
    available_memory,
    choose_tile_size,
    run_tiled,
    split_alpha,
)

MAX_SCALE = 16.0
MAX_PASSES = 3  # A1111 runs the network at most three times for one upscale


class UpscalerInputError(ValueError):
    """Bad input to an upscaler; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_input(image: Any, scale: Any) -> float:
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise UpscalerInputError("image", f"expected an image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise UpscalerInputError("image", "image has no pixels")
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale):
        raise UpscalerInputError("scale", f"must be a number, got {scale!r}")
    if not 0 < scale <= MAX_SCALE:
        raise UpscalerInputError("scale", f"must be above 0 and at most {MAX_SCALE:g}, got {scale:g}")
    return float(scale)


def resolve_device(setting: str) -> str:
    import torch

    if setting in ("", "auto", None):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


class ModelCache:
    """The last few loaded networks (by path and modification time), thread-safe."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, float], LoadedUpscaler] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, file: UpscalerFile, allow_pickle: bool) -> LoadedUpscaler:
        try:
            key = (str(file.path), file.path.stat().st_mtime)
        except OSError:
            raise UpscalerFileError(f"{file.path}: no such file (deleted since start-up?)") from None
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loaded = load_upscaler(file.path, allow_pickle, name=file.name)
            self._items[key] = loaded
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return loaded

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def network_pass(
    loaded: LoadedUpscaler,
    rgb: np.ndarray,
    device: str,
    tile: int | None,
    overlap: int,
    progress: Callable[[int, int], None] | None,
    is_cancelled: Callable[[], bool] | None,
) -> np.ndarray:
    """One run of the network over an (H, W, 3) float32 image -> uint8 (H*s, W*s, 3)."""
    import torch

    descriptor = loaded.model
    half = device.startswith("cuda") and descriptor.supports_half
    dtype = torch.float16 if half else torch.float32
    descriptor.to(device).to(dtype)
    if not tile:
        tile = choose_tile_size(available_memory(device), loaded.scale, half)

    def run(piece: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(piece)).permute(2, 0, 1).unsqueeze(0)
        with torch.inference_mode():
            out = descriptor(tensor.to(device, dtype)).float().clamp_(0, 1)
        return out[0].permute(1, 2, 0).contiguous().cpu().numpy()

    return run_tiled(run, rgb, loaded.scale, tile, overlap, progress, is_cancelled)


def upscale_with(
    loaded: LoadedUpscaler,
    image: Any,
    scale: float,
    device: str = "cpu",
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
    progress: Callable[[int, int], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> Any:
    """``image`` (PIL, any mode) ``scale`` times larger; the result keeps an alpha channel
    if the input had one."""
    from PIL import Image

    scale = check_input(image, scale)
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    rgb_image, alpha = split_alpha(image)
    current = rgb_image
    passes = 0
    while passes < MAX_PASSES and (current.width < target[0] or current.height < target[1]):
        array = np.asarray(current, dtype=np.float32) / 255.0
        current = Image.fromarray(network_pass(loaded, array, device, tile, overlap, progress, is_cancelled))
        passes += 1
    if current.size != target:
        current = current.resize(target, Image.Resampling.LANCZOS)
    if alpha is not None:
        current = current.convert("RGBA")
        current.putalpha(alpha.resize(target, Image.Resampling.LANCZOS))
    return current


def file_upscaler(
    file: UpscalerFile,
    cache: ModelCache,
    settings: Callable[[], dict[str, Any]],
) -> Callable[..., Any]:
    """The ``UpscalerSpec.upscale`` function for one file (loads on first use)."""

    def upscale(image: Any, scale: float, **options: Any) -> Any:
        check_input(image, scale)
        current = settings()
        loaded = cache.get(file, current["allow_pickle"])
        return upscale_with(
            loaded,
            image,
            scale,
            device=current["device"],
            tile=options.get("tile") or current["tile"],
            overlap=options.get("overlap", current["overlap"]),
            progress=options.get("progress"),
            is_cancelled=options.get("is_cancelled"),
        )

    upscale.__name__ = f"upscale_{Path(file.path).stem}"
    return upscale
