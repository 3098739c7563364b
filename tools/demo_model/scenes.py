"""Procedural scenes: one or two simple shapes in named colours on a named background.

Everything is reproducible from a seed (pass a ``numpy.random.Generator``)::

    rng = np.random.default_rng(0)
    scene = sample_scene(rng)            # Scene(background=..., shapes=(Shape(...),))
    image = render(scene, 128)           # PIL RGB image, anti-aliased
    text = caption(scene, rng)           # "a small red circle at the top left, blue background"

Held-out (foreground colour, shape, background colour) combinations (``HELD_OUT_COMBOS``) are
never produced by ``sample_scene(..., split="train")``; ``held_out_prompts()`` builds the
fixed evaluation prompts from them.  Later work (LoRA styles, ControlNet edges, upscalers)
can reuse ``sample_scene``/``render``; ``render`` takes a ``style`` argument for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from extensions.interrogate.demo_world import COLORS

# the palette lives with the demo world's judge (the host ships it)
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
SIZES: tuple[str, ...] = ("small", "large")
# position name -> (x, y) centre as a fraction of the image side
POSITIONS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "left": (0.27, 0.5),
    "right": (0.73, 0.5),
    "top": (0.5, 0.27),
    "bottom": (0.5, 0.73),
    "top left": (0.27, 0.27),
    "top right": (0.73, 0.27),
    "bottom left": (0.27, 0.73),
    "bottom right": (0.73, 0.73),
}
POSITION_NAMES: tuple[str, ...] = tuple(POSITIONS)
# radius (fraction of the image side) for each size name
SIZE_RADIUS: dict[str, float] = {"small": 0.13, "large": 0.19}
JITTER = 0.02  # max centre jitter (fraction of side)


@dataclass(frozen=True)
class Shape:
    kind: str  # one of SHAPES
    color: str  # one of COLOR_NAMES
    position: str  # one of POSITION_NAMES
    size: str  # one of SIZES
    cx: float  # centre x, fraction of side
    cy: float  # centre y, fraction of side
    radius: float  # fraction of side


@dataclass(frozen=True)
class Scene:
    background: str
    shapes: tuple[Shape, ...]


def _held_out_combos() -> frozenset[tuple[str, str, str]]:
    """24 (colour, shape, background) triples: every colour 3x as foreground and 3x as
    background, every shape 6x.  Deterministic, no randomness involved."""
    combos = set()
    n = len(COLOR_NAMES)
    for i, fg in enumerate(COLOR_NAMES):
        for k, step in enumerate((1, 3, 5)):
            shape = SHAPES[(i + k) % len(SHAPES)]
            bg = COLOR_NAMES[(i + step) % n]
            combos.add((fg, shape, bg))
    return frozenset(combos)


HELD_OUT_COMBOS: frozenset[tuple[str, str, str]] = _held_out_combos()


def is_held_out(scene: Scene) -> bool:
    """True if any shape of the scene forms a held-out (colour, shape, background) triple."""
    return any((s.color, s.kind, scene.background) in HELD_OUT_COMBOS for s in scene.shapes)


def make_shape(
    kind: str, color: str, position: str, size: str, rng: np.random.Generator | None = None
) -> Shape:
    cx, cy = POSITIONS[position]
    radius = SIZE_RADIUS[size]
    if rng is not None:
        cx += float(rng.uniform(-JITTER, JITTER))
        cy += float(rng.uniform(-JITTER, JITTER))
        radius *= float(rng.uniform(0.9, 1.1))
    return Shape(kind, color, position, size, cx, cy, radius)


# pairs of positions far enough apart for two shapes
_PAIR_POSITIONS = [
    ("left", "right"),
    ("top", "bottom"),
    ("top left", "bottom right"),
    ("top right", "bottom left"),
    ("top left", "top right"),
    ("bottom left", "bottom right"),
    ("top left", "bottom left"),
    ("top right", "bottom right"),
]


def sample_scene(rng: np.random.Generator, split: str = "train", p_two: float = 0.2) -> Scene:
    """Sample a random scene.

    split="train": never contains a held-out triple; split="held_out": a single shape whose
    (colour, shape, background) is held out; split="any": no restriction.
    """
    if split == "held_out":
        combos = sorted(HELD_OUT_COMBOS)
        fg, kind, bg = combos[int(rng.integers(len(combos)))]
        pos = POSITION_NAMES[int(rng.integers(len(POSITION_NAMES)))]
        size = SIZES[int(rng.integers(len(SIZES)))]
        return Scene(bg, (make_shape(kind, fg, pos, size, rng),))
    while True:
        bg = COLOR_NAMES[int(rng.integers(len(COLOR_NAMES)))]
        if rng.random() < p_two:
            pa, pb = _PAIR_POSITIONS[int(rng.integers(len(_PAIR_POSITIONS)))]
            if rng.random() < 0.5:
                pa, pb = pb, pa
            shapes = []
            for pos in (pa, pb):
                fg = _other_color(rng, bg)
                kind = SHAPES[int(rng.integers(len(SHAPES)))]
                shapes.append(make_shape(kind, fg, pos, "small", rng))
            scene = Scene(bg, tuple(shapes))
        else:
            fg = _other_color(rng, bg)
            kind = SHAPES[int(rng.integers(len(SHAPES)))]
            pos = POSITION_NAMES[int(rng.integers(len(POSITION_NAMES)))]
            size = SIZES[int(rng.integers(len(SIZES)))]
            scene = Scene(bg, (make_shape(kind, fg, pos, size, rng),))
        if split == "any" or not is_held_out(scene):
            return scene


def _other_color(rng: np.random.Generator, bg: str) -> str:
    choices = [c for c in COLOR_NAMES if c != bg]
    return choices[int(rng.integers(len(choices)))]


# ----------------------------------------------------------------------------- geometry


def shape_polygon(kind: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Polygon vertices (pixels) for square/triangle/star centred at (cx, cy), radius r."""
    if kind == "square":
        h = r * 0.85
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if kind == "triangle":
        R = r * 1.15  # circumradius; centroid at (cx, cy); pointing up
        return [
            (cx + R * math.cos(a), cy + R * math.sin(a)) for a in (math.radians(d) for d in (-90, 30, 150))
        ]
    if kind == "star":
        R = r * 1.2
        inner = R * 0.45
        pts = []
        for i in range(10):
            a = math.radians(-90 + 36 * i)
            rad = R if i % 2 == 0 else inner
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a) + R * 0.05))
        return pts
    raise ValueError(f"no polygon for {kind!r}")


