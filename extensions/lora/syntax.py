"""The A1111 LoRA prompt syntax: ``<lora:name>``, ``<lora:name:0.8>`` and
``<lora:name:unet=0.8:te=0.5>``, plus the structured ``extension_args["lora"]`` field.

Tags are removed from the text the encoder sees; what stays is tidied (no doubled commas
or spaces left behind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TAG_RE = re.compile(r"<lora:([^:<>]+)((?::[^:<>]*)*)>", re.IGNORECASE)


@dataclass
class LoraUse:
    """One LoRA a request asks for: ``unet`` scales the denoiser's adapter, ``te`` the
    text encoder's (A1111's ``te``/``unet`` multipliers)."""

    name: str
    unet: float = 1.0
    te: float = 1.0

    @property
    def active(self) -> bool:
        return self.unet != 0.0 or self.te != 0.0


class LoraSyntaxError(ValueError):
    pass


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LoraSyntaxError(f"{where}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise LoraSyntaxError(f"{where}: {text!r} is not a finite number")
    return value


def parse_tag_args(name: str, args: list[str]) -> LoraUse:
    """``["0.8"]`` or ``["unet=0.8", "te=0.5"]`` (a bare first number sets both, as in
    A1111; a bare second number sets the denoiser's weight)."""
    use = LoraUse(name.strip())
    where = f"<lora:{name}>"
    for position, raw in enumerate(a.strip() for a in args):
        if raw == "":
            continue
        if "=" in raw:
            key, _, value = raw.partition("=")
            key = key.strip().lower()
            number = _number(value.strip(), where)
            if key == "unet":
                use.unet = number
            elif key == "te":
                use.te = number
            else:
                raise LoraSyntaxError(f"{where}: unknown option {key!r} (use te= or unet=)")
        elif position == 0:
            use.te = use.unet = _number(raw, where)
        elif position == 1:
            use.unet = _number(raw, where)
        else:
            raise LoraSyntaxError(f"{where}: too many weights")
    return use


def extract_tags(prompt: str) -> tuple[str, list[LoraUse], list[str]]:
    """The prompt without its ``<lora:...>`` tags, the LoRAs asked for, and problems
    (a malformed tag is removed and reported, never sent to the encoder)."""
    uses: list[LoraUse] = []
    problems: list[str] = []

    def take(match: re.Match[str]) -> str:
        args = match.group(2)[1:].split(":") if match.group(2) else []
        try:
            uses.append(parse_tag_args(match.group(1), args))
        except LoraSyntaxError as exc:
            problems.append(str(exc))
        return ""

    stripped = TAG_RE.sub(take, prompt)
    return tidy(stripped), uses, problems


def tidy(prompt: str) -> str:
    """Collapse what removed tags leave behind: ``"a cat, , blue"`` -> ``"a cat, blue"``."""
    text = re.sub(r"[ \t]+", " ", prompt)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    text = re.sub(r" +,", ",", text)
    return text.strip().strip(",").strip()


def from_extension_args(value: Any) -> tuple[list[LoraUse], list[str]]:
    """``{"loras": [{"name": "x", "weight": 0.8, "te": 0.5, "unet": 0.8}]}`` (or the
    bare list) -> uses and problems; bad entries are reported and skipped."""
    if value is None:
        return [], []
    entries = value.get("loras", []) if isinstance(value, dict) else value
    if not isinstance(entries, list):
        return [], ['extension_args["lora"]["loras"] must be a list of {"name", "weight"}']
    uses, problems = [], []
    for index, entry in enumerate(entries):
        where = f'extension_args["lora"]["loras"][{index}]'
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            problems.append(f"{where}: needs a 'name' (text)")
            continue
        try:
            weight = _number(str(entry.get("weight", 1.0)), where)
            uses.append(
                LoraUse(
                    entry["name"].strip(),
                    unet=_number(str(entry.get("unet", weight)), where),
                    te=_number(str(entry.get("te", weight)), where),
                )
            )
        except LoraSyntaxError as exc:
            problems.append(str(exc))
    return uses, problems


def check_extension_args(value: Any) -> list[tuple[str, str]]:
    """``extension_args["lora"]`` checked strictly, for ``validate_request``: raises
    InvalidRequest naming the field (``extension_args.lora.loras.0.weight``) for a bad
    shape or a weight that is not a finite number; returns (field, name) per entry so the
    caller can check that each LoRA exists."""
    from plugin_api.errors import InvalidRequest

    if value is None:
        return []
    base = "extension_args.lora"
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"loras"})
        if unknown:
            raise InvalidRequest(
                f"{base}.{unknown[0]}", 'unknown key; expected {"loras": [{"name", "weight"}]}'
            )
        entries, base = value.get("loras", []), f"{base}.loras"
    else:
        entries = value
    if not isinstance(entries, list):
        raise InvalidRequest(base, 'must be a list of {"name", "weight"}')
    named = []
    for index, entry in enumerate(entries):
        where = f"{base}.{index}"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise InvalidRequest(f"{where}.name", "needs a LoRA name (text)")
        for key in ("weight", "te", "unet"):
            if key not in entry:
                continue
            raw = entry[key]
            try:
                if isinstance(raw, bool) or not isinstance(raw, int | float | str):
                    raise LoraSyntaxError("not a number")
                _number(str(raw), where)
            except (LoraSyntaxError, OverflowError):
                raise InvalidRequest(f"{where}.{key}", f"must be a finite number, got {raw!r}") from None
        named.append((f"{where}.name", entry["name"].strip()))
    return named


def format_tag(name: str, weight: float = 1.0) -> str:
    return f"<lora:{name}:{weight:g}>"
