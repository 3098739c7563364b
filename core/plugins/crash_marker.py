"""Which extension code this process is running, kept on disk, so that the next start
can name the extension that killed the process.

An extension can end its process where no ``except`` reaches (``os._exit``, a segfault
in a native library, the kernel's OOM killer): the process leaves no traceback and, in a
single-process server, no log line. So before the host runs extension code that might
do that (importing an extension; a hook during a job) it writes what it is about to run
into this process's marker file, and clears it afterwards. The write is a single
``pwrite`` without ``fsync``: the page cache survives the death of a process (only an
operating-system crash would lose it, and that is not an extension's doing), so it costs
one system call per hook call.

Each live process holds an exclusive ``flock`` on its own marker. The kernel releases it
when the process dies however it dies, so at start-up a marker whose lock can be taken
belongs to a dead process: if it names something, that is what was running when it died.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: no flock; markers are then read but never proven dead
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("easel.extensions")

RECORD_BYTES = 1024  # one fixed-size record, rewritten in place: no truncation needed
IDLE = b"{}"


class CrashMarker:
    """This process's marker file (``<folder>/<pid>-<random>.json``), opened lazily."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._broken = False

    def _open(self) -> int | None:
        if self._fd is None and not self._broken:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
            except OSError as exc:  # a read-only data folder must not stop generation
                log.warning("cannot keep the extension crash marker %s: %s", self.path, exc)
                self._broken = True
        return self._fd

    def _write(self, data: bytes) -> None:
        with self._lock:
            fd = self._open()
            if fd is not None:
                os.pwrite(fd, data[:RECORD_BYTES].ljust(RECORD_BYTES), 0)

    def running(self, extension: str, hook: str, job_id: str | None = None) -> None:
        """``extension`` is about to run ``hook`` ("import" while it is imported)."""
        what = {"extension": extension, "hook": hook, "job_id": job_id}
        self._write(json.dumps(what).encode("utf-8"))

    def idle(self) -> None:
        self._write(IDLE)

    def close(self) -> None:
        """A clean stop: nothing was running, the marker goes."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self.path.unlink(missing_ok=True)


def _take_if_dead(path: Path) -> dict[str, Any] | None:
    """The marker's record if its process is dead (the file is then removed), else None."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None  # held: a live process (this one included) runs it
        raw = os.pread(fd, RECORD_BYTES, 0).strip().rstrip(b"\x00").strip()
        path.unlink(missing_ok=True)  # still locked by us: no other starter reads it too
        try:
            record = json.loads(raw or IDLE)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}
    finally:
        os.close(fd)


def collect_crashes(folder: Path) -> list[dict[str, Any]]:
    """What each dead process was running when it died (``extension``, ``hook``,
    ``job_id``); markers of processes that stopped cleanly or were idle are removed."""
    crashes = []
    folder = Path(folder)
    if not folder.is_dir():
        return crashes
    for path in sorted(folder.glob("*.json")):
        record = _take_if_dead(path)
        if record and isinstance(record.get("extension"), str) and isinstance(record.get("hook"), str):
            crashes.append(record)
    return crashes
