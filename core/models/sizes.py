"""The image sizes a model is made for: its native sizes, the WebUI's size presets for it,
and the hint for a size far above them.

A denoiser draws what it saw in training at the size it saw it; well above that size it
repeats its shapes side by side (the 128-px demo model at 512x512 draws tiled shapes, and
takes 16 times as long). A model folder's ``easel.json`` may list its native sizes:

    {"sizes": [[128, 128], [128, 96], [96, 128]], "recommended": {...}}

(the first is the main one). Without a list, the presets are the native size (from the
configs, else the family's default) as a square and at the usual aspect ratios.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from core.errors import ModelError
from core.models.recommended import RECOMMENDED_FILE

MAX_SIZES = 12
# (width, height) ratios of the derived presets, as A1111/Forge users know them
ASPECTS = ((1, 1), (3, 4), (4, 3), (2, 3), (3, 2), (9, 16), (16, 9))
# a side more than this many times the native one, or an area more than this many times
# the native area, is "far above" (512x512 for a 128-px model is 4 and 16; SD1.5 at
# 1024x1024, 2 and 4, is not yet: hires fix users go there)
FAR_SIDE, FAR_AREA = 2.0, 4.0


def read_sizes(folder: Path) -> list[tuple[int, int]]:
    """The native sizes an ``easel.json`` lists ([] without a file or a list); a bad list
    is a ModelError naming the file, as for its recommended settings."""
    path = folder / RECOMMENDED_FILE
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable: {exc}") from exc
    raw = data.get("sizes", []) if isinstance(data, dict) else []
    if not isinstance(raw, list) or len(raw) > MAX_SIZES:
        raise ModelError(f'{path}: "sizes" must be a list of at most {MAX_SIZES} [width, height] pairs')
    sizes = []
    for item in raw:
        ok = isinstance(item, list) and len(item) == 2
        ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and 64 <= v <= 2048 for v in item)
        if not ok:
            raise ModelError(f'{path}: "sizes" entry {item!r} must be [width, height], each 64-2048')
        sizes.append((item[0], item[1]))
    return sizes


def native_side(info: Any, family_default: int) -> int:
    """The model's main side: its first listed size, its configs' size, else the family's."""
    sizes = getattr(info, "sizes", None) or []
    if sizes:
        width, height = sizes[0]
        return round(math.sqrt(width * height))
    return getattr(info, "native_size", None) or family_default


def presets_for(info: Any, family_default: int, multiple: int = 8) -> list[tuple[int, int]]:
    """The size presets the WebUI offers for a model: its listed sizes, else its native
    side at the usual aspect ratios (about the same area, multiples of ``multiple``)."""
    sizes = list(getattr(info, "sizes", None) or [])
    if sizes:
        return sizes
    side = native_side(info, family_default)
    step = max(multiple, 64 if side >= 512 else multiple)
    presets: list[tuple[int, int]] = []
    for aspect_w, aspect_h in ASPECTS:
        ratio = math.sqrt(aspect_w / aspect_h)
        size = (max(step, round(side * ratio / step) * step), max(step, round(side / ratio / step) * step))
        if size not in presets:
            presets.append(size)
    return presets


def size_hint(width: int, height: int, side: int) -> str | None:
    """A warning when ``width`` x ``height`` is far above the native ``side``; None otherwise."""
    if not side or not width or not height:
        return None
    if max(width, height) <= FAR_SIDE * side and width * height <= FAR_AREA * side * side:
        return None
    return (
        f"{width}x{height} is far above this model's native size ({side}x{side}): expect repeated, "
        f"tiled shapes and a much longer run; generate at {side}x{side} and use hires fix to enlarge."
    )
