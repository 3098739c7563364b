"""Wildcards (as A1111's dynamic prompts): ``__color__`` in a prompt becomes a line of
``wildcards/color.txt``, chosen per image from that image's seed, so every image of a
batch gets its own prompt and the same seed always makes the same choice."""

from __future__ import annotations

import random
import re
from pathlib import Path

from plugin_api import InvalidRequest, hookimpl

WILDCARD = re.compile(r"__([A-Za-z0-9_-]+)__")
FOLDER = Path(__file__).parent / "wildcards"


def options(name: str) -> list[str]:
    path = FOLDER / f"{name}.txt"
    if not path.is_file():
        raise InvalidRequest("prompt", f"no wildcard file {name}.txt")
    return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]


def expand(prompt: str, seed: int) -> str:
    rng = random.Random(seed)
    return WILDCARD.sub(lambda match: rng.choice(options(match.group(1))), prompt)


@hookimpl(trylast=True)  # per-image prompts last: request-level edits (translation...) come first
def transform_prompt(request, ctx):
    if not WILDCARD.search(request.prompt):
        return
    ctx.prompts = [expand(prompt, seed) for prompt, seed in zip(ctx.prompts, ctx.seeds, strict=True)]
    ctx.extra_params["Wildcard prompt"] = request.prompt
