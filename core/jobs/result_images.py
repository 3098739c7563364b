"""Result images any node can serve (``--result-images`` / ``EASEL_RESULT_IMAGES``).

``shared-folder`` (the default): a worker writes its images into its data folder's
``outputs/`` and the API node serves them from its own, so workers on other machines need
that folder mounted (docs/workers.md). ``db``: a worker also stores each image's bytes, as
written (PNG/JPEG/WebP with its infotext), in the queue, in the same transaction that
finishes the job; the API node, asked for an image it does not have on disk, writes those
bytes atomically under the same relative name into its own folder and serves that file,
so the next request is served from disk.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import SettingError
from core.saving.writer import give_normal_mode

RESULT_IMAGES_VARIABLE = "EASEL_RESULT_IMAGES"
MAX_MB_VARIABLE = "EASEL_RESULT_IMAGE_MAX_MB"
SHARED_FOLDER = "shared-folder"
DB = "db"
MODES = (SHARED_FOLDER, DB)
# One image in a database row: a 4096x4096 PNG is about 30 MB at worst. Both databases
# take far more (SQLite 1 GB, PostgreSQL bytea 1 GB), but every image passes through the
# API node's memory once; larger ones are refused with an error naming the setting.
DEFAULT_MAX_MB = 64.0
# Where a stored image goes on the API node: the outputs folder, or (save_images=false)
# the transient folder of unsaved results.
OUTPUTS, TRANSIENT = "outputs", "transient"


class ResultImageError(RuntimeError):
    """An image could not be stored in or read back from the queue."""


@dataclass(frozen=True)
class ResultImage:
    """One image of a finished job, as stored in the queue."""

    index: int
    root: str  # OUTPUTS or TRANSIENT
    name: str  # relative to that folder, '/'-separated
    data: bytes


def result_images_mode(flag: str | None) -> str:
    """The flag, else the variable, else shared-folder; anything else names the setting."""
    raw = (flag or os.environ.get(RESULT_IMAGES_VARIABLE) or SHARED_FOLDER).strip().lower()
    if raw not in MODES:
        raise SettingError(
            f"--result-images / {RESULT_IMAGES_VARIABLE}: {raw!r} is not one of {', '.join(MODES)}"
        )
    return raw


def max_image_bytes(flag_mb: float | None = None) -> int:
    """The per-image bound in bytes (``--result-image-max-mb`` / EASEL_RESULT_IMAGE_MAX_MB)."""
    raw = flag_mb if flag_mb is not None else os.environ.get(MAX_MB_VARIABLE, "").strip() or DEFAULT_MAX_MB
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"--result-image-max-mb / {MAX_MB_VARIABLE}: {raw!r} is not a number") from None
    if value <= 0:
        raise SettingError(f"--result-image-max-mb / {MAX_MB_VARIABLE}: {raw!r} must be > 0")
    return int(value * 1024 * 1024)


def _relative(path: Path, roots: dict[str, Path]) -> tuple[str, str] | None:
    resolved = path.resolve()
    for kind, root in roots.items():
        if resolved.is_relative_to(root):
            return kind, resolved.relative_to(root).as_posix()
    return None


def read_result_images(
    job_id: str, paths: list[str], roots: dict[str, Path], max_bytes: int
) -> tuple[list[dict[str, Any]], list[ResultImage]]:
    """The files a job wrote, read for the queue: (their entries for the result JSON,
    the images). Raises ResultImageError naming the setting for one over the bound."""
    entries: list[dict[str, Any]] = []
    images: list[ResultImage] = []
    for index, name in enumerate(paths):
        where = _relative(Path(name), roots)
        if where is None:
            raise ResultImageError(f"job {job_id}: image {name} lies outside the image folders")
        size = Path(name).stat().st_size
        if size > max_bytes:
            raise ResultImageError(
                f"job {job_id}: image {index} is {size / 1048576:.1f} MB, over the "
                f"{max_bytes / 1048576:g} MB an image may have in the queue (--result-image-max-mb / "
                f"{MAX_MB_VARIABLE}); use --result-images {SHARED_FOLDER} ({RESULT_IMAGES_VARIABLE}) "
                "for images this large"
            )
        data = Path(name).read_bytes()
        entries.append({"root": where[0], "name": where[1], "bytes": len(data)})
        images.append(ResultImage(index, where[0], where[1], data))
    return entries, images


def local_path(entry: dict[str, Any], roots: dict[str, Path]) -> Path:
    """Where a stored image lies on this node: its folder + its relative name, which must
    stay inside that folder (the name comes from the database, not from this machine)."""
    root = roots.get(str(entry.get("root")))
    name = str(entry.get("name") or "")
    if root is None or not name:
        raise PermissionError(f"a stored image has no usable place: {entry!r}")
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise PermissionError(f"stored image name {name!r} leaves its folder")
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Temp file in the same folder + rename: a reader never sees half an image, and two
    requests writing the same bytes at once both end with the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    try:
        give_normal_mode(fd)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
