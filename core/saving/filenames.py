"""A1111's file and folder name patterns (``samples_filename_pattern``,
``directories_filename_pattern``): ``[seed]-[prompt_words]`` becomes ``1234-a_red_circle``.

The tags and their values follow A1111's ``modules/images.py`` (``FilenameGenerator``):
``[seed]``, ``[seed_first]``, ``[seed_last]``, ``[steps]``, ``[cfg]``, ``[width]``,
``[height]``, ``[sampler]``, ``[scheduler]``, ``[styles]``, ``[model_name]``,
``[model_hash]``, ``[vae_filename]``, ``[clip_skip]``, ``[batch_number]``,
``[generation_number]``, ``[prompt]``, ``[prompt_spaces]``, ``[prompt_words]``,
``[prompt_no_styles]``, ``[prompt_hash]``, ``[negative_prompt_hash]``,
``[full_prompt_hash]``, ``[date]``, ``[datetime]``, ``[datetime<%Y%m%d>]``,
``[job_timestamp]``, ``[denoising]``, ``[none]``. An unknown tag stays as written, as in A1111.

Every value is sanitised as A1111's ``sanitize_filename_part`` does (path separators and
characters Windows refuses become ``_``), so a prompt can never add a folder to a name.
The pattern itself is a setting anyone who reaches the API can change: ``check_pattern``
refuses separators in a file pattern and ``..``, absolute paths and device names in a
folder pattern, and the writer confines the result to the outputs folder again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import string
from dataclasses import dataclass, field
from typing import Any

# A1111's invalid_filename_chars, prefix and postfix (modules/images.py)
INVALID_CHARS = '#<>:"/\\|?*\n\r\t'
INVALID_PREFIX = " "
INVALID_POSTFIX = " ."
MAX_PART_LENGTH = 128  # A1111's max_filename_part_length
MAX_PROMPT_WORDS = 8  # A1111's directories_max_prompt_words default
MAX_PATTERN_LENGTH = 256
DEFAULT_DATETIME_FORMAT = "%Y%m%d%H%M%S"
# A1111's re_nonletters: words are split at white space and punctuation
_NON_LETTERS = re.compile(r"[\s" + re.escape(string.punctuation) + r"]+")
_TAG = re.compile(r"\[(\w+)((?:<[^>]*>)*)\]")
# names Windows keeps for devices, with or without an extension (CON, NUL.txt, COM1...):
# a folder or file by that name is a device there, and a shared outputs folder can be read
# from Windows
DEVICE_NAMES = re.compile(r"^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.I)


def sanitize_part(text: str, replace_spaces: bool = True) -> str:
    """A1111's ``sanitize_filename_part``."""
    if replace_spaces:
        text = text.replace(" ", "_")
    text = text.translate({ord(c): "_" for c in INVALID_CHARS})
    text = "".join("_" if ord(c) < 32 or 0x7F <= ord(c) <= 0x9F else c for c in text)
    text = text.lstrip(INVALID_PREFIX)[:MAX_PART_LENGTH]
    return text.rstrip(INVALID_POSTFIX)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]  # A1111: sha256, 8 digits


@dataclass
class NameFields:
    """What a pattern can name about one image."""

    seed: int
    prompt: str = ""
    negative_prompt: str = ""
    seeds: list[int] = field(default_factory=list)  # every seed of the request
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    sampler: str = ""
    scheduler: str = ""
    styles: list[str] = field(default_factory=list)
    model_name: str = ""
    model_hash: str = ""
    vae_filename: str = ""
    clip_skip: int | None = None
    batch_number: int = 0  # position in its batch
    generation_number: int = 0  # index in the request
    denoising: float | None = None
    prompt_no_styles: str | None = None
    now: dt.datetime = field(default_factory=dt.datetime.now)
    job_timestamp: str = ""


