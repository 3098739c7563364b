"""The job queue interface. ``SqliteJobQueue`` is the embedded default; a shared broker
(Redis, Ray) can implement the same methods to feed many workers on many machines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from core.jobs.record import JobRecord


class JobNotFound(KeyError):
    """No job has this id."""


class JobStateError(ValueError):
    """The job exists but is in a state that does not allow this operation."""


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
    def claim(self, worker_id: str, lease_s: float) -> JobRecord | None:
        """Atomically take the next queued job for ``worker_id``: mark it running,
        count the attempt, set the lease. None when nothing is queued."""

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
    ) -> JobRecord | None:
        """Record the end of a running job (done, failed or interrupted). Ignored (None)
        when the job is no longer running under this worker."""

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

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections."""
