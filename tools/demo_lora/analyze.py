"""Style analyzer for the demo LoRA: is the object in an image *outlined* or *filled*?

The base demo model only ever saw filled shapes; the demo LoRA teaches it outlined ones.
This measures the difference without a model:

1. background = median of the border pixels; foreground mask = pixels farther from it than
   half the typical foreground contrast (the same rule as ``tools.demo_model.judge``);
2. the mask is closed by one pixel (a 3x3 dilation) so that a slightly broken outline of a
   generated image still encloses its inside;
3. everything the image border reaches through non-mask pixels is outside; the rest of the
   non-mask pixels are *holes*: background colour enclosed by the object;
4. ``hole_fraction`` = holes / (object + holes). A filled shape has almost no holes, an
   outlined one mostly holes (a ring 2.5 px wide around a 17 px radius: ~70%).

``style`` is "outline" when ``hole_fraction >= OUTLINE_THRESHOLD``, "filled" when there is an
object and it is below, "none" when no object stands out from the background.

    python -m tools.demo_lora.analyze IMAGE [IMAGE ...]      # one JSON line per image
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tools.demo_model.judge import _largest_component

OUTLINE_THRESHOLD = 0.15
MASK_FRACTION = 0.3  # of the contrast: a generated outline is uneven, so lower than judge.py's 0.5
CLOSING_PIXELS = 2
CENTRE_CLOSING = 3
CENTRE_DISK = 0.25  # disk radius as a fraction of the object's half size
CENTRE_FILL_THRESHOLD = 0.5
MIN_CONTRAST = 60.0  # below this nothing stands out from the background (as judge.py)
MIN_OBJECT_PIXELS = 12


@dataclass
class StyleReading:
    style: str  # "outline" | "filled" | "none"
    hole_fraction: float  # enclosed background / (object + enclosed background)
    object_fraction: float  # object + holes, as a fraction of the image
    centre_fill: float  # foreground share of a disk at the main object's centre

    def as_dict(self) -> dict:
        return asdict(self)


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out[1:, 1:] |= mask[:-1, :-1]
    out[:-1, :-1] |= mask[1:, 1:]
    out[1:, :-1] |= mask[:-1, 1:]
    out[:-1, 1:] |= mask[1:, :-1]
    return out


def _reachable_from_border(free: np.ndarray) -> np.ndarray:
    """Pixels of ``free`` connected (4-neighbourhood) to the image border through ``free``."""
    reached = np.zeros_like(free)
    reached[0], reached[-1], reached[:, 0], reached[:, -1] = free[0], free[-1], free[:, 0], free[:, -1]
    while True:
        grown = reached.copy()
        grown[1:] |= reached[:-1]
        grown[:-1] |= reached[1:]
        grown[:, 1:] |= reached[:, :-1]
        grown[:, :-1] |= reached[:, 1:]
        grown &= free
        if np.array_equal(grown, reached):
            return reached
        reached = grown


def foreground_mask(img: np.ndarray) -> np.ndarray | None:
    """Pixels that differ clearly from the background colour, or None if none do."""
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    background = np.median(border, axis=0)
    dist = np.sqrt(((img - background) ** 2).sum(axis=2))
    contrast = float(np.percentile(dist, 99.5))
    if contrast < MIN_CONTRAST:
        return None
    return dist > max(30.0, MASK_FRACTION * contrast)


def analyze(image: Image.Image | str | Path | np.ndarray) -> StyleReading:
    """Outline or filled, for a PIL image, a path or an HxWx3 uint8 array."""
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    img = np.asarray(image, dtype=np.float32)
    mask = foreground_mask(img)
    if mask is None or int(mask.sum()) < MIN_OBJECT_PIXELS:
        return StyleReading("none", 0.0, 0.0, 0.0)
    closed = mask
    for _ in range(CLOSING_PIXELS):
        closed = _dilate(closed)
    outside = _reachable_from_border(~closed)
    # give back to the outside the rim the closing took from it (opening of the outside),
    # so a filled shape does not get a ring of "holes" around it
    for _ in range(CLOSING_PIXELS):
        outside |= _dilate(outside) & ~mask
    holes = ~mask & ~outside
    region = int((~outside).sum())
    hole_fraction = float(holes.sum()) / region if region else 0.0
    fill = centre_fill(mask)
    outlined = hole_fraction >= OUTLINE_THRESHOLD or (fill is not None and fill < CENTRE_FILL_THRESHOLD)
    return StyleReading(
        "outline" if outlined else "filled",
        round(hole_fraction, 4),
        round(region / mask.size, 4),
        round(1.0 if fill is None else fill, 4),
    )


def centre_fill(mask: np.ndarray) -> float | None:
    """Foreground share of a disk around the centre of the main object: ~1 for every filled
    shape (circle, square, triangle and star are all solid around their middle), ~0 for an
    outline, even a broken one that encloses nothing. The main object is the largest
    region of the mask after a closing of ``CENTRE_CLOSING`` pixels (so the pieces of a
    broken outline count as one); None when it is too small to tell."""
    closed = mask
    for _ in range(CENTRE_CLOSING):
        closed = _dilate(closed)
    region = _largest_component(closed)
    if region is None:
        return None
    ys, xs = region[:, 0], region[:, 1]
    half = (min(ys.max() - ys.min(), xs.max() - xs.min()) + 1) / 2 - CENTRE_CLOSING
    radius = CENTRE_DISK * half
    if radius < 1.5:
        return None
    cy, cx = (ys.max() + ys.min()) / 2, (xs.max() + xs.min()) / 2
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    return float(mask[disk].mean())


def outline_rate(images: list) -> float:
    """Fraction of images the analyzer calls "outline"."""
    return sum(analyze(im).style == "outline" for im in images) / len(images) if images else 0.0


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__)
        return 2
    for path in paths:
        print(json.dumps({"image": str(path), **analyze(path).as_dict()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
