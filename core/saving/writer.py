"""Writing images: A1111 folder and file names, atomic writes, metadata in the file.

``outputs/txt2img-images/2026-01-31/00042-123456.png``: the number continues from the
highest one in the folder (a lock makes it safe across threads of one process); the file
is written to a temporary name in the same folder and renamed, so a reader never sees a
half-written image. PNGs carry the infotext in a ``parameters`` text chunk; JPEG and WebP
in EXIF UserComment (UTF-16, "UNICODE" prefix), as A1111 does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image, PngImagePlugin

from core.saving.filenames import NameFields
from core.saving.output_settings import MAX_SAME_NAME, OutputOptions, file_name

log = logging.getLogger("easel.saving")
EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
UNICODE_PREFIX = b"UNICODE\x00"
FORMATS = {
    "png": ("PNG", ".png"),
    "jpeg": ("JPEG", ".jpg"),
    "jpg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
}
_NUMBERED = re.compile(r"^(\d{5,})[-.]")
_folder_locks: dict[str, threading.Lock] = {}
_folder_locks_guard = threading.Lock()


def _lock_for(folder: Path) -> threading.Lock:
    with _folder_locks_guard:
        return _folder_locks.setdefault(str(folder.resolve()), threading.Lock())


def next_number(folder: Path) -> int:
    highest = -1
    if folder.is_dir():
        for entry in os.scandir(folder):
            match = _NUMBERED.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


def encode_user_comment(text: str) -> bytes:
    return UNICODE_PREFIX + text.encode("utf-16-be")


def decode_user_comment(raw: bytes | str) -> str:
    if isinstance(raw, str):
        return raw
    if raw.startswith(UNICODE_PREFIX):
        body = raw[len(UNICODE_PREFIX) :]
        # A1111 (piexif) writes big-endian; some tools write little-endian with a BOM
        if body.startswith(b"\xff\xfe"):
            return body[2:].decode("utf-16-le", errors="replace")
        return body.decode("utf-16-be", errors="replace")
    if raw.startswith(b"ASCII\x00\x00\x00"):
        return raw[8:].decode("ascii", errors="replace")
    return raw.decode("utf-8", errors="replace").strip("\x00")


def save_image(
    image: Image.Image,
    outputs_dir: Path,
    mode: str,
    seed: int,
    infotext: str,
    output_format: str = "png",
    today: dt.date | None = None,
    before_rename: Callable[[Path, Path], None] | None = None,
    stem: str | None = None,
    options: OutputOptions | None = None,
    fields: NameFields | None = None,
) -> Path:
    """Write ``image`` with its infotext; return the final path.

    ``options``: the saving settings (folders, name pattern, quality: see
    core/saving/output_settings.py); A1111's layout when None. ``fields``: what the name
    pattern may use (the seed alone when None). ``output_format`` wins over the settings'.
    ``before_rename(tmp, final)`` runs once the temporary file is on disk and before it
    gets its final name (the job's image journal records both there: core/saving/journal.py).
    ``stem``: a fixed file name (without suffix) instead of the pattern. Workers that
    share a queue name images by job id and index, so a job run again after its worker
    died replaces the files of the lost run instead of adding a second set.
    """
    options = options or OutputOptions()
    pil_format, suffix = FORMATS[output_format.lower()]
    if fields is None:
        fields = NameFields(seed=seed)
    if today is not None:
        fields = dataclasses.replace(fields, now=dt.datetime.combine(today, fields.now.time()))
    folder = options.folder(Path(outputs_dir), mode, fields)
    folder.mkdir(parents=True, exist_ok=True)
    with _lock_for(folder):
        path = folder / f"{stem}{suffix}" if stem is not None else _free_name(folder, options, fields, suffix)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
        try:
            give_normal_mode(fd)
            with os.fdopen(fd, "wb") as f:
                _write(image, f, pil_format, infotext, options)
                f.flush()
                os.fsync(f.fileno())  # complete on disk before anything refers to it
            if before_rename is not None:
                before_rename(Path(tmp_name), path)
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    return path


_GRID_BASENAME = re.compile(r"^[A-Za-z0-9_]{1,40}$")


def grid_folder(mode: str) -> str:
    """A1111's grid folders: ``txt2img-grids`` / ``img2img-grids``."""
    return "txt2img-grids" if mode == "txt2img" else "img2img-grids"


def next_grid_number(folder: Path, basename: str) -> int:
    """A1111's sequence for named grids: the number after ``<basename>-`` in the folder's
    file names, highest + 1 (``xyz_grid-0003-42.png`` -> 4)."""
    prefix = f"{basename}-"
    highest = -1
    if folder.is_dir():
        for entry in os.scandir(folder):
            if entry.name.startswith(prefix):
                number = entry.name[len(prefix) :].split("-", 1)[0].split(".", 1)[0]
                if number.isdigit():
                    highest = max(highest, int(number))
    return highest + 1


def save_grid(
    image: Image.Image,
    outputs_dir: Path,
    mode: str,
    basename: str,
    seed: int,
    infotext: str,
    output_format: str = "png",
    today: dt.date | None = None,
    options: OutputOptions | None = None,
) -> Path:
    """Write a grid as A1111 names grids: ``outputs/txt2img-grids/<date>/<basename>-NNNN-<seed>.png``
    (a four-digit number per basename, then the first image's seed), atomically, with its
    infotext. ``basename`` is a plain word (letters, digits, "_"): it never becomes a path.
    ``options``: the saving settings (jpeg quality, lossless webp); their defaults when None."""
    if not isinstance(basename, str) or not _GRID_BASENAME.match(basename):
        raise ValueError(f"grid basename {basename!r}: use letters, digits and '_' only")
    pil_format, suffix = FORMATS[output_format.lower()]
    folder = Path(outputs_dir) / grid_folder(mode) / (today or dt.date.today()).isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    with _lock_for(folder):
        path = folder / f"{basename}-{next_grid_number(folder, basename):04d}-{int(seed)}{suffix}"
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
        try:
            give_normal_mode(fd)
            with os.fdopen(fd, "wb") as f:
                _write(image, f, pil_format, infotext, options or OutputOptions())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    return path


def _free_name(folder: Path, options: OutputOptions, fields: NameFields, suffix: str) -> Path:
    """The next A1111 number with the pattern's name; without numbers, the pattern's name
    or, when that file exists, ``name-1``, ``name-2``... (an image is never overwritten)."""
    decoration = options.decoration(fields)
    if options.add_number:
        number = next_number(folder)
        for attempt in range(MAX_SAME_NAME):
            path = folder / file_name(decoration, number + attempt, suffix)
            if not path.exists():
                return path
    else:
        path = folder / file_name(decoration, None, suffix)
        stem = path.stem
        for attempt in range(1, MAX_SAME_NAME):
            if not path.exists():
                return path
            path = folder / f"{stem}-{attempt}{suffix}"
    raise FileExistsError(f"no free file name for {decoration!r} in {folder}")


def _current_umask() -> int:
    """The process's umask, read without changing it where the system allows (changing
    it, even for a moment, races with every other thread creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files; an output is an ordinary file: 0666 less the user's umask
NORMAL_FILE_MODE = 0o666 & ~_current_umask()


def give_normal_mode(fd: int) -> None:
    """Give a file made by ``tempfile.mkstemp`` the mode ``open()`` would have given it."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, NORMAL_FILE_MODE)


def _write(image: Image.Image, f, pil_format: str, infotext: str, options: OutputOptions) -> None:
    if pil_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("parameters", infotext)
        image.save(f, format="PNG", pnginfo=info)
        return
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = encode_user_comment(infotext)
    quality = {"quality": options.jpeg_quality}
    if pil_format == "WEBP" and options.webp_lossless:
        quality = {"lossless": True}
    rgb = image.convert("RGB") if pil_format == "JPEG" or image.mode not in ("RGB", "RGBA") else image
    try:
        rgb.save(f, format=pil_format, exif=exif.tobytes(), **quality)
    except ValueError as exc:  # JPEG's EXIF segment holds 64 KB: about 32,000 characters
        if "EXIF data is too long" not in str(exc):
            raise
        log.warning(
            "the parameters (%d characters) do not fit in JPEG EXIF; saved without them", len(infotext)
        )
        f.seek(0)
        f.truncate()
        rgb.save(f, format=pil_format, **quality)


def read_infotext(path: str | Path) -> str | None:
    """The A1111 parameters stored in an image file, or None."""
    with Image.open(path) as image:
        return infotext_of(image)


def infotext_of(image: Image.Image) -> str | None:
    """The A1111 parameters of an opened image: a PNG's ``parameters`` text chunk, else a
    JPEG's or WebP's EXIF UserComment (where A1111 writes them); None without either."""
    text = image.info.get("parameters")
    if isinstance(text, str):
        return text
    try:
        raw = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    except Exception:  # a damaged EXIF block: no parameters, not an error
        return None
    return decode_user_comment(raw) if raw else None
