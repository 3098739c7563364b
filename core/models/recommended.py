"""A model's own recommended generation settings (``easel.json`` in a diffusers folder).

Model authors publish settings their model needs (Z-Image-Turbo: 8 steps, no CFG; the demo
model: Euler, 20 steps, CFG 4 with a late CFG of 1.5). A folder may carry them:

    {"recommended": {"steps": 20, "cfg_scale": 6, "late_cfg_scale": 2, "late_cfg_start": 0.5}}

A request field left empty (None) takes the model's value before the family's default; a
value the user gives always wins. The file is untrusted input like the weights: unknown keys
and wrong types are a ModelError naming the file and the key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from core.errors import ModelError

RECOMMENDED_FILE = "easel.json"

# key -> accepted type (the request field of the same name)
RECOMMENDED_FIELDS: dict[str, type] = {
    "width": int,
    "height": int,
    "steps": int,
    "cfg_scale": float,
    "late_cfg_scale": float,
    "late_cfg_start": float,
    "sampler": str,
}


def read_recommended(folder: Path) -> dict[str, Any]:
    """The folder's recommended settings ({} when it has no ``easel.json``)."""
    path = folder / RECOMMENDED_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("recommended", {}), dict):
        raise ModelError(f'{path}: expected {{"recommended": {{...}}}}')
    settings = data.get("recommended", {})
    out: dict[str, Any] = {}
    for key, value in settings.items():
        kind = RECOMMENDED_FIELDS.get(key)
        if kind is None:
            known = ", ".join(RECOMMENDED_FIELDS)
            raise ModelError(f"{path}: unknown setting {key!r} (known: {known})")
        out[key] = _checked(path, key, value, kind)
    return out


def _checked(path: Path, key: str, value: Any, kind: type) -> Any:
    if kind is str:
        if not isinstance(value, str) or not value.strip():
            raise ModelError(f"{path}: {key!r} must be text, got {value!r}")
        return value
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or (kind is int and not float(value).is_integer()):
        raise ModelError(f"{path}: {key!r} must be a {'whole ' if kind is int else ''}number, got {value!r}")
    return kind(value)
