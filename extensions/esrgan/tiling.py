"""Running an upscaling network over an image of any size: tiles with overlap, blended.

The image is cut into tiles that overlap by ``overlap`` input pixels. Each output pixel is
a weighted sum of the tiles that cover it; the weights are separable ramps, normalised
per axis so that they sum to exactly one everywhere (a partition of unity), so there is
no seam: where two tiles meet, one fades out while the other fades in, and away from
tile borders a pixel comes from one tile alone, exactly as the untiled network gives it
(as long as the network's receptive field fits inside the overlap).

Memory stays bounded for any input size: the result is written as 8-bit rows, and only
one band of tile rows is held in float32 at a time (tile height x output width).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

DEFAULT_OVERLAP = 32
TILE_CANDIDATES = (1024, 768, 512, 384, 256, 192, 128, 96, 64)
# a conservative guess of what one input pixel costs inside a typical SR network at
# batch 1 (feature maps of 64-192 channels, several alive at once, output at scale^2)
BYTES_PER_INPUT_PIXEL_FP32 = 64 * 4 * 12


def available_memory(device: str) -> int:
    """Free bytes on ``device`` (accelerator memory, or the system's available RAM)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 * 1024**3


def choose_tile_size(free_bytes: int, scale: int, half: bool) -> int:
    """The largest candidate tile whose estimated working memory fits in a quarter of
    ``free_bytes`` (the rest is left to the host, the result image and other work)."""
    per_pixel = BYTES_PER_INPUT_PIXEL_FP32 * (0.5 if half else 1.0) * max(1.0, scale**2 / 4)
    budget = free_bytes / 4
    for tile in TILE_CANDIDATES:
        if tile * tile * per_pixel <= budget:
            return tile
    return TILE_CANDIDATES[-1]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Evenly spread tile starts covering ``length``, neighbours overlapping >= overlap."""
    if length <= tile:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def axis_weights(length: int, starts: list[int], tile: int, ramp: int) -> list[np.ndarray]:
    """Per-tile 1-D weights along one axis: a linear ramp of ``ramp`` pixels at each side
    that has a neighbour, then divided by their sum so the tiles' weights add up to 1."""
    raw = []
    total = np.zeros(length, dtype=np.float64)
    for index, start in enumerate(starts):
        size = min(tile, length - start)
        weight = np.ones(size, dtype=np.float64)
        if ramp > 0:
            ramp_up = (np.arange(ramp, dtype=np.float64) + 0.5) / ramp
            if index > 0:
                weight[:ramp] = np.minimum(weight[:ramp], ramp_up[: min(ramp, size)])
            if index < len(starts) - 1:
                weight[-ramp:] = np.minimum(weight[-ramp:], ramp_up[::-1][-min(ramp, size) :])
        raw.append(weight)
        total[start : start + size] += weight
    return [(w / total[s : s + len(w)]).astype(np.float32) for w, s in zip(raw, starts, strict=True)]


def run_tiled(
    run: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    scale: int,
    tile: int,
    overlap: int = DEFAULT_OVERLAP,
    progress: Callable[[int, int], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """Upscale ``image`` (H, W, C float32 in [0, 1]) with ``run`` (one tile in, the same
    tile ``scale`` times larger out) and return an (H*s, W*s, C) uint8 array."""
    height, width, channels = image.shape
    tile = max(8, int(tile))
    overlap = max(0, min(int(overlap), tile // 2 - 1))
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    out_h, out_w = height * scale, width * scale
    # the ramp spans the overlap in output pixels; its inner half stays clear of tile borders
    ramp = overlap * scale
    wy = axis_weights(out_h, [y * scale for y in ys], tile * scale, ramp)
    wx = axis_weights(out_w, [x * scale for x in xs], tile * scale, ramp)
    result = np.empty((out_h, out_w, channels), dtype=np.uint8)
    band = np.zeros((0, out_w, channels), dtype=np.float32)
    band_top = 0  # output row of band[0]
    total, done = len(ys) * len(xs), 0
    for row, y in enumerate(ys):
        tile_h = min(tile, height - y)
        oy0, oy1 = y * scale, (y + tile_h) * scale
        if oy1 > band_top + band.shape[0]:
            grow = np.zeros((oy1 - band_top - band.shape[0], out_w, channels), dtype=np.float32)
            band = np.concatenate([band, grow])
        for col, x in enumerate(xs):
            if is_cancelled is not None and is_cancelled():
                raise InterruptedError("upscaling was interrupted")
            tile_w = min(tile, width - x)
            upscaled = run(image[y : y + tile_h, x : x + tile_w])
            expected = (tile_h * scale, tile_w * scale)
            if upscaled.shape[:2] != expected:
                raise RuntimeError(f"the upscaler returned a {upscaled.shape[:2]} tile, expected {expected}")
            ox0 = x * scale
            upscaled = np.asarray(upscaled, dtype=np.float32)
            # separable weights, applied in place (no tile-sized temporaries)
            if len(ys) > 1:
                upscaled *= wy[row][:, None, None]
            if len(xs) > 1:
                upscaled *= wx[col][None, :, None]
            band[oy0 - band_top : oy1 - band_top, ox0 : ox0 + expected[1]] += upscaled
            done += 1
            if progress is not None:
                progress(done, total)
        # rows above the next tile row's first row get no more contributions: finish them
        finished_to = ys[row + 1] * scale if row + 1 < len(ys) else out_h
        count = finished_to - band_top
        finished = band[:count]
        finished *= 255.0
        np.rint(finished, out=finished)
        np.clip(finished, 0, 255, out=finished)
        result[band_top:finished_to] = finished  # cast to uint8 on assignment
        band = band[count:].copy()
        band_top = finished_to
    return result


def split_alpha(image: Any) -> tuple[Any, Any | None]:
    """(RGB image, alpha channel or None) of a PIL image in any mode."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    return image.convert("RGB"), None
