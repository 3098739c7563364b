"""The job queue on PostgreSQL, for workers on many machines (psycopg 3).

Why PostgreSQL: it is durable (a committed state change survives any crash), every state
change is one transaction, ``SELECT ... FOR UPDATE SKIP LOCKED`` lets any number of workers
claim at once without waiting on each other or taking the same job, and ``LISTEN/NOTIFY``
carries live progress from a worker to the API node: one dependency, no broker.

Times (leases, heartbeats) come from the database server's clock, not the callers': the
workers of one queue may sit on machines whose clocks disagree.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from core.jobs.queue import (
    DEFAULT_AFFINITY_PASSES,
    JobNotFound,
    JobQueue,
    JobStateError,
    WorkerInfo,
    poison_reason,
)
from core.jobs.record import FAILED, INTERRUPTED, QUEUED, RETRYABLE_STATUSES, RUNNING, STATUSES, JobRecord
from core.jobs.result_images import ResultImage

CHANNEL = "easel_jobs"
MAX_NOTIFY_BYTES = 7900  # PostgreSQL refuses payloads of 8000 bytes or more
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"
# One schema creation at a time when several processes start on an empty database.
_SCHEMA_LOCK_KEY = 0x65A5E1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS easel_jobs (
    seq          BIGSERIAL PRIMARY KEY,  -- arrival order (FIFO tie-break)
    id           TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    request      JSONB NOT NULL,
    result       JSONB,
    error        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    worker_id    TEXT,
    lease_until  DOUBLE PRECISION,
    created_at   DOUBLE PRECISION NOT NULL,
    started_at   DOUBLE PRECISION,
    finished_at  DOUBLE PRECISION,
    progress     DOUBLE PRECISION NOT NULL DEFAULT 0,
    model        TEXT,
    passed_over  INTEGER NOT NULL DEFAULT 0,
    interrupt    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX IF NOT EXISTS easel_jobs_next ON easel_jobs (status, priority DESC, seq);
CREATE INDEX IF NOT EXISTS easel_jobs_model ON easel_jobs (status, model, priority, seq);
CREATE TABLE IF NOT EXISTS easel_workers (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, device TEXT NOT NULL,
    model TEXT, job_id TEXT, heartbeat_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION NOT NULL, model_loads INTEGER NOT NULL DEFAULT 0,
    jobs_done INTEGER NOT NULL DEFAULT 0, draining BOOLEAN NOT NULL DEFAULT FALSE
);
-- image bytes of finished jobs (--result-images db), one row per image
CREATE TABLE IF NOT EXISTS easel_job_images (
    job_id TEXT NOT NULL REFERENCES easel_jobs (id) ON DELETE CASCADE,
    idx    INTEGER NOT NULL,
    root   TEXT NOT NULL,
    name   TEXT NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (job_id, idx)
);
"""

_COLUMNS = (
    "id, kind, status, priority, request, result, error, attempts, worker_id, lease_until, "
    "created_at, started_at, finished_at, progress"
)
_WORKER_COLUMNS = (
    "id, host, pid, device, model, job_id, heartbeat_at, started_at, model_loads, jobs_done, draining"
)


def _record(row: dict[str, Any]) -> JobRecord:
    return JobRecord(**row)


def _check_statuses(statuses: tuple[str, ...] | None) -> None:
    for status in statuses or ():
        if status not in STATUSES:
            raise ValueError(f"unknown job status {status!r}; known: {', '.join(STATUSES)}")