def render(scene: Scene, size: int = 128, supersample: int = 4, style: str = "solid") -> Image.Image:
    """Render a scene to an RGB PIL image of ``size`` x ``size`` (anti-aliased by
    supersampling).  style: "solid" (filled shapes) or "outline" (outlined shapes)."""
    big = size * supersample
    img = Image.new("RGB", (big, big), COLORS[scene.background])
    draw = ImageDraw.Draw(img)
    for s in scene.shapes:
        cx, cy, r = s.cx * big, s.cy * big, s.radius * big
        col = COLORS[s.color]
        kw = {"fill": col} if style == "solid" else {"outline": col, "width": max(1, int(big * 0.02))}
        if s.kind == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], **kw)
        elif style == "solid":
            draw.polygon(shape_polygon(s.kind, cx, cy, r), **kw)
        else:
            pts = shape_polygon(s.kind, cx, cy, r)
            draw.line([*pts, pts[0]], fill=col, width=kw["width"], joint="curve")
    if supersample > 1:
        img = img.resize((size, size), Image.Resampling.BOX)
    return img


# ----------------------------------------------------------------------------- captions

_POS_PHRASE = {
    "center": ["in the center", "in the middle", "at the center"],
    "left": ["on the left", "at the left"],
    "right": ["on the right", "at the right"],
    "top": ["at the top", "on the top"],
    "bottom": ["at the bottom", "on the bottom"],
    "top left": ["at the top left", "in the top left corner"],
    "top right": ["at the top right", "in the top right corner"],
    "bottom left": ["at the bottom left", "in the bottom left corner"],
    "bottom right": ["at the bottom right", "in the bottom right corner"],
}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _obj(s: Shape, with_size: bool, with_pos: bool, phrase_idx: int = 0) -> str:
    words = ([s.size] if with_size else []) + [s.color, s.kind]
    text = " ".join(words)
    if with_pos:
        phrases = _POS_PHRASE[s.position]
        text += " " + phrases[phrase_idx % len(phrases)]
    return text


