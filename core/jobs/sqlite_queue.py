"""The embedded job queue: one SQLite file in WAL mode, one connection per thread.

Why these settings: WAL lets the API read while workers write; ``synchronous=FULL``
makes every committed state change survive a kill or a power cut (job state changes are
few, progress writes are throttled by the caller); ``busy_timeout`` makes concurrent
writers wait instead of failing. Several worker processes on one machine may share the
file: every state change is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken
before reading), so two claims never see the same queued job. Not for a network file
system (SQLite's locks do not hold there): use PostgreSQL for several machines.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from core.jobs.queue import (
    DEFAULT_AFFINITY_PASSES,
    JobNotFound,
    JobQueue,
    JobStateError,
    WorkerInfo,
    poison_reason,
)
from core.jobs.record import (
    DONE,
    FAILED,
    INTERRUPTED,
    QUEUED,
    RETRYABLE_STATUSES,
    RUNNING,
    STATUSES,
    JobRecord,
)
from core.jobs.result_images import ResultImage

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order (FIFO tie-break)
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    request      TEXT NOT NULL,
    result       TEXT,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    worker_id    TEXT,
    lease_until  REAL,
    created_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    progress     REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (status, priority DESC, seq);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, device TEXT NOT NULL,
    model TEXT, job_id TEXT, heartbeat_at REAL NOT NULL, started_at REAL NOT NULL,
    model_loads INTEGER NOT NULL DEFAULT 0, jobs_done INTEGER NOT NULL DEFAULT 0,
    draining INTEGER NOT NULL DEFAULT 0
);
-- schema 3: image bytes of finished jobs (--result-images db), one row per image
CREATE TABLE IF NOT EXISTS job_images (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    root   TEXT NOT NULL,
    name   TEXT NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (job_id, idx)
);
"""
# Added in schema 2 (several workers): ALTERed into a version-1 file.
_V2_COLUMNS = {
    "model": "TEXT",  # request.model, for model affinity
    "passed_over": "INTEGER NOT NULL DEFAULT 0",  # times skipped at the head (fairness)
    "interrupt": "INTEGER NOT NULL DEFAULT 0",  # cancel asked by another process
}
_WORKER_COLUMNS = (
    "id, host, pid, device, model, job_id, heartbeat_at, started_at, model_loads, jobs_done, draining"
)

_COLUMNS = (
    "id, kind, status, priority, request, result, error, attempts, worker_id, lease_until, "
    "created_at, started_at, finished_at, progress"
)


