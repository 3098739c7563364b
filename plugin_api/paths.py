"""Paths that come from users (settings, requests, forms) confined to a folder.

A setting or a form field that names a file is data, not a path the server may follow
anywhere: a web page can reach a loopback server (DNS rebinding, CSRF), so a value such as
``../../home/me/.bashrc`` must never be read or written. ``confine`` resolves a value
against its folder (following symlinks, so a link planted inside cannot point out) and
refuses anything that lands outside. The core and extensions share this one check.
"""

from __future__ import annotations

import re
from pathlib import Path

# C0 and C1 control characters and DEL: never part of a name a person typed, and NUL cuts
# paths short in C code (the classic "file.tsv\0.png").
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class UnsafePathError(ValueError):
    """A user-supplied value that is not a safe name or path; the message names ``what``."""


def refuse_control_characters(value: str, what: str) -> None:
    match = _CONTROL.search(value)
    if match is not None:
        raise UnsafePathError(f"{what} must not contain control characters (found {match.group()!r})")


def confine(root: Path, value: str | Path, what: str) -> Path:
    """``value`` (relative to ``root``, or absolute but inside it) as a resolved path inside
    ``root``; ``UnsafePathError`` naming ``what`` otherwise. ``root`` itself is refused:
    a value must name something in the folder, not the folder."""
    text = str(value)
    refuse_control_characters(text, what)
    if not text.strip():
        raise UnsafePathError(f"{what} is empty")
    base = Path(root).resolve()
    # resolve() follows every symlink that exists, so "inside" is checked on the real path
    target = (base / text).resolve()
    if target == base or not target.is_relative_to(base):
        raise UnsafePathError(f"{what} must name something inside {base}, not {text!r}")
    return target


def is_plain_name(value: str) -> bool:
    """A single file or folder name: no separators, not ``.``/``..``, no control chars."""
    return (
        bool(value)
        and value not in {".", ".."}
        and "/" not in value
        and "\\" not in value
        and _CONTROL.search(value) is None
    )
