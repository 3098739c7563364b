"""Free phrasing for the demo model: a held-out test set of prompt templates and the training
paraphrase generator, kept disjoint.

    phrasing_prompts()           # 64 evaluation prompts: 16 held-out templates x 4 scenes
    paraphrase(scene, rng)       # (caption, with_size, with_pos) for training the text encoder

The original captions (``scenes.caption``) come in five fixed phrasings, and a text encoder
trained only on them follows only them (issue #29: 11/16 foregrounds on prompts written
differently). ``paraphrase`` writes the same scenes in many more ways: synonyms ("backdrop",
"coloured", "big", "upper left"), word orders, articles, connectors ("with", "over",
"against"), upper case, punctuation, SD-style comma lists, dropped filler words and the
English that the ``zh_prompt`` extension makes of Chinese prompts. ``HELD_OUT_TEMPLATES``
are never produced by it: every caption it draws is reduced to a *skeleton* (the attribute
words replaced by slots, lower-cased as the CLIP tokenizer does) and redrawn if that skeleton
is a held-out one, so the phrasing set measures phrasings the model has not seen. The held-out
set's scenes come from the training distribution (no held-out colour triple): the set
measures phrasing alone, the 48 ``scenes.held_out_prompts()`` measure unseen combinations.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from . import scenes
from .scenes import Scene, Shape

# ----------------------------------------------------------------------------- vocabulary

COLOR_WORDS: dict[str, tuple[str, ...]] = {c: (c,) for c in scenes.COLOR_NAMES} | {
    "purple": ("purple", "violet"),
}
SHAPE_WORDS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "disc", "round circle"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
    "star": ("star", "five-pointed star"),
}
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little", "tiny"),
    "large": ("large", "big", "huge"),
}
BACKGROUND_WORDS = ("background", "backdrop", "bg", "canvas")

# position name -> phrases (the original ones live in scenes._POS_PHRASE)
_SIDE = {"top": ("top", "upper"), "bottom": ("bottom", "lower")}
TRAIN_POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "center": ("in the center", "in the centre", "in the middle", "centered", "at the centre"),
    "left": ("on the left", "to the left", "on the left side", "at the left"),
    "right": ("on the right", "to the right", "on the right side", "at the right"),
    "top": ("at the top", "near the top", "on the top side", "up top"),
    "bottom": ("at the bottom", "near the bottom", "on the bottom side", "down at the bottom"),
}
for _v in ("top", "bottom"):
    for _h in ("left", "right"):
        TRAIN_POSITION_PHRASES[f"{_v} {_h}"] = tuple(
            phrase
            for side in _SIDE[_v]
            for phrase in (
                f"at the {side} {_h}",
                f"in the {side} {_h} corner",
                f"{side}-{_h}",
                f"in the {side}-{_h}",
            )
        )


# ----------------------------------------------------------------------------- skeletons

_POSITION_RE = re.compile(
    r"\b(?:(?:top|bottom|upper|lower)[ -](?:left|right)|top|bottom|upper|lower|left|right|"
    r"center|centre|centered|middle)\b"
)


def _words_re(words) -> re.Pattern:
    alternatives = sorted({w for group in words for w in group}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in alternatives) + r")\b")


_COLOR_RE = _words_re(COLOR_WORDS.values())
_SHAPE_RE = _words_re(SHAPE_WORDS.values())
_SIZE_RE = _words_re(SIZE_WORDS.values())


def skeleton(text: str) -> str:
    """The caption with every attribute word replaced by its slot, lower-cased (the CLIP
    tokenizer lower-cases) and with whitespace collapsed: two captions with the same skeleton
    are one template."""
    text = " ".join(text.lower().split())
    text = _POSITION_RE.sub("{pos}", text)
    text = _SHAPE_RE.sub("{shape}", text)
    text = _SIZE_RE.sub("{size}", text)
    return _COLOR_RE.sub("{color}", text)


def loose_skeleton(text: str) -> str:
    """The skeleton without punctuation and with "an" read as "a": the guard's key, so that a
    training caption cannot differ from a held-out template only by its commas, full stops or
    article ("{bg} background. {color} {shape}. {pos}." and "{bg} background, {color}
    {shape}, {pos}" are one template to a person)."""
    words = re.sub(r"[^a-z{}]+", " ", skeleton(text)).split()
    return " ".join("a" if w == "an" else w for w in words)


# ----------------------------------------------------------------------------- held-out set

# Written for the test set only; ``paraphrase`` never draws one of these skeletons.
# {pos} uses HELD_OUT_POSITION_PHRASES; a template without {pos} leaves position unscored.
HELD_OUT_TEMPLATES: tuple[str, ...] = (
    "{color} {shape}, {bg} backdrop",
    "on {a_bg} background, a {size} {color} {shape} {pos}",
    "one {color} {shape} against {bg}",
    "{COLOR} {SHAPE} ON {BG}.",
    "{shape}, {color}, {bg} background, {pos}",
    "{a_bg}-coloured background with {a_color} {shape}",
    "{bg} backdrop behind a {size} {color} {shape}",
    "{a_color} {shape} sitting {pos} of {a_bg} canvas",
    "{bg} bg, {color} {shape} {pos}",
    "draw a {size} {color} {shape} {pos} on {bg}",
    "{Color} {shape} {pos}; background: {bg}",
    "{size} {shape} in {color}, {bg} background",
    "picture of {a_color} {shape} over {a_bg} background",
    "{bg} background. {color} {shape}. {pos}.",
    "{a_color} colored {shape} placed {pos}, {bg} colored background",
    "{color} {shape} with a {bg} background!",
)
HELD_OUT_POSITION_PHRASES: dict[str, str] = {
    "center": "in the middle",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
    "top left": "in the upper left corner",
    "top right": "in the upper right corner",
    "bottom left": "in the lower left corner",
    "bottom right": "in the lower right corner",
}
N_PHRASING_SCENES_PER_TEMPLATE = 4


def _fill(template: str, shape: Shape, background: str, position_phrase: str) -> str:
    return template.format(
        color=shape.color,
        a_color=f"{_article(shape.color)} {shape.color}",
        a_bg=f"{_article(background)} {background}",
        Color=shape.color.capitalize(),
        COLOR=shape.color.upper(),
        shape=shape.kind,
        SHAPE=shape.kind.upper(),
        bg=background,
        BG=background.upper(),
        size=shape.size,
        pos=position_phrase,
    )


def phrasing_scenes() -> list[Scene]:
    """4 single-shape training-distribution scenes per held-out template (no jitter; the four
    shapes once each per template), from a fixed seed."""
    rng = np.random.default_rng(2929)
    out: list[Scene] = []
    while len(out) < len(HELD_OUT_TEMPLATES) * N_PHRASING_SCENES_PER_TEMPLATE:
        scene = scenes.sample_scene(rng, "train", p_two=0.0)
        s = scene.shapes[0]
        if s.kind != scenes.SHAPES[len(out) % len(scenes.SHAPES)]:
            continue
        out.append(Scene(scene.background, (scenes.make_shape(s.kind, s.color, s.position, s.size),)))
    return out


def phrasing_prompts() -> list[dict]:
    """[{prompt, seed, color, shape, background, position, size, template}]: the held-out
    phrasing set (64 prompts, seeds 3000-3063). ``position`` is None where the template
    names none (not scored)."""
    out = []
    all_scenes = phrasing_scenes()
    for k, scene in enumerate(all_scenes):
        template = HELD_OUT_TEMPLATES[k // N_PHRASING_SCENES_PER_TEMPLATE]
        s = scene.shapes[0]
        out.append(
            {
                "prompt": _fill(template, s, scene.background, HELD_OUT_POSITION_PHRASES[s.position]),
                "seed": 3000 + k,
                "color": s.color,
                "shape": s.kind,
                "background": scene.background,
                "position": s.position if "{pos}" in template else None,
                "size": s.size,
                "template": template,
            }
        )
    return out


@functools.cache
def held_out_skeletons() -> frozenset[str]:
    """The loose skeletons (``loose_skeleton``) of the held-out prompts: what training
    captions must not be."""
    return frozenset(loose_skeleton(p["prompt"]) for p in phrasing_prompts())


# ----------------------------------------------------------------------------- training paraphrases


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _color_word(rng, color: str) -> str:
    word = _pick(rng, COLOR_WORDS[color])
    form = rng.random()
    if form < 0.2:
        return f"{word}{_pick(rng, ('-colored', ' coloured', ' colored', '-coloured'))}"
    return word


def _object(rng, s: Shape, with_size: bool) -> str:
    """'big red circle', 'red big circle', 'circle in red', 'red-colored disc', ..."""
    color = _color_word(rng, s.color)
    kind = _pick(rng, SHAPE_WORDS[s.kind])
    size = _pick(rng, SIZE_WORDS[s.size]) if with_size else ""
    form = int(rng.integers(5))
    if form == 3:
        return " ".join(w for w in (size, kind, "in", s.color) if w)
    if form == 4 and with_size:
        return f"{color} {size} {kind}"
    return " ".join(w for w in (size, color, kind) if w)


def _background(rng, color: str) -> str:
    word = _pick(rng, BACKGROUND_WORDS)
    return _pick(
        rng,
        (
            f"{color} {word}",
            f"{color} {word}",
            f"{color}-colored {word}",
            f"{color} coloured {word}",
            f"{color} colored {word}",
            f"{color}-coloured {word}",
            f"plain {color} {word}",
            f"solid {color} {word}",
            f"{word} {color}",
            f"{word}: {color}",
        ),
    )


def _position(rng, position: str) -> str:
    if rng.random() < 0.3:
        return _pick(rng, scenes._POS_PHRASE[position])
    return _pick(rng, TRAIN_POSITION_PHRASES[position])


def _with_article(rng, phrase: str) -> str:
    return _pick(
        rng, (f"{_article(phrase)} {phrase}", f"{_article(phrase)} {phrase}", f"the {phrase}", phrase)
    )


def _single(rng, s: Shape, bg: str, with_size: bool, with_pos: bool) -> str:
    obj = _object(rng, s, with_size)
    pos = _position(rng, s.position) if with_pos else ""
    back = _background(rng, bg)
    thing = f"{obj} {pos}".strip()
    a_thing = _with_article(rng, obj) + (f" {pos}" if pos else "")
    form = int(rng.integers(24))
    if form >= 16:
        return _composed(rng, s, bg, with_size, with_pos)
    if form == 0:
        return f"{a_thing} {_pick(rng, ('on', 'over', 'against', 'in front of'))} {_with_article(rng, back)}"
    if form == 1:
        return f"{_with_article(rng, back)} {_pick(rng, ('with', 'and', 'behind'))} {a_thing}"
    if form == 2:  # SD-style comma list, shuffled
        parts = [obj, back] + ([pos] if pos else [])
        rng.shuffle(parts)
        return ", ".join(parts)
    if form == 3:
        parts = [_pick(rng, SHAPE_WORDS[s.kind]), s.color, back]
        if with_size:
            parts.append(_pick(rng, SIZE_WORDS[s.size]))
        if pos:
            parts.append(pos)
        rng.shuffle(parts)
        return ", ".join(parts)
    if form == 4:  # zh_prompt: "on yellow background at the right with a big purple triangle"
        return f"on {bg} background {pos + ' ' if pos else ''}with {_with_article(rng, obj)}"
    if form == 5:  # zh_prompt: "black background, in the center a white square"
        return f"{bg} background, {pos + ' ' if pos else ''}{_with_article(rng, obj)}"
    if form == 6:  # zh_prompt: "at the top left a small green star, white background"
        return f"{pos + ' ' if pos else ''}{_with_article(rng, obj)}, {bg} background"
    if form == 7:  # zh_prompt: "red circle on blue background", "an orange circle in blue on background"
        if rng.random() < 0.5:
            return f"{thing} on {bg} background"
        return f"{_with_article(rng, obj)} in {bg} on background{' ' + pos if pos else ''}"
    if form == 8:
        lead = _pick(rng, ("a picture of", "an image of", "a drawing of", "draw", "show", "render"))
        return f"{lead} {a_thing} on {_with_article(rng, back)}"
    if form == 9:
        count = _pick(rng, ("one", "a single", "just one", "exactly one"))
        return f"{count} {thing} {_pick(rng, ('on', 'against', 'over'))} {back}"
    if form == 10:
        return f"{back}. {a_thing}"
    if form == 11:
        return f"{_with_article(rng, back)}, {pos + ' ' if pos else ''}there is {_with_article(rng, obj)}"
    if form == 12:
        return f"{a_thing}, the {_pick(rng, BACKGROUND_WORDS)} is {bg}"
    if form == 13:
        verb = _pick(rng, ("placed", "sitting", "located", "drawn"))
        return f"{_with_article(rng, obj)} {verb} {pos or ''} on {back}".replace("  ", " ")
    if form == 14:
        return f"{thing} | {back}"
    return f"{a_thing} {_pick(rng, ('with', 'and'))} {_with_article(rng, back)}"


_JOINS = (", ", ", ", ". ", "; ", " - ", " | ", " / ", ", and ", " ", " with ", " and ")
_LEADS = ("", "", "", "a picture of ", "an image of ", "draw ", "a photo of ", "generate ", "show ")


def _composed(rng, s: Shape, bg: str, with_size: bool, with_pos: bool) -> str:
    """The object, the background and the position in any order (background first in a third
    of them, half where no position is named), each phrased freely, joined by commas, full stops, semicolons or words: the
    orders no fixed form covers ("on a red backdrop, a big blue star at the top")."""
    obj = _object(rng, s, with_size)
    if rng.random() < 0.6:
        obj = _with_article(rng, obj)
    back = _background(rng, bg)
    back_form = rng.random()
    if back_form < 0.25:
        back = f"{_pick(rng, ('on', 'over', 'against', 'in front of', 'with'))} {_with_article(rng, back)}"
    elif back_form < 0.4:
        back = _with_article(rng, back)
    parts = [obj, back] + ([_position(rng, s.position)] if with_pos else [])
    rng.shuffle(parts)
    text = parts[0]
    for part in parts[1:]:
        text += _pick(rng, _JOINS) + part
    return _pick(rng, _LEADS) + text


def _pair(rng, scene: Scene, with_pos: bool) -> str:
    a, b = scene.shapes
    objs = []
    for s in (a, b):
        obj = _with_article(rng, _object(rng, s, False))
        objs.append(f"{obj} {_position(rng, s.position)}" if with_pos else obj)
    back = _background(rng, scene.background)
    joined = f"{objs[0]} {_pick(rng, ('and', 'plus', 'with'))} {objs[1]}"
    return _pick(rng, (f"{joined}, {back}", f"{joined} on {_with_article(rng, back)}", f"{back}, {joined}"))


def _surface(rng, text: str) -> str:
    """Case, punctuation and dropped filler words, as people type."""
    words = text.split(" ")
    if rng.random() < 0.2:  # word dropout: only words that carry no attribute
        words = [w for w in words if w not in ("a", "an", "the", "with", "on") or rng.random() < 0.5]
    text = " ".join(w for w in words if w)
    case = rng.random()
    if case < 0.1:
        text = text.upper()
    elif case < 0.25:
        text = text[:1].upper() + text[1:]
    end = rng.random()
    if end < 0.15:
        text += "."
    elif end < 0.2:
        text += "!"
    return text


def paraphrase(
    scene: Scene,
    rng: np.random.Generator,
    with_size: bool | None = None,
    with_pos: bool | None = None,
    _forbidden: frozenset[str] | None = None,
) -> tuple[str, bool, bool]:
    """A free-phrased training caption for ``scene``: (text, named_size, named_position).
    Never one of the held-out templates (redrawn until its skeleton is not held out)."""
    forbidden = held_out_skeletons() if _forbidden is None else _forbidden
    two = len(scene.shapes) == 2
    ws = (not two and bool(rng.random() < 0.5)) if with_size is None else with_size
    wp = bool(rng.random() < 0.75) if with_pos is None else with_pos
    while True:
        if two:
            text = _pair(rng, scene, wp)
        else:
            text = _single(rng, scene.shapes[0], scene.background, ws, wp)
        text = _surface(rng, " ".join(text.split()))
        if loose_skeleton(text) not in forbidden:
            return text, ws, wp


def original_caption(scene: Scene, rng: np.random.Generator, with_size: bool, with_pos: bool) -> str:
    """One of the original phrasings (``scenes.caption``) naming the same attributes."""
    if len(scene.shapes) == 2:
        return scenes.caption(scene, rng, template=int(rng.integers(2)) if with_pos else 2)
    return scenes.caption(scene, rng, with_size=with_size, with_pos=with_pos)


__all__ = [
    "HELD_OUT_TEMPLATES",
    "held_out_skeletons",
    "loose_skeleton",
    "original_caption",
    "paraphrase",
    "phrasing_prompts",
    "phrasing_scenes",
    "skeleton",
]
