"""The demo model's world, read back from an image: background colour, foreground colour,
shape and position of the largest foreground region, and a caption in the phrasing the
demo model was trained on ("a red circle in the center on a blue background").

It is the demo model's judge (``tools/demo_model/judge.py`` re-exports it), shipped here
so the host can caption demo images without the training tools.

Method: median of the border pixels -> background colour; pixels far from it (more than
half the typical foreground contrast) form the foreground mask; its largest 4-connected
region is the object. Colours are the nearest named palette colour; the shape comes from
the region's extent (area / bounding box) and solidity (area / convex hull area); the
position from the centroid on a 3x3 grid.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# the demo scenes' palette (tools/demo_model/scenes.py draws with it)
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 220),
    "yellow": (245, 215, 35),
    "orange": (245, 135, 25),
    "purple": (135, 45, 175),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
# how the training captions say each position (the first of scenes.py's phrasings)
POSITION_PHRASES: dict[str, str] = {
    "center": "in the center",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "top left": "at the top left",
    "top right": "at the top right",
    "bottom left": "at the bottom left",
    "bottom right": "at the bottom right",
}

_NAMES = list(COLORS)
_PALETTE = np.array([COLORS[n] for n in _NAMES], dtype=np.float32)


@dataclass
class Judgement:
    background: str
    color: str | None
    shape: str | None
    position: str | None
    area: float  # fraction of the image covered by the region
    extent: float
    solidity: float
    cx: float
    cy: float

    def as_dict(self) -> dict:
        return asdict(self)


def nearest_color(rgb) -> str:
    d = ((_PALETTE - np.asarray(rgb, dtype=np.float32)) ** 2).sum(axis=1)
    return _NAMES[int(np.argmin(d))]


def _largest_component(mask: np.ndarray) -> np.ndarray | None:
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    best: list[tuple[int, int]] = []
    ys, xs = np.nonzero(mask)
    for y0, x0 in zip(ys.tolist(), xs.tolist(), strict=False):
        if seen[y0, x0]:
            continue
        comp = []
        q = deque([(y0, x0)])
        seen[y0, x0] = True
        while q:
            y, x = q.popleft()
            comp.append((y, x))
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    q.append((ny, nx))
        if len(comp) > len(best):
            best = comp
    if not best:
        return None
    return np.array(best, dtype=np.int64)


def _hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (monotone chain)."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = np.array(lower[:-1] + upper[:-1], dtype=np.float64)
    x, y = hull[:, 0], hull[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def classify_shape(extent: float, solidity: float) -> str:
    if solidity < 0.8:
        return "star"
    if extent > 0.88:
        return "square"
    if extent > 0.64:
        return "circle"
    return "triangle"


def classify_position(cx: float, cy: float) -> str:
    col = "left" if cx < 0.385 else ("right" if cx > 0.615 else "")
    row = "top" if cy < 0.385 else ("bottom" if cy > 0.615 else "")
    if row and col:
        return f"{row} {col}"
    return row or col or "center"


def judge(image) -> Judgement:
    """Analyze an image (PIL image, path or HxWx3 uint8 array)."""
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    img = np.asarray(image, dtype=np.float32)
    h, w, _ = img.shape
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg_rgb = np.median(border, axis=0)
    background = nearest_color(bg_rgb)
    dist = np.sqrt(((img - bg_rgb) ** 2).sum(axis=2))
    contrast = float(np.percentile(dist, 99.5))
    empty = Judgement(background, None, None, None, 0.0, 0.0, 0.0, 0.5, 0.5)
    if contrast < 60:
        return empty
    mask = dist > max(40.0, 0.5 * contrast)
    comp = _largest_component(mask)
    if comp is None or len(comp) < 12:
        return empty
    ys, xs = comp[:, 0], comp[:, 1]
    area = len(comp)
    # colour: median over the region's "core" pixels (well away from the anti-aliased edge)
    d = dist[ys, xs]
    core = d >= np.percentile(d, 30)
    rgb = np.median(img[ys[core], xs[core]], axis=0)
    color = nearest_color(rgb)
    extent = area / float((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))
    # hull over pixel corners of each row's extreme pixels
    pts = []
    for y in np.unique(ys):
        row = xs[ys == y]
        for x in (row.min(), row.max() + 1):
            pts.append((x, y))
            pts.append((x, y + 1))
    hull = _hull_area(np.array(pts))
    solidity = min(1.0, area / hull) if hull > 0 else 0.0
    cx = (xs.mean() + 0.5) / w
    cy = (ys.mean() + 0.5) / h
    return Judgement(
        background,
        color,
        classify_shape(extent, solidity),
        classify_position(cx, cy),
        area / float(h * w),
        round(extent, 4),
        round(solidity, 4),
        round(float(cx), 4),
        round(float(cy), 4),
    )


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(image: Any) -> str:
    """The demo training captions' phrasing for what ``judge`` sees."""
    seen = judge(image)
    background = f"{_article(seen.background)} {seen.background} background"
    if seen.color is None or seen.shape is None:
        return f"a plain {seen.background} background"
    obj = f"{seen.color} {seen.shape} {POSITION_PHRASES[seen.position or 'center']}"
    return f"{_article(obj)} {obj} on {background}"
