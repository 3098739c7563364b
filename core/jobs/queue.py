"""The job queue interface. ``SqliteJobQueue`` is the embedded default (one machine, one or
several worker processes); ``PostgresJobQueue`` feeds workers on many machines. Both keep
the same job record, so the API cannot tell them apart."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from core.jobs.record import JobRecord
from core.jobs.result_images import ResultImage


class JobNotFound(KeyError):
    """No job has this id."""


class JobStateError(ValueError):
    """The job exists but is in a state that does not allow this operation."""


# Model affinity's fairness bound: the job at the head of the queue may be passed over this
# many times by workers that prefer a job for the model they have loaded; the next claim
# takes it whatever its model. So a job never starves, and a worker switches models at most
# once every (passes + 1) jobs while jobs for its model keep coming.
DEFAULT_AFFINITY_PASSES = 3
# A job whose worker died is queued again after its lease ran out, until it has been
# started this many times; then it fails as a "poison job" (it may be what kills workers).
DEFAULT_MAX_ATTEMPTS = 3


@dataclass
class WorkerInfo:
    """One worker process as the queue's registry knows it (GET /api/v1/workers)."""

    id: str
    host: str
    pid: int
    device: str
    model: str | None = None  # the model it ran last, so has loaded
    job_id: str | None = None  # the job it runs now
    heartbeat_at: float = 0.0
    started_at: float = 0.0
    model_loads: int = 0  # jobs that needed another model than the one it had loaded
    jobs_done: int = 0
    draining: bool = False
    # seconds since its last heartbeat, by the queue's clock (PostgreSQL: the database
    # server's), measured when the registry was read; never stored
    heartbeat_age_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def poison_reason(attempts: int) -> str:
    return (
        f"poison job: its worker stopped without finishing it {attempts} times (lease expired); "
        "not queued again (EASEL_MAX_ATTEMPTS)"
    )


class JobQueue(ABC):
    """Durable storage and ordering of jobs. Every method is safe to call from any thread.

    Ordering: higher ``priority`` first, then first come first served. ``claim`` must be
    atomic: two workers never get the same job.
    """

    @abstractmethod
    def put(self, kind: str, request: dict[str, Any], priority: int = 0) -> JobRecord:
        """Store a new queued job and return it (with its new id)."""

    @abstractmethod
    def get(self, job_id: str) -> JobRecord | None: ...

    @abstractmethod
    def list(
        self, statuses: tuple[str, ...] | None = None, limit: int = 50, offset: int = 0
    ) -> list[JobRecord]:
        """Jobs, newest first (queued jobs in the order they will run when only
        queued jobs are asked for)."""

    @abstractmethod
    def count(self, statuses: tuple[str, ...] | None = None) -> int: ...

    @abstractmethod
    def claim(
        self,
        worker_id: str,
        lease_s: float,
        prefer_model: str | None = None,
        max_passes: int = DEFAULT_AFFINITY_PASSES,
    ) -> JobRecord | None:
        """Atomically take the next queued job for ``worker_id``: mark it running,
        count the attempt, set the lease. None when nothing is queued.

        ``prefer_model``: take the first job of the head's priority for this model instead
        of the head, unless the head has already been passed over ``max_passes`` times.
        """

    @abstractmethod
    def requeue_expired(self, max_attempts: int) -> list[tuple[str, str]]:
        """Jobs ``running`` whose lease ran out (their worker died): queued again, or
        failed as poison jobs once started ``max_attempts`` times. Returns (id, status)."""

    @abstractmethod
    def request_interrupt(self, job_id: str) -> bool:
        """Ask the worker running this job, in whatever process, to stop it. False when
        the job is not running."""

    @abstractmethod
    def interrupt_requested(self, job_id: str) -> bool: ...

    # --- the workers' registry ------------------------------------------------------------

    @abstractmethod
    def worker_seen(self, info: WorkerInfo) -> None:
        """Insert or update a worker's row (its heartbeat)."""

    @abstractmethod
    def worker_gone(self, worker_id: str) -> None: ...

    @abstractmethod
    def workers(self, seen_within_s: float | None = None) -> list[WorkerInfo]: ...

    # --- live events between processes ----------------------------------------------------

    def notify(self, event: dict[str, Any]) -> None:  # noqa: B027 - only some backends can
        """Send a small JSON event to every process that listens (progress of a job)."""

    def listen(self, timeout_s: float) -> Iterator[dict[str, Any]]:
        """Events sent with ``notify`` by any process, until ``timeout_s`` passes with none.
        Backends without notifications yield nothing (callers poll the records)."""
        return iter(())

    @property
    def notifies(self) -> bool:
        """Whether ``notify`` reaches other processes."""
        return False

    @abstractmethod
    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Extend the lease of a job this worker runs. False if it no longer holds it."""

    @abstractmethod
    def set_progress(self, job_id: str, progress: float) -> None: ...

    @abstractmethod
    def finish(
        self,
        job_id: str,
        worker_id: str,
        status: str,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        images: list[ResultImage] | None = None,
    ) -> JobRecord | None:
        """Record the end of a running job (done, failed or interrupted). Ignored (None)
        when the job is no longer running under this worker. ``images``: the bytes of
        its image files (``--result-images db``), stored in the same transaction, so a
        finished job never lacks them and a late finish stores none."""

    @abstractmethod
    def result_image(self, job_id: str, index: int) -> bytes | None:
        """The stored bytes of a job's image (``--result-images db``); None if none."""

    @abstractmethod
    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job. Raises JobNotFound, or JobStateError if it is not queued."""

    @abstractmethod
    def retry(self, job_id: str) -> JobRecord:
        """Queue a failed, cancelled or interrupted job again (its attempts are kept)."""

    @abstractmethod
    def recover_running(self, only_expired: bool, reason: str) -> list[str]:
        """Mark jobs left ``running`` by a worker that died as ``interrupted``.

        ``only_expired``: only those whose lease has run out (many workers share the
        queue); otherwise every running job (the single embedded worker starts up).
        Returns their ids.
        """

    def record_images(self, job_id: str, paths: list[str]) -> JobRecord | None:
        """Add image files a job wrote (found by start-up recovery) to its result, once
        each; the job's status is unchanged. None when there is no such job."""
        raise NotImplementedError(f"{type(self).__name__} cannot record recovered images")

    def note_error(self, job_id: str, note: str) -> JobRecord | None:
        """Add ``note`` to the error of a job that is not running or done (start-up names
        the extension that killed the worker running it). None when there is no such job."""
        raise NotImplementedError(f"{type(self).__name__} cannot annotate jobs")

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections."""
