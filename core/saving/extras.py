"""Saving Extras (postprocessing) results the way A1111 does.

A1111's ``run_postprocessing`` saves each result with ``images.save_image(...,
basename="", short_filename=True, no_prompt=True, pnginfo_section_name="extras")``: in
``outputs/extras-images`` itself (no date folder), named by the next sequence number alone
(``00000.png``, ``00001.png``: the number of the name's first ``-``-separated part, +1).
The PNG keeps the source image's text chunks (its ``parameters``) and gets the
postprocessing infotext (``Postprocess upscale by: 2, Postprocess upscaler: ...``) twice,
as ``postprocessing`` and ``extras``. Written to a temporary name in the folder, then
renamed, like every other output.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from core.saving.infotext import quote
from core.saving.writer import _lock_for, give_normal_mode

EXTRAS_FOLDER = "extras-images"
_LEADING_NUMBER = re.compile(r"^(\d+)(?:[-.]|$)")
# text chunks of the source image that are carried over (A1111 keeps the whole pnginfo;
# only text is meaningful in a PNG written from scratch)
MAX_CARRIED_CHUNK = 64 * 1024


def postprocessing_infotext(info: dict[str, Any]) -> str:
    """A1111's postprocessing line: ``key: value`` pairs joined by ", " (a value equal to
    its key written bare, ``None`` left out, values with , : or newlines quoted)."""
    return ", ".join(
        key if key == value else f"{key}: {quote(value)}" for key, value in info.items() if value is not None
    )


def next_sequence_number(folder: Path) -> int:
    """A1111's ``get_next_sequence_number(path, "")``: one above the highest number any
    file name starts with (``00007.png`` and ``00007-x.png`` count as 7)."""
    highest = -1
    if folder.is_dir():
        for entry in os.scandir(folder):
            match = _LEADING_NUMBER.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def carried_text(source_info: dict[str, Any] | None) -> dict[str, str]:
    """The source image's text chunks worth keeping: strings only, bounded in size."""
    kept = {}
    for key, value in (source_info or {}).items():
        if isinstance(key, str) and isinstance(value, str) and len(value) <= MAX_CARRIED_CHUNK:
            kept[key] = value
    return kept


def save_extras_image(
    image: Image.Image, outputs_dir: Path, info: dict[str, Any], source_info: dict[str, Any] | None = None
) -> Path:
    """Write one Extras result as ``<outputs>/extras-images/NNNNN.png``; returns its path.

    ``info``: the postprocessing fields in order (``{"Postprocess upscale by": 2,
    "Postprocess upscaler": "R-ESRGAN 4x+"}``); ``source_info``: the source image's
    ``Image.info`` (its ``parameters`` chunk is kept, as A1111 keeps it)."""
    folder = Path(outputs_dir) / EXTRAS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    text = postprocessing_infotext(info)
    chunks = carried_text(source_info)
    chunks["postprocessing"] = text
    chunks["extras"] = text
    pnginfo = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        pnginfo.add_text(key, value)
    with _lock_for(folder):
        path = folder / f"{next_sequence_number(folder):05d}.png"
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=folder)
        try:
            give_normal_mode(fd)
            with os.fdopen(fd, "wb") as f:
                image.save(f, format="PNG", pnginfo=pnginfo)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    return path