def _row_to_record(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        kind=row["kind"],
        status=row["status"],
        priority=row["priority"],
        request=json.loads(row["request"]),
        result=json.loads(row["result"]) if row["result"] else None,
        error=row["error"],
        attempts=row["attempts"],
        worker_id=row["worker_id"],
        lease_until=row["lease_until"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        progress=row["progress"],
    )


def _model_of(request: dict[str, Any]) -> str | None:
    model = request.get("model")
    return model if isinstance(model, str) and model else None


def _check_statuses(statuses: tuple[str, ...] | None) -> None:
    for status in statuses or ():
        if status not in STATUSES:
            raise ValueError(f"unknown job status {status!r}; known: {', '.join(STATUSES)}")


class SqliteJobQueue(JobQueue):
    def __init__(self, db_path: str | Path) -> None:
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all_connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        conn = self._conn()
        conn.executescript(_SCHEMA)  # idempotent; executescript manages its own transaction
        with self._write() as conn:  # several processes may open an old file at once
            present = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
            for name, declaration in _V2_COLUMNS.items():
                if name not in present:
                    conn.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")
            conn.execute("CREATE INDEX IF NOT EXISTS jobs_model ON jobs (status, model, priority, seq)")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- connections -------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # autocommit mode (isolation_level=None): transactions are explicit below
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA foreign_keys=ON")  # a deleted job takes its image bytes along
            self._local.conn = conn
            with self._connections_lock:
                self._all_connections.append(conn)
        return conn

    class _Transaction:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            # IMMEDIATE takes the write lock up front, so read-then-write is atomic
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _write(self) -> SqliteJobQueue._Transaction:
        return self._Transaction(self._conn())

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._all_connections:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all_connections.clear()
        self._local = threading.local()

    def integrity_check(self) -> str:
        return self._conn().execute("PRAGMA integrity_check").fetchone()[0]

    # --- JobQueue ------------------------------------------------------------------------

    def put(self, kind: str, request: dict[str, Any], priority: int = 0) -> JobRecord:
        job_id = uuid.uuid4().hex
        with self._write() as conn:
            conn.execute(
                """INSERT INTO jobs (id, kind, status, priority, request, created_at, model)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (job_id, kind, QUEUED, int(priority), json.dumps(request), time.time(), _model_of(request)),
            )
        record = self.get(job_id)
        assert record is not None
        return record

    def get(self, job_id: str) -> JobRecord | None:
        row = self._conn().execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row_to_record(row) if row else None

    def list(
        self, statuses: tuple[str, ...] | None = None, limit: int = 50, offset: int = 0
    ) -> list[JobRecord]:
        _check_statuses(statuses)
        where, params = "", []
        if statuses:
            where = f"WHERE status IN ({', '.join('?' * len(statuses))})"
            params = list(statuses)
        order = "priority DESC, seq ASC" if statuses == (QUEUED,) else "seq DESC"
        rows = self._conn().execute(
            f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, int(limit), int(offset)],
        )
        return [_row_to_record(row) for row in rows]

    def count(self, statuses: tuple[str, ...] | None = None) -> int:
        _check_statuses(statuses)
        if not statuses:
            return self._conn().execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        marks = ", ".join("?" * len(statuses))
        return (
            self._conn()
            .execute(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})", statuses)
            .fetchone()[0]
        )

    def queue_position(self, job_id: str) -> int | None:
        """Place of a queued job in the run order, 1 = runs next (None if not queued)."""
        row = (
            self._conn()
            .execute("SELECT priority, seq FROM jobs WHERE id = ? AND status = ?", (job_id, QUEUED))
            .fetchone()
        )
        if row is None:
            return None
        ahead = self._conn().execute(
            "SELECT COUNT(*) FROM jobs WHERE status = ? AND (priority > ? OR (priority = ? AND seq < ?))",
            (QUEUED, row["priority"], row["priority"], row["seq"]),
        )
        return ahead.fetchone()[0] + 1

    def claim(
        self,
        worker_id: str,
        lease_s: float,
        prefer_model: str | None = None,
        max_passes: int = DEFAULT_AFFINITY_PASSES,
    ) -> JobRecord | None:
        now = time.time()
        with self._write() as conn:
            # Under the write lock (BEGIN IMMEDIATE): nobody claims between the reads and
            # the update, and `status = 'queued'` guards the update anyway.
            head = conn.execute(
                "SELECT seq, model, priority, passed_over FROM jobs WHERE status = ? "
                "ORDER BY priority DESC, seq ASC LIMIT 1",
                (QUEUED,),
            ).fetchone()
            if head is None:
                return None
            chosen = head["seq"]
            if prefer_model and head["model"] != prefer_model and head["passed_over"] < max_passes:
                match = conn.execute(
                    "SELECT seq FROM jobs WHERE status = ? AND model = ? AND priority = ? "
                    "ORDER BY seq ASC LIMIT 1",
                    (QUEUED, prefer_model, head["priority"]),
                ).fetchone()
                if match is not None:
                    chosen = match["seq"]
                    conn.execute(
                        "UPDATE jobs SET passed_over = passed_over + 1 WHERE seq = ?", (head["seq"],)
                    )
            row = conn.execute(
                f"""UPDATE jobs SET status = ?, worker_id = ?, started_at = ?, lease_until = ?,
                        attempts = attempts + 1, progress = 0, finished_at = NULL, interrupt = 0
                    WHERE seq = ? AND status = ?
                    RETURNING {_COLUMNS}""",
                (RUNNING, worker_id, now, now + lease_s, chosen, QUEUED),
            ).fetchone()
        return _row_to_record(row) if row else None

    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND worker_id = ? AND status = ?",
                (time.time() + lease_s, job_id, worker_id, RUNNING),
            )
        return cursor.rowcount == 1

    def set_progress(self, job_id: str, progress: float) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE jobs SET progress = ? WHERE id = ? AND status = ?",
                (float(progress), job_id, RUNNING),
            )

    def finish(
        self,
        job_id: str,
        worker_id: str,
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        images: list[ResultImage] | None = None,
    ) -> JobRecord | None:
        if status not in STATUSES or status in (QUEUED, RUNNING):
            raise ValueError(f"cannot finish a job as {status!r}")
        with self._write() as conn:
            row = conn.execute(
                f"""UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ?, lease_until = NULL,
                        progress = CASE WHEN ? = 'done' THEN 1.0 ELSE progress END
                    WHERE id = ? AND worker_id = ? AND status = ?
                    RETURNING {_COLUMNS}""",
                (
                    status,
                    json.dumps(result) if result is not None else None,
                    error,
                    time.time(),
                    status,
                    job_id,
                    worker_id,
                    RUNNING,
                ),
            ).fetchone()
            if row is not None and images:  # only the finish that counted stores bytes
                conn.executemany(
                    "INSERT OR REPLACE INTO job_images (job_id, idx, root, name, data) VALUES (?, ?, ?, ?, ?)",
                    [(job_id, i.index, i.root, i.name, i.data) for i in images],
                )
        return _row_to_record(row) if row else None

    def result_image(self, job_id: str, index: int) -> bytes | None:
        row = (
            self._conn()
            .execute("SELECT data FROM job_images WHERE job_id = ? AND idx = ?", (job_id, int(index)))
            .fetchone()
        )
        return bytes(row["data"]) if row else None

    def cancel(self, job_id: str) -> JobRecord:
        with self._write() as conn:
            row = conn.execute(
                f"""UPDATE jobs SET status = 'cancelled', finished_at = ?
                    WHERE id = ? AND status = ? RETURNING {_COLUMNS}""",
                (time.time(), job_id, QUEUED),
            ).fetchone()
            if row is None:
                current = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is not None:
            return _row_to_record(row)
        if current is None:
            raise JobNotFound(job_id)
        raise JobStateError(f"job {job_id} is {current['status']}, only a queued job can be cancelled")

    def retry(self, job_id: str) -> JobRecord:
        retryable = tuple(sorted(RETRYABLE_STATUSES))
        marks = ", ".join("?" * len(retryable))
        with self._write() as conn:
            # A retried job goes to the back of its priority level: give it a new seq.
            row = conn.execute("SELECT seq, status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if row["status"] not in RETRYABLE_STATUSES:
                raise JobStateError(
                    f"job {job_id} is {row['status']}; only {', '.join(retryable)} jobs can be retried"
                )
            new_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            conn.execute(
                f"""UPDATE jobs SET seq = ?, status = ?, result = NULL, error = NULL, worker_id = NULL,
                        lease_until = NULL, started_at = NULL, finished_at = NULL, progress = 0,
                        passed_over = 0, interrupt = 0
                    WHERE id = ? AND status IN ({marks})""",
                (new_seq, QUEUED, job_id, *retryable),
            )
            # its old result is gone, so are the bytes of its images (the run stores new ones)
            conn.execute("DELETE FROM job_images WHERE job_id = ?", (job_id,))
        record = self.get(job_id)
        assert record is not None
        return record

    def record_images(self, job_id: str, paths: list[str]) -> JobRecord | None:
        with self._write() as conn:
            row = conn.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            result = json.loads(row["result"]) if row["result"] else {}
            if not isinstance(result, dict):
                result = {}
            known = [str(p) for p in result.get("paths") or []]
            result["paths"] = known + [p for p in paths if p not in known]
            result["saved"] = True
            result["recovered"] = True  # found on disk after a crash, not reported by the run
            conn.execute("UPDATE jobs SET result = ? WHERE id = ?", (json.dumps(result), job_id))
        return self.get(job_id)

    def recover_running(self, only_expired: bool, reason: str) -> list[str]:
        now = time.time()
        condition = "status = ?"
        params: list[Any] = [RUNNING]
        if only_expired:
            condition += " AND (lease_until IS NULL OR lease_until < ?)"
            params.append(now)
        with self._write() as conn:
            rows = conn.execute(
                f"""UPDATE jobs SET status = ?, error = ?, finished_at = ?, lease_until = NULL
                    WHERE {condition} RETURNING id""",
                (INTERRUPTED, reason, now, *params),
            ).fetchall()
        return [row["id"] for row in rows]

    def note_error(self, job_id: str, note: str) -> JobRecord | None:
        with self._write() as conn:
            conn.execute(
                """UPDATE jobs SET error = CASE WHEN error IS NULL OR error = '' THEN ?
                        ELSE error || '; ' || ? END
                    WHERE id = ? AND status NOT IN (?, ?)""",
                (note, note, job_id, RUNNING, DONE),
            )
        return self.get(job_id)

    def requeue_expired(self, max_attempts: int) -> list[tuple[str, str]]:
        now = time.time()
        with self._write() as conn:
            # passed_over is kept: a reclaimed job goes back to its old place in the order
            requeued = conn.execute(
                """UPDATE jobs SET status = ?, worker_id = NULL, lease_until = NULL, progress = 0,
                        started_at = NULL, interrupt = 0
                    WHERE status = ? AND lease_until < ? AND attempts < ? RETURNING id""",
                (QUEUED, RUNNING, now, int(max_attempts)),
            ).fetchall()
            poisoned = conn.execute(
                "SELECT id, attempts FROM jobs WHERE status = ? AND lease_until < ?", (RUNNING, now)
            ).fetchall()
            for row in poisoned:  # the rest: started max_attempts times already
                conn.execute(
                    "UPDATE jobs SET status = ?, error = ?, finished_at = ?, lease_until = NULL WHERE id = ?",
                    (FAILED, poison_reason(row["attempts"]), now, row["id"]),
                )
        return [(row["id"], QUEUED) for row in requeued] + [(row["id"], FAILED) for row in poisoned]

    def request_interrupt(self, job_id: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET interrupt = 1 WHERE id = ? AND status = ?", (job_id, RUNNING)
            )
        return cursor.rowcount == 1

    def interrupt_requested(self, job_id: str) -> bool:
        row = self._conn().execute("SELECT interrupt FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["interrupt"])

    # --- the workers' registry ------------------------------------------------------------

    def worker_seen(self, info: WorkerInfo) -> None:
        values = info.as_dict()
        values["draining"] = int(info.draining)
        values["heartbeat_at"] = time.time()  # the heartbeat is this call
        names = _WORKER_COLUMNS.split(", ")
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "id")
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO workers ({_WORKER_COLUMNS}) VALUES ({', '.join('?' * len(names))}) "
                f"ON CONFLICT (id) DO UPDATE SET {updates}",
                [values[n] for n in names],
            )

    def worker_gone(self, worker_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def workers(self, seen_within_s: float | None = None) -> list[WorkerInfo]:
        where, params = "", []
        if seen_within_s is not None:
            where, params = "WHERE heartbeat_at >= ?", [time.time() - seen_within_s]
        rows = self._conn().execute(
            f"SELECT {_WORKER_COLUMNS}, ? - heartbeat_at AS heartbeat_age_s FROM workers {where} "
            "ORDER BY started_at",
            [time.time(), *params],
        )
        return [WorkerInfo(**{**dict(row), "draining": bool(row["draining"])}) for row in rows]