def caption(
    scene: Scene,
    rng: np.random.Generator | None = None,
    template: int | None = None,
    with_size: bool | None = None,
    with_pos: bool | None = None,
) -> str:
    """English caption for a scene.  Random phrasing from ``rng`` unless ``template``,
    ``with_size`` and ``with_pos`` are given (then deterministic)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    bg = scene.background
    if len(scene.shapes) == 2:
        a, b = scene.shapes
        t = int(rng.integers(3)) if template is None else template % 3
        if t == 0:
            return f"{_article(a.color)} {_obj(a, False, True)} and {_article(b.color)} {_obj(b, False, True)}, {bg} background"
        if t == 1:
            return f"{_article(a.color)} {_obj(a, False, True)} and {_article(b.color)} {_obj(b, False, True)} on {_article(bg)} {bg} background"
        return f"{a.color} {a.kind} and {b.color} {b.kind} on {bg}"
    s = scene.shapes[0]
    ws = bool(rng.random() < 0.6) if with_size is None else with_size
    wp = bool(rng.random() < 0.75) if with_pos is None else with_pos
    pi = int(rng.integers(3))
    t = int(rng.integers(5)) if template is None else template % 5
    obj = _obj(s, ws, wp, pi)
    if t == 0:
        return f"{_article(obj)} {obj} on {_article(bg)} {bg} background"
    if t == 1:
        return f"{obj}, {bg} background"
    if t == 2:
        return f"{_article(bg)} {bg} background with {_article(obj)} {obj}"
    if t == 3:
        return f"{_article(obj)} {obj} on {bg}"
    return f"{obj} on a plain {bg} background"


# ----------------------------------------------------------------------------- held-out set

N_HELD_OUT_PROMPTS = 48


def held_out_scenes() -> list[Scene]:
    """48 deterministic single-shape scenes, two per held-out combo, covering all positions
    and both sizes (no jitter)."""
    scenes = []
    for i, (fg, kind, bg) in enumerate(sorted(HELD_OUT_COMBOS)):
        for j in range(2):
            k = 2 * i + j
            pos = POSITION_NAMES[(k * 5 + i) % len(POSITION_NAMES)]
            size = SIZES[(i + j) % 2]
            scenes.append(Scene(bg, (make_shape(kind, fg, pos, size),)))
    return scenes[:N_HELD_OUT_PROMPTS]


def held_out_prompts() -> list[dict]:
    """[{prompt, seed, color, shape, background, position, size}] for evaluation."""
    out = []
    for k, scene in enumerate(held_out_scenes()):
        s = scene.shapes[0]
        prompt = caption(
            scene, template=(0, 1)[k % 2], with_size=True, with_pos=True, rng=np.random.default_rng(k)
        )
        out.append(
            {
                "prompt": prompt,
                "seed": 1000 + k,
                "color": s.color,
                "shape": s.kind,
                "background": scene.background,
                "position": s.position,
                "size": s.size,
            }
        )
    return out


def validation_prompts(n: int = 96, seed: int = 7) -> list[dict]:
    """``n`` single-shape prompts from the *training* distribution (no held-out triple), shapes
    balanced, each with its own seed (2000 + k): the set that sampling settings are tuned on,
    so that the held-out prompts stay a test set. Same keys as ``held_out_prompts``."""
    rng = np.random.default_rng(seed)
    out = []
    k = 0
    while len(out) < n:
        scene = sample_scene(rng, p_two=0.0)
        s = scene.shapes[0]
        if s.kind != SHAPES[len(out) % len(SHAPES)]:
            continue  # keep the four shapes balanced
        prompt = caption(scene, template=k % 2, with_size=True, with_pos=True, rng=rng)
        out.append(
            {
                "prompt": prompt,
                "seed": 2000 + k,
                "color": s.color,
                "shape": s.kind,
                "background": scene.background,
                "position": s.position,
                "size": s.size,
            }
        )
        k += 1
    return out


def training_pairs(n: int, seed: int, captions_per_scene: int = 4) -> tuple[list[Scene], list[list[str]]]:
    """``n`` training scenes and ``captions_per_scene`` random captions each, from ``seed``."""
    rng = np.random.default_rng(seed)
    scenes, caps = [], []
    for _ in range(n):
        sc = sample_scene(rng, "train")
        scenes.append(sc)
        caps.append([caption(sc, rng) for _ in range(captions_per_scene)])
    return scenes, caps


__all__ = [
    "COLORS",
    "COLOR_NAMES",
    "HELD_OUT_COMBOS",
    "POSITIONS",
    "POSITION_NAMES",
    "SHAPES",
    "SIZES",
    "SIZE_RADIUS",
    "Scene",
    "Shape",
    "caption",
    "held_out_prompts",
    "held_out_scenes",
    "is_held_out",
    "make_shape",
    "render",
    "replace",
    "sample_scene",
    "shape_polygon",
    "training_pairs",
    "validation_prompts",
]
