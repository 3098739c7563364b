"""Which image files each job has written, kept on disk until the job record holds them.

A saved image becomes visible with a rename, and the job record learns about it only
when the job ends. A crash in between used to leave the job ``interrupted`` with no
images while its PNG sat on disk, a retry wrote a second copy, and the ``.tmp-*`` file
of a half-written image was never removed. So each image is written in three steps:

1. the image goes to a temporary file in its folder, flushed to disk;
2. the journal (``.easel/image-journal/<job id>.json``) records the temporary and the
   final name, flushed to disk;
3. the temporary file is renamed to its final name.

After a crash at any point, ``recover`` finishes step 3 for every recorded image (or
finds it done) and reports the job's images, so they can be adopted into its record;
any other ``.tmp-*`` file is an image that was never recorded and is deleted. A retried
job asks ``existing`` before writing an image it already has.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("easel.saving")

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # journal file names come from job ids


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in ``folder`` durable (POSIX: fsync the directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems do not support it; the rename is still atomic
    finally:
        os.close(fd)


class ImageJournal:
    """Per-job records of written images: ``{"images": [{"index", "seed", "path", "tmp"}]}``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()

    def _file(self, job_id: str) -> Path:
        if not _JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return self.folder / f"{job_id}.json"

    def entries(self, job_id: str) -> list[dict[str, Any]]:
        try:
            data = json.loads(self._file(job_id).read_text("utf-8"))
        except (OSError, ValueError):
            return []
        images = data.get("images") if isinstance(data, dict) else None
        return [e for e in images or [] if isinstance(e, dict) and isinstance(e.get("path"), str)]

    def existing(self, job_id: str, index: int, seed: int) -> Path | None:
        """The file this job already wrote for image ``index`` with ``seed``, if it is
        still there (a retry reuses it instead of writing a second copy)."""
        for entry in self.entries(job_id):
            if entry.get("index") == index and entry.get("seed") == seed:
                path = Path(entry["path"])
                if path.is_file():
                    return path
        return None

    def record(self, job_id: str, index: int, seed: int, tmp: Path, path: Path) -> None:
        """Step 2: durable before the rename."""
        with self._lock:
            images = [e for e in self.entries(job_id) if e.get("index") != index]
            images.append({"index": index, "seed": seed, "path": str(path), "tmp": str(tmp)})
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self._file(job_id)
            staging = target.with_name(f".{target.name}.tmp")
            staging.write_text(json.dumps({"images": images}), "utf-8")
            fsync_file(staging)
            os.replace(staging, target)
            fsync_folder(self.folder)

    def forget(self, job_id: str) -> None:
        """The job record holds the images now (or the job is gone)."""
        with self._lock:
            self._file(job_id).unlink(missing_ok=True)

    def temp_files(self) -> set[Path]:
        """Every temporary file a journal still names."""
        return {Path(e["tmp"]) for job in self.job_ids() for e in self.entries(job) if e.get("tmp")}

    def job_ids(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if _JOB_ID.match(p.stem))

    def recover(self) -> dict[str, list[Path]]:
        """Finish every recorded rename; the images each journalled job has, in order."""
        recovered: dict[str, list[Path]] = {}
        for job_id in self.job_ids():
            paths = []
            for entry in sorted(self.entries(job_id), key=lambda e: e.get("index", 0)):
                path, tmp = Path(entry["path"]), Path(entry.get("tmp") or "")
                if not path.is_file() and entry.get("tmp") and tmp.is_file():
                    try:
                        os.replace(tmp, path)  # the crash came between steps 2 and 3
                    except OSError as exc:
                        log.error("job %s: cannot finish writing %s: %s", job_id, path, exc)
                        continue
                    fsync_folder(path.parent)
                    log.warning("job %s: finished writing %s after a crash", job_id, path)
                if path.is_file():
                    paths.append(path)
            recovered[job_id] = paths
        return recovered


def remove_stray_temp_files(outputs_dir: Path, keep: set[Path] = frozenset()) -> list[Path]:
    """Delete ``.tmp-*`` files under ``outputs/<mode>/<date>/``: images never recorded
    (a crash before step 2), except those in ``keep`` (recorded ones recovery could not
    rename). Call at start-up only, when nothing else writes there."""
    removed = []
    root = Path(outputs_dir)
    if not root.is_dir():
        return removed
    for tmp in root.glob("*/*/.tmp-*"):
        try:
            if tmp.is_file() and not tmp.is_symlink() and tmp not in keep:
                tmp.unlink()
                removed.append(tmp)
        except OSError:
            continue
    for path in removed:
        log.warning("removed %s, left by an image write that never finished", path)
    return removed