def _datetime(fields: NameFields, args: list[str]) -> str:
    fmt = args[0] if args and args[0] else DEFAULT_DATETIME_FORMAT
    when = fields.now
    if len(args) > 1 and args[1]:
        try:
            from zoneinfo import ZoneInfo

            when = when.astimezone(ZoneInfo(args[1]))
        except (ValueError, KeyError, OSError):
            pass  # A1111: an unknown zone keeps the local time
    try:
        text = when.strftime(fmt)
    except (ValueError, TypeError):
        text = when.strftime(DEFAULT_DATETIME_FORMAT)
    return sanitize_part(text, replace_spaces=False)


def _value(tag: str, args: list[str], f: NameFields) -> str | None:
    """The text of ``[tag<args>]``; None for a tag A1111 does not know."""
    words = [w for w in _NON_LETTERS.split(f.prompt or "") if w] or ["empty"]
    simple: dict[str, Any] = {
        "seed": f.seed,
        "seed_first": f.seeds[0] if f.seeds else f.seed,
        "seed_last": f.seeds[-1] if f.seeds else f.seed,
        "steps": f.steps,
        "cfg": f.cfg_scale,  # str() as A1111: 7.0 is "7.0"
        "width": f.width,
        "height": f.height,
        "clip_skip": f.clip_skip,
        "batch_number": f.batch_number,
        "generation_number": f.generation_number,
        "denoising": f.denoising,
        "model_hash": f.model_hash,
        "job_timestamp": f.job_timestamp or f.now.strftime(DEFAULT_DATETIME_FORMAT),
        "date": f.now.date().isoformat(),
        "none": "",
    }
    if tag in simple:
        value = simple[tag]
        return "" if value is None else sanitize_part(str(value))
    texts = {
        "sampler": (f.sampler, False),
        "scheduler": (f.scheduler, False),
        "styles": (", ".join(s for s in f.styles if s != "None") or "None", False),
        "model_name": (f.model_name, False),
        "vae_filename": (f.vae_filename or "NoneType", False),
        "prompt": (f.prompt, True),
        "prompt_spaces": (f.prompt, False),
        "prompt_words": (" ".join(words[:MAX_PROMPT_WORDS]), False),
        "prompt_no_styles": (f.prompt_no_styles if f.prompt_no_styles is not None else f.prompt, False),
        "prompt_hash": (_hash(f.prompt), False),
        "negative_prompt_hash": (_hash(f.negative_prompt), False),
        "full_prompt_hash": (_hash(f"{f.prompt} {f.negative_prompt}"), False),
    }
    if tag in texts:
        text, replace_spaces = texts[tag]
        return sanitize_part(text, replace_spaces=replace_spaces)
    if tag == "datetime":
        return _datetime(f, args)
    return None


def apply_pattern(pattern: str, fields: NameFields) -> str:
    """``pattern`` with every known tag replaced (tags are case-insensitive, as A1111's)."""

    def replace(match: re.Match[str]) -> str:
        args = re.findall(r"<([^>]*)>", match.group(2))
        value = _value(match.group(1).lower(), args, fields)
        return match.group(0) if value is None else value

    return _TAG.sub(replace, pattern)


def check_pattern(pattern: Any, what: str, folders: bool) -> None:
    """``ValueError`` naming ``what`` when ``pattern`` could name something outside its
    folder: a file pattern holds no separator; a folder pattern is relative, without ``..``
    or device names. (What the tags put in is sanitised and cannot add a separator.)"""
    if not isinstance(pattern, str):
        raise ValueError(f"{what} must be text, not {pattern!r}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_PATTERN_LENGTH} characters")
    if any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in pattern):
        raise ValueError(f"{what} must not contain control characters")
    if not folders and ("/" in pattern or "\\" in pattern):
        raise ValueError(f"{what} names a file, not folders: no '/' or '\\' ({pattern!r})")
    check_relative_parts(pattern, what)


def check_relative_parts(value: str, what: str) -> None:
    """A relative path whose parts are all plain names (no ``..``, no drive, no device)."""
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value) or value.startswith("~"):
        raise ValueError(f"{what} must be relative to the outputs folder, not {value!r}")
    for part in re.split(r"[\\/]+", value):
        if part in {".", ".."}:
            raise ValueError(f"{what} must not contain '{part}' ({value!r})")
        if DEVICE_NAMES.match(part.strip()):
            raise ValueError(f"{what} names a device ({part!r})")
