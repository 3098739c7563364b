"""The image history's files: what lies in the outputs folders (A1111's layout), and
deleting an image by moving it to ``outputs/.trash/`` (never removing it outright).

Every path a handler gets may be forged (the WebUI's events are reachable by any client
of the server), so each one is confined: resolved, and refused unless the file it leads
to is a regular file inside the outputs root, outside the trash, with no symbolic link on
the way. The trash folder itself must be a real folder inside the root.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

# A1111's outputs folders, in the order the history offers them
HISTORY_FOLDERS = ("txt2img-images", "img2img-images", "extras-images", "txt2img-grids", "img2img-grids")
TRASH = ".trash"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
MAX_LISTED = 500  # newest first: a gallery of thousands of images would hang the page
ALL_DATES = "all"


class HistoryError(ValueError):
    """A path the history refuses; the message says why."""


@dataclass(frozen=True)
class HistoryImage:
    path: Path  # absolute, inside the root
    relative: str  # as shown: "txt2img-images/2026-12-02/00001-5.png"
    mtime: float


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _real_root(outputs_root: str | Path) -> Path:
    root = Path(outputs_root).resolve()
    if not root.is_dir():
        raise HistoryError(f"the outputs folder {root} does not exist")
    return root


def confine(outputs_root: str | Path, path: str | Path) -> Path:
    """The image ``path`` (absolute, or relative to the outputs root) as an absolute path
    inside the root; ``HistoryError`` for anything else: ``..`` leading out, a symbolic
    link anywhere on the way, the trash, a folder, a missing file, a non-image."""
    root = _real_root(outputs_root)
    raw = str(path or "").strip()
    if not raw or "\x00" in raw:
        raise HistoryError("no image given")
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = root / candidate
    lexical = Path(os.path.normpath(candidate))  # ".." folded without following links
    if not _inside(lexical, root) or lexical == root:
        raise HistoryError(f"{raw!r} is not inside the outputs folder")
    relative = lexical.relative_to(root)
    if relative.parts[0] == TRASH:
        raise HistoryError(f"{raw!r} is in the trash already")
    # no link on the way: every component below the root must be what it says it is
    walked = root
    for part in relative.parts:
        walked = walked / part
        if walked.is_symlink():
            raise HistoryError(f"{raw!r} goes through a symbolic link ({walked.relative_to(root)})")
    if not _inside(lexical.resolve(), root):
        raise HistoryError(f"{raw!r} is not inside the outputs folder")
    if not lexical.is_file():
        raise HistoryError(f"{raw!r} is not an image file in the outputs folder")
    if lexical.suffix.lower() not in IMAGE_SUFFIXES:
        raise HistoryError(f"{raw!r} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return lexical


def dates(outputs_root: str | Path, folder: str) -> list[str]:
    """The date folders of one outputs folder, newest first."""
    base = _folder(outputs_root, folder)
    if base is None:
        return []
    found = [
        d.name for d in base.iterdir() if d.is_dir() and not d.is_symlink() and not d.name.startswith(".")
    ]
    return sorted(found, reverse=True)


def _folder(outputs_root: str | Path, folder: str) -> Path | None:
    if folder not in HISTORY_FOLDERS:
        raise HistoryError(f"unknown outputs folder {folder!r}; one of {', '.join(HISTORY_FOLDERS)}")
    try:
        root = _real_root(outputs_root)
    except HistoryError:
        return None
    base = root / folder
    if base.is_symlink() or not base.is_dir():
        return None
    return base


def list_images(outputs_root: str | Path, folder: str, date: str = ALL_DATES) -> list[HistoryImage]:
    """The images of one outputs folder (one date, or all), newest first, at most
    ``MAX_LISTED``; links and hidden files are left out."""
    base = _folder(outputs_root, folder)
    if base is None:
        return []
    root = base.parent
    wanted = dates(outputs_root, folder) if date == ALL_DATES else [date]
    images: list[HistoryImage] = []
    for name in wanted:
        day = base / name
        if name not in dates(outputs_root, folder):
            raise HistoryError(f"no date folder {name!r} in {folder}")
        for entry in os.scandir(day):
            if entry.name.startswith(".") or entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                continue
            if Path(entry.name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            path = day / entry.name
            images.append(HistoryImage(path, path.relative_to(root).as_posix(), entry.stat().st_mtime))
    images.sort(key=lambda image: (image.mtime, image.relative), reverse=True)
    return images[:MAX_LISTED]


def move_to_trash(outputs_root: str | Path, path: str | Path) -> Path:
    """Move one image (and its A1111 ``.txt`` sidecar, if any) to ``outputs/.trash/``
    under the same relative path; returns where it went. Never overwrites: a second
    image of the same name gets a time-stamped name."""
    source = confine(outputs_root, path)
    root = _real_root(outputs_root)
    trash = root / TRASH
    if trash.is_symlink() or (trash.exists() and not trash.is_dir()):
        raise HistoryError(f"{trash} is not a folder: refusing to move images there")
    trash.mkdir(exist_ok=True)
    relative = source.relative_to(root)
    # made one level at a time, each checked before anything is made inside it: a link
    # planted in the trash must not receive a folder, let alone the image
    target_dir = trash
    for part in relative.parent.parts:
        target_dir = target_dir / part
        if target_dir.is_symlink() or (target_dir.exists() and not target_dir.is_dir()):
            raise HistoryError(f"{target_dir} leads out of the trash folder")
        target_dir.mkdir(exist_ok=True)
    if target_dir.resolve() != target_dir:
        raise HistoryError(f"{target_dir} leads out of the trash folder")
    target = target_dir / source.name
    if target.exists():
        target = (
            target_dir
            / f"{source.stem}.{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}{source.suffix}"
        )
    os.rename(source, target)  # same file system: atomic, the bytes are never copied
    sidecar = source.with_suffix(".txt")
    if sidecar.is_file() and not sidecar.is_symlink():
        os.rename(sidecar, target.with_suffix(".txt"))
    return target
