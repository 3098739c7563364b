"""The job queue named by a URL (``--queue`` / ``EASEL_QUEUE_URL``).

``sqlite:///abs/path/queue.db`` (or ``sqlite:relative/path.db``): the embedded queue, one
machine, one or several worker processes. ``postgresql://user:pass@host:port/db`` (also
``postgres://``): many machines. No URL: the data folder's ``.easel/queue.db``.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import SettingError
from core.jobs.queue import JobQueue

QUEUE_URL_VARIABLE = "EASEL_QUEUE_URL"


def default_queue_url(state_dir: Path) -> str:
    """The data folder's own SQLite file."""
    return f"sqlite:///{(state_dir / 'queue.db').resolve()}"


def queue_url(flag: str | None, state_dir: Path) -> str:
    """The flag, else the variable, else the data folder's SQLite file."""
    url = flag or os.environ.get(QUEUE_URL_VARIABLE) or ""
    return url.strip() or default_queue_url(state_dir)


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:`` URL; None for other schemes."""
    if not url.startswith("sqlite:"):
        return None
    rest = url[len("sqlite:") :]
    if rest.startswith("//"):
        rest = rest[2:]  # sqlite:///abs -> /abs ; sqlite://rel -> rel
    if not rest:
        raise SettingError(f"--queue / {QUEUE_URL_VARIABLE}: {url!r} names no database file")
    return Path(rest).expanduser()


def open_queue(url: str) -> JobQueue:
    """Open (and create when missing) the queue a URL names; errors name the setting."""
    path = sqlite_path(url)
    if path is not None:
        from core.jobs.sqlite_queue import SqliteJobQueue

        return SqliteJobQueue(path)
    if url.startswith(("postgresql://", "postgres://")):
        from core.jobs.postgres_queue import PostgresJobQueue, _redact

        try:
            return PostgresJobQueue(url)
        except ConnectionError as exc:
            raise SettingError(f"--queue / {QUEUE_URL_VARIABLE}: {exc}") from None
        except Exception as exc:  # a bad URL, a refused login: say which setting
            raise SettingError(f"--queue / {QUEUE_URL_VARIABLE}: {_redact(url)}: {exc}") from None
    scheme = url.split(":", 1)[0]
    raise SettingError(
        f"--queue / {QUEUE_URL_VARIABLE}: unknown queue {scheme!r}; use sqlite:///path/queue.db "
        "or postgresql://user:password@host:port/database"
    )
