"""The one way Easel and its extensions list model files in a folder tree.

Model folders are untrusted and often odd: A1111/Forge folders full of symlinks, a link
that points back at its own folder, a FIFO or socket with a model's name (opening it
blocks forever: ``easel serve`` used to hang at start-up without a log line), a link to a
huge tree. So the walk:

- yields regular files only; FIFOs, sockets and devices are skipped with a warning and
  never opened;
- follows symlinks, but enters each real folder once (a ``loop -> .`` link is seen and
  reported, not walked 40 times) and yields each real file once;
- stops, with a warning, after ``max_seconds`` or ``max_entries`` entries or below
  ``max_depth`` folders, so a link to ``/`` cannot stall the worker.

``os.walk(followlinks=True)`` does none of this, hence this module. The core's checkpoint
listing, ``/sdapi/v1/loras`` and the LoRA library all use it, so they agree.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("easel.models")

# what a LoRA folder may hold (pickles are listed so that they can be refused by name)
LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt", ".bin", ".pth")
MAX_SCAN_SECONDS = 10.0
MAX_SCAN_ENTRIES = 200_000
MAX_SCAN_DEPTH = 16


@dataclass(frozen=True)
class Found:
    path: Path  # as reached from the root (links not resolved): names come from it
    relative: str  # posix path relative to the root
    is_folder: bool = False  # a folder holding ``folder_marker`` (a diffusers model)


def scan_model_files(
    root: Path,
    suffixes: Iterable[str],
    *,
    folder_marker: str | None = None,
    skip_folder: Callable[[str], bool] | None = None,
    max_seconds: float = MAX_SCAN_SECONDS,
    max_entries: int = MAX_SCAN_ENTRIES,
    max_depth: int = MAX_SCAN_DEPTH,
    warn: Callable[[str], None] | None = None,
) -> list[Found]:
    """Files under ``root`` whose suffix (lower-cased) is in ``suffixes``, and folders
    holding a regular file named ``folder_marker`` (not descended into), sorted by their
    relative path. ``skip_folder(name)`` leaves sub-folders out by name."""
    warn = warn or log.warning
    wanted = {s.lower() for s in suffixes}
    root = Path(root)
    found: list[Found] = []
    try:
        root_stat = os.stat(root)
    except OSError:
        return found
    if not stat.S_ISDIR(root_stat.st_mode):
        return found
    seen_folders = {(root_stat.st_dev, root_stat.st_ino)}
    seen_files: set[tuple[int, int]] = set()
    deadline = time.monotonic() + max_seconds
    entries = 0
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if folder_marker is not None and folder != root and _is_regular(folder / folder_marker):
            found.append(Found(folder, folder.relative_to(root).as_posix(), is_folder=True))
            continue
        try:
            with os.scandir(folder) as listing:
                children = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            warn(f"{folder}: cannot list: {exc}")
            continue
        subfolders: list[Path] = []
        for entry in children:
            entries += 1
            if entries > max_entries or time.monotonic() > deadline:
                warn(
                    f"{root}: listing stopped after {entries - 1} entries / {max_seconds:g} s "
                    "(a link to a large tree?); some models may be missing"
                )
                return sorted(found, key=lambda f: f.relative)
            path = Path(entry.path)
            try:
                info = entry.stat()  # follows a symlink: the target's type and identity
            except OSError as exc:
                if entry.is_symlink():
                    warn(f"{path}: broken or looping symlink skipped ({exc.strerror})")
                continue
            identity = (info.st_dev, info.st_ino)
            if stat.S_ISDIR(info.st_mode):
                if skip_folder is not None and skip_folder(entry.name):
                    continue
                if identity in seen_folders:
                    if entry.is_symlink():
                        warn(f"{path}: symlink to a folder already listed (a loop?) skipped")
                    continue
                seen_folders.add(identity)
                if depth + 1 > max_depth:
                    warn(f"{path}: deeper than {max_depth} folders, not listed")
                    continue
                subfolders.append(path)
            elif Path(entry.name).suffix.lower() in wanted:
                if not stat.S_ISREG(info.st_mode):
                    warn(f"{path}: not a regular file (a FIFO, socket or device?); skipped")
                    continue
                if identity in seen_files:
                    continue  # the same file reached twice (a link beside its target)
                seen_files.add(identity)
                found.append(Found(path, path.relative_to(root).as_posix()))
        # depth first, in name order: push in reverse so the first name is walked first
        stack.extend((sub, depth + 1) for sub in reversed(subfolders))
    return sorted(found, key=lambda f: f.relative)


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False
