"""AUTOMATIC1111's "infotext": the ``parameters`` text stored with every image.

Format (what Civitai and every "PNG Info" tool read)::

    a cat on a sofa
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: ..., Model: ...

Values that contain a comma, a colon or a newline are written as JSON strings
(``"..."``), as A1111's ``quote`` does; ``parse_infotext`` follows A1111's
``parse_generation_parameters``.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Easel's fields for the prompts the model actually saw, when transform_prompt hooks changed
# them; the prompt lines themselves keep what the user wrote (see core/engine.py)
TRANSFORMED_PROMPT = "Transformed prompt"
TRANSFORMED_NEGATIVE_PROMPT = "Transformed negative prompt"

_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_RE_IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")


def quote(value: Any) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def format_number(value: float | int) -> str:
    """A1111 writes 7.0 as 7 and 7.5 as 7.5."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_infotext(prompt: str, negative_prompt: str, params: dict[str, Any]) -> str:
    """The A1111 text for one image. ``params`` is ordered; ``None`` values are left out;
    a key whose value equals the key is written bare (A1111 does that for flags)."""
    fields = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, float | int) and not isinstance(value, bool):
            value = format_number(value)
        fields.append(key if key == value else f"{key}: {quote(value)}")
    negative = f"\nNegative prompt: {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{', '.join(fields)}".strip()


def parse_infotext(text: str) -> dict[str, Any]:
    """Parse A1111 infotext into ``{"Prompt", "Negative prompt", "Steps", ...}``.

    ``Size: 512x512`` gives ``Size-1``/``Size-2`` (width, height) *instead of* ``Size``, and a
    field with an empty value is left out, both as A1111 does (its ``else: res[k] = v``, and
    the ``v[0]`` that raises on an empty value, skipping the field); every value is a string.
    """
    result: dict[str, Any] = {}
    prompt, negative = "", ""
    done_with_prompt = False
    *lines, last_line = text.strip().split("\n")
    if len(_RE_PARAM.findall(last_line)) < 3:
        lines.append(last_line)
        last_line = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[len("Negative prompt:") :].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    result["Prompt"] = prompt
    result["Negative prompt"] = negative
    for key, value in _RE_PARAM.findall(last_line):
        if not value:
            continue
        value = unquote(value)
        size = _RE_IMAGE_SIZE.match(value)
        if size is not None:
            result[f"{key}-1"] = size.group(1)
            result[f"{key}-2"] = size.group(2)
        else:
            result[key] = value
    return result