class PostgresJobQueue(JobQueue):
    def __init__(self, url: str, connect_timeout_s: float = 10.0) -> None:
        try:
            import psycopg  # noqa: F401 - imported here: only this backend needs it
        except ImportError as exc:  # pragma: no cover - psycopg is a locked dependency
            raise RuntimeError("the PostgreSQL queue needs psycopg 3: pip install 'psycopg[binary]'") from exc
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self._local = threading.local()
        self._all: list[Any] = []
        self._all_lock = threading.Lock()
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            cur.execute(_SCHEMA)

    # --- connections -------------------------------------------------------------------

    def _connect(self, **kwargs: Any) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=max(1, int(self.connect_timeout_s)),
                application_name="easel",
                **kwargs,
            )
        except psycopg.OperationalError as exc:
            raise ConnectionError(f"cannot connect to the job queue {_redact(self.url)}: {exc}") from exc

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()  # a dropped connection is replaced on next use
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction (committed on success, rolled back on error) and its cursor."""
        conn = self._conn()
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    def _one(self, sql: str, params: Any = ()) -> dict[str, Any] | None:
        with self._conn().cursor() as cur:
            return cur.execute(sql, params).fetchone()

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    # --- JobQueue ------------------------------------------------------------------------

    def put(self, kind: str, request: dict[str, Any], priority: int = 0) -> JobRecord:
        from psycopg.types.json import Jsonb

        model = request.get("model") if isinstance(request.get("model"), str) else None
        with self._tx() as cur:
            row = cur.execute(
                f"""INSERT INTO easel_jobs (id, kind, status, priority, request, created_at, model)
                    VALUES (%s, %s, %s, %s, %s, {_NOW}, %s) RETURNING {_COLUMNS}""",
                (uuid.uuid4().hex, kind, QUEUED, int(priority), Jsonb(request), model or None),
            ).fetchone()
        return _record(row)

    def get(self, job_id: str) -> JobRecord | None:
        row = self._one(f"SELECT {_COLUMNS} FROM easel_jobs WHERE id = %s", (job_id,))
        return _record(row) if row else None

    def list(
        self, statuses: tuple[str, ...] | None = None, limit: int = 50, offset: int = 0
    ) -> list[JobRecord]:
        _check_statuses(statuses)
        where = "WHERE status = ANY(%s)" if statuses else ""
        order = "priority DESC, seq ASC" if statuses == (QUEUED,) else "seq DESC"
        params: list[Any] = [list(statuses)] if statuses else []
        with self._conn().cursor() as cur:
            rows = cur.execute(
                f"SELECT {_COLUMNS} FROM easel_jobs {where} ORDER BY {order} LIMIT %s OFFSET %s",
                [*params, int(limit), int(offset)],
            ).fetchall()
        return [_record(row) for row in rows]

    def count(self, statuses: tuple[str, ...] | None = None) -> int:
        _check_statuses(statuses)
        if not statuses:
            row = self._one("SELECT COUNT(*) AS n FROM easel_jobs")
        else:
            row = self._one("SELECT COUNT(*) AS n FROM easel_jobs WHERE status = ANY(%s)", (list(statuses),))
        return int(row["n"]) if row else 0

    def queue_position(self, job_id: str) -> int | None:
        """Place of a queued job in the run order, 1 = runs next (None if not queued)."""
        row = self._one(
            """SELECT (SELECT COUNT(*) FROM easel_jobs o WHERE o.status = 'queued' AND
                         (o.priority > j.priority OR (o.priority = j.priority AND o.seq < j.seq))) AS ahead
               FROM easel_jobs j WHERE j.id = %s AND j.status = 'queued'""",
            (job_id,),
        )
        return None if row is None else int(row["ahead"]) + 1

    def claim(
        self,
        worker_id: str,
        lease_s: float,
        prefer_model: str | None = None,
        max_passes: int = DEFAULT_AFFINITY_PASSES,
    ) -> JobRecord | None:
        with self._tx() as cur:
            # SKIP LOCKED: a row another worker is claiming right now is not waited for;
            # the first free one is this worker's head.
            head = cur.execute(
                """SELECT seq, model, priority, passed_over FROM easel_jobs WHERE status = 'queued'
                   ORDER BY priority DESC, seq ASC LIMIT 1 FOR UPDATE SKIP LOCKED"""
            ).fetchone()
            if head is None:
                return None
            chosen = head["seq"]
            if prefer_model and head["model"] != prefer_model and head["passed_over"] < max_passes:
                match = cur.execute(
                    """SELECT seq FROM easel_jobs WHERE status = 'queued' AND model = %s AND priority = %s
                       ORDER BY seq ASC LIMIT 1 FOR UPDATE SKIP LOCKED""",
                    (prefer_model, head["priority"]),
                ).fetchone()
                if match is not None:
                    chosen = match["seq"]
                    # only the head's counter, a row this transaction holds: no lock waits
                    cur.execute(
                        "UPDATE easel_jobs SET passed_over = passed_over + 1 WHERE seq = %s", (head["seq"],)
                    )
            row = cur.execute(
                f"""UPDATE easel_jobs SET status = 'running', worker_id = %s, started_at = {_NOW},
                        lease_until = {_NOW} + %s, attempts = attempts + 1, progress = 0,
                        finished_at = NULL, interrupt = FALSE
                    WHERE seq = %s AND status = 'queued' RETURNING {_COLUMNS}""",
                (worker_id, float(lease_s), chosen),
            ).fetchone()
        return _record(row) if row else None

    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        with self._tx() as cur:
            cur.execute(
                f"""UPDATE easel_jobs SET lease_until = {_NOW} + %s
                    WHERE id = %s AND worker_id = %s AND status = 'running'""",
                (float(lease_s), job_id, worker_id),
            )
            return cur.rowcount == 1

    def set_progress(self, job_id: str, progress: float) -> None:
        with self._tx() as cur:
            cur.execute(
                "UPDATE easel_jobs SET progress = %s WHERE id = %s AND status = 'running'",
                (float(progress), job_id),
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
        from psycopg.types.json import Jsonb

        if status not in STATUSES or status in (QUEUED, RUNNING):
            raise ValueError(f"cannot finish a job as {status!r}")
        with self._tx() as cur:
            # worker_id + running: a worker whose lease was taken over finishes nothing
            row = cur.execute(
                f"""UPDATE easel_jobs SET status = %s, result = %s, error = %s, finished_at = {_NOW},
                        lease_until = NULL, progress = CASE WHEN %s = 'done' THEN 1.0 ELSE progress END
                    WHERE id = %s AND worker_id = %s AND status = 'running' RETURNING {_COLUMNS}""",
                (status, Jsonb(result) if result is not None else None, error, status, job_id, worker_id),
            ).fetchone()
            if row is not None and images:  # only the finish that counted stores bytes
                cur.executemany(
                    """INSERT INTO easel_job_images (job_id, idx, root, name, data) VALUES (%s, %s, %s, %s, %s)
                       ON CONFLICT (job_id, idx) DO UPDATE SET root = EXCLUDED.root, name = EXCLUDED.name,
                           data = EXCLUDED.data""",
                    [(job_id, i.index, i.root, i.name, i.data) for i in images],
                )
        return _record(row) if row else None

    def result_image(self, job_id: str, index: int) -> bytes | None:
        row = self._one(
            "SELECT data FROM easel_job_images WHERE job_id = %s AND idx = %s", (job_id, int(index))
        )
        return bytes(row["data"]) if row else None

    def record_images(self, job_id: str, paths: list[str]) -> JobRecord | None:
        """Images found on disk after a crash (core/jobs/recovery.py), added once each."""
        from psycopg.types.json import Jsonb

        with self._tx() as cur:
            row = cur.execute("SELECT result FROM easel_jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
            if row is None:
                return None
            result = row["result"] if isinstance(row["result"], dict) else {}
            known = [str(p) for p in result.get("paths") or []]
            result |= {
                "paths": known + [p for p in paths if p not in known],
                "saved": True,
                "recovered": True,
            }
            updated = cur.execute(
                f"UPDATE easel_jobs SET result = %s WHERE id = %s RETURNING {_COLUMNS}",
                (Jsonb(result), job_id),
            ).fetchone()
        return _record(updated)

    def cancel(self, job_id: str) -> JobRecord:
        with self._tx() as cur:
            row = cur.execute(
                f"""UPDATE easel_jobs SET status = 'cancelled', finished_at = {_NOW}
                    WHERE id = %s AND status = 'queued' RETURNING {_COLUMNS}""",
                (job_id,),
            ).fetchone()
            current = (
                None
                if row
                else cur.execute("SELECT status FROM easel_jobs WHERE id = %s", (job_id,)).fetchone()
            )
        if row is not None:
            return _record(row)
        if current is None:
            raise JobNotFound(job_id)
        raise JobStateError(f"job {job_id} is {current['status']}, only a queued job can be cancelled")

    def retry(self, job_id: str) -> JobRecord:
        retryable = sorted(RETRYABLE_STATUSES)
        with self._tx() as cur:
            row = cur.execute("SELECT status FROM easel_jobs WHERE id = %s FOR UPDATE", (job_id,)).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            if row["status"] not in RETRYABLE_STATUSES:
                raise JobStateError(
                    f"job {job_id} is {row['status']}; only {', '.join(retryable)} jobs can be retried"
                )
            # a retried job goes to the back of its priority level: a new seq
            row = cur.execute(
                f"""UPDATE easel_jobs SET seq = nextval(pg_get_serial_sequence('easel_jobs', 'seq')),
                        status = 'queued', result = NULL, error = NULL, worker_id = NULL, lease_until = NULL,
                        started_at = NULL, finished_at = NULL, progress = 0, passed_over = 0, interrupt = FALSE
                    WHERE id = %s RETURNING {_COLUMNS}""",
                (job_id,),
            ).fetchone()
            # its old result is gone, so are the bytes of its images (the run stores new ones)
            cur.execute("DELETE FROM easel_job_images WHERE job_id = %s", (job_id,))
        return _record(row)

    def recover_running(self, only_expired: bool, reason: str) -> list[str]:
        condition = "status = 'running'"
        if only_expired:
            condition += f" AND (lease_until IS NULL OR lease_until < {_NOW})"
        with self._tx() as cur:
            rows = cur.execute(
                f"""UPDATE easel_jobs SET status = %s, error = %s, finished_at = {_NOW}, lease_until = NULL
                    WHERE {condition} RETURNING id""",
                (INTERRUPTED, reason),
            ).fetchall()
        return [row["id"] for row in rows]

    def note_error(self, job_id: str, note: str) -> JobRecord | None:
        with self._tx() as cur:
            cur.execute(
                """UPDATE easel_jobs SET error = CASE WHEN error IS NULL OR error = '' THEN %s
                        ELSE error || '; ' || %s END
                    WHERE id = %s AND status NOT IN ('running', 'done')""",
                (note, note, job_id),
            )
        return self.get(job_id)

    def requeue_expired(self, max_attempts: int) -> list[tuple[str, str]]:
        changed: list[tuple[str, str]] = []
        with self._tx() as cur:
            # SKIP LOCKED: two workers sweeping at once split the expired jobs between them
            expired = cur.execute(
                f"""SELECT id, attempts FROM easel_jobs WHERE status = 'running' AND lease_until < {_NOW}
                    FOR UPDATE SKIP LOCKED"""
            ).fetchall()
            for row in expired:
                if row["attempts"] < max_attempts:
                    cur.execute(
                        """UPDATE easel_jobs SET status = 'queued', worker_id = NULL, lease_until = NULL,
                               progress = 0, started_at = NULL, interrupt = FALSE WHERE id = %s""",
                        (row["id"],),
                    )
                    changed.append((row["id"], QUEUED))
                else:
                    cur.execute(
                        f"""UPDATE easel_jobs SET status = %s, error = %s, finished_at = {_NOW},
                               lease_until = NULL WHERE id = %s""",
                        (FAILED, poison_reason(row["attempts"]), row["id"]),
                    )
                    changed.append((row["id"], FAILED))
        return changed

    def request_interrupt(self, job_id: str) -> bool:
        with self._tx() as cur:
            cur.execute(
                "UPDATE easel_jobs SET interrupt = TRUE WHERE id = %s AND status = 'running'", (job_id,)
            )
            asked = cur.rowcount == 1
        if asked:  # the worker also polls the flag; this only makes it quicker
            self.notify({"kind": "interrupt", "job_id": job_id})
        return asked

    def interrupt_requested(self, job_id: str) -> bool:
        row = self._one("SELECT interrupt FROM easel_jobs WHERE id = %s", (job_id,))
        return bool(row and row["interrupt"])

    # --- the workers' registry ------------------------------------------------------------

    def worker_seen(self, info: WorkerInfo) -> None:
        names = _WORKER_COLUMNS.split(", ")
        values = info.as_dict()
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in names if n not in ("id", "heartbeat_at"))
        with self._tx() as cur:
            cur.execute(
                f"""INSERT INTO easel_workers ({_WORKER_COLUMNS})
                    VALUES ({", ".join("%s" if n != "heartbeat_at" else _NOW for n in names)})
                    ON CONFLICT (id) DO UPDATE SET {updates}, heartbeat_at = {_NOW}""",
                [values[n] for n in names if n != "heartbeat_at"],
            )

    def worker_gone(self, worker_id: str) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM easel_workers WHERE id = %s", (worker_id,))

    def workers(self, seen_within_s: float | None = None) -> list[WorkerInfo]:
        where, params = "", []
        if seen_within_s is not None:
            where, params = f"WHERE heartbeat_at >= {_NOW} - %s", [float(seen_within_s)]
        with self._conn().cursor() as cur:
            rows = cur.execute(
                f"SELECT {_WORKER_COLUMNS}, {_NOW} - heartbeat_at AS heartbeat_age_s "
                f"FROM easel_workers {where} ORDER BY started_at",
                params,
            ).fetchall()
        return [WorkerInfo(**row) for row in rows]

    # --- LISTEN/NOTIFY --------------------------------------------------------------------

    @property
    def notifies(self) -> bool:
        return True

    def notify(self, event: dict[str, Any]) -> None:
        payload = json.dumps(event)
        if len(payload.encode()) > MAX_NOTIFY_BYTES and "preview" in event:
            payload = json.dumps({k: v for k, v in event.items() if k != "preview"})  # steps still go
        with self._conn().cursor() as cur:
            cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def listen(self, timeout_s: float) -> Iterator[dict[str, Any]]:
        """Notifications on a connection of the calling thread's own (LISTEN holds it)."""
        conn = getattr(self._local, "listener", None)
        if conn is None or conn.closed or conn.broken:
            conn = self._connect()
            conn.execute(f"LISTEN {CHANNEL}")
            self._local.listener = conn
            with self._all_lock:
                self._all.append(conn)
        for note in conn.notifies(timeout=timeout_s, stop_after=64):
            with contextlib.suppress(ValueError):
                yield json.loads(note.payload)


def _redact(url: str) -> str:
    """The URL without its password, for error messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
