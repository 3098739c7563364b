"""A grid's infotext: its first cell's, with the plot's fields added as A1111 adds them."""

from __future__ import annotations

import json


def quote(value: str) -> str:
    """A1111's infotext quoting: a value with a comma, colon or newline goes in JSON quotes."""
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def add_fields(infotext: str, fields: dict[str, str]) -> str:
    """``infotext`` with ``fields`` on its parameters line, before ``Version`` (where A1111's
    extra generation parameters go)."""
    extra = ", ".join(f"{key}: {quote(value)}" for key, value in fields.items())
    if not extra:
        return infotext
    head, newline, last = infotext.rpartition("\n")
    marker = last.find("Version: ")
    if marker > 0 and last[:marker].endswith(", "):
        last = f"{last[:marker]}{extra}, {last[marker:]}"
    else:
        last = f"{last}, {extra}" if last else extra
    return f"{head}{newline}{last}"
