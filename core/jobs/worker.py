"""The worker: one thread that takes jobs from the queue and runs them one at a time
(the accelerator is one), with a heartbeat that keeps its lease on the running job.

With ``shared=True`` (an ``easel worker`` process, one of several on one queue) it also
sweeps the queue for jobs whose worker died (lease expired: queued again, or failed as
poison jobs), keeps its row in the workers' registry fresh, and prefers jobs for the
model it ran last (model affinity, bounded by the queue's fairness rule).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from core.jobs.queue import DEFAULT_AFFINITY_PASSES, DEFAULT_MAX_ATTEMPTS, JobQueue, WorkerInfo
from core.jobs.record import DONE, FAILED, INTERRUPTED, JobRecord
from core.jobs.result_images import ResultImage
from core.results import CancelToken, GenerationInterrupted, GenerationResult, ProgressEvent
from plugin_api.types import GenerationRequest

log = logging.getLogger("easel.jobs")

# The runner has Engine.generate's signature, so the engine's bound method is one.
Runner = Callable[..., GenerationResult]


class WorkerListener(Protocol):
    """What the worker tells the service (the live side) about the job it runs."""

    def job_started(self, record: JobRecord, cancel: CancelToken) -> None: ...

    def job_progress(self, job_id: str, event: ProgressEvent) -> None: ...

    def job_finished(self, record: JobRecord, result: GenerationResult | None) -> dict[str, Any] | None:
        """Called before the record is finished; returns the result JSON to store."""

    def job_images(self, record: JobRecord, stored: dict[str, Any]) -> list[ResultImage]:
        """The image bytes to store with the finish (``--result-images db``), else []."""

    def job_recorded(self, record: JobRecord) -> None: ...


class Worker(threading.Thread):
    def __init__(
        self,
        queue: JobQueue,
        runner: Runner,
        request_loader: Callable[[dict[str, Any]], GenerationRequest],
        listener: WorkerListener,
        *,
        worker_id: str,
        lease_s: float = 60.0,
        heartbeat_s: float = 10.0,
        idle_poll_s: float = 1.0,
        shared: bool = False,
        device: str = "",
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        affinity_passes: int = DEFAULT_AFFINITY_PASSES,
    ) -> None:
        super().__init__(name=f"easel-worker-{worker_id}", daemon=True)
        self.queue = queue
        self.runner = runner
        self.request_loader = request_loader
        self.listener = listener
        self.worker_id = worker_id
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self.idle_poll_s = idle_poll_s
        self.finish_retry_s = 1.0
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._current: tuple[str, CancelToken] | None = None
        self.shared = shared
        self.max_attempts = max_attempts
        self.affinity_passes = affinity_passes
        self._draining = threading.Event()
        self._last_sweep = 0.0
        self._last_seen = 0.0
        self.info = WorkerInfo(
            id=worker_id, host=socket.gethostname(), pid=os.getpid(), device=device, started_at=time.time()
        )

    def notify(self) -> None:
        """A job was queued: look now instead of at the next poll."""
        self._wakeup.set()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Interrupt the running job and end the thread."""
        self._stopping.set()
        current = self._current
        if current is not None:
            current[1].interrupt()
        self._wakeup.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def drain(self) -> None:
        """Finish the running job, take no more, end the thread (SIGTERM)."""
        self._draining.set()
        self.info.draining = True
        self._wakeup.set()

    def run(self) -> None:
        while not self._stopping.is_set() and not self._draining.is_set():
            try:
                if self.shared:
                    self._housekeeping()
                record = self.queue.claim(
                    self.worker_id,
                    self.lease_s,
                    prefer_model=self.info.model if self.shared else None,
                    max_passes=self.affinity_passes,
                )
            except Exception:  # a locked or broken database must not kill the worker
                log.exception("could not claim a job; retrying")
                record = None
                self._stopping.wait(self.idle_poll_s)
            if record is None:
                self._wakeup.wait(self.idle_poll_s)
                self._wakeup.clear()
                continue
            self._took(record)
            try:
                self._run_one(record)
            except Exception:  # the worker thread must outlive any one job
                log.exception("job %s: the worker could not complete it", record.id)
                self._current = None
            self.info.job_id = None
            self.info.jobs_done += 1
            self._seen(force=True)
        if self.shared:
            self._seen(force=True)

    def _took(self, record: JobRecord) -> None:
        model = record.request.get("model")
        if model != self.info.model:
            self.info.model_loads += 1  # the engine's model cache may still hold it; an upper bound
        self.info.model = model
        self.info.job_id = record.id
        log.info(
            "worker %s took job %s (model %s, attempt %d)", self.worker_id, record.id, model, record.attempts
        )
        self._seen(force=True)

    def _housekeeping(self) -> None:
        """Between jobs: reclaim jobs of dead workers, refresh this worker's row."""
        now = time.monotonic()
        if now - self._last_sweep >= min(self.heartbeat_s, 5.0):
            self._last_sweep = now
            for job_id, status in self.queue.requeue_expired(self.max_attempts):
                if status == FAILED:
                    log.error(
                        "job %s: its workers died %d times; failed as a poison job", job_id, self.max_attempts
                    )
                else:
                    log.warning("job %s: its worker's lease ran out; queued again", job_id)
        self._seen()

    def _seen(self, force: bool = False) -> None:
        if not self.shared:
            return
        now = time.monotonic()
        if force or now - self._last_seen >= self.heartbeat_s:
            self._last_seen = now
            try:
                self.queue.worker_seen(self.info)
            except Exception:
                log.exception("could not update the workers' registry")

    def _run_one(self, record: JobRecord) -> None:
        cancel = CancelToken()
        self._current = (record.id, cancel)
        beating = threading.Event()
        heartbeat = threading.Thread(
            target=self._heartbeat, args=(record.id, beating), name="easel-heartbeat", daemon=True
        )
        heartbeat.start()
        result: GenerationResult | None = None
        status, error = DONE, None
        try:
            self.listener.job_started(record, cancel)
            request = self.request_loader(record.request)
            result = self.runner(
                request,
                job_id=record.id,
                on_progress=lambda event: self.listener.job_progress(record.id, event),
                cancel=cancel,
            )
            if result.interrupted or cancel.interrupted:
                status = INTERRUPTED
        except GenerationInterrupted:
            status = INTERRUPTED
        except Exception as exc:
            status = FAILED
            field = getattr(exc, "field", None)
            error = f"{field}: {exc}" if field and field not in str(exc) else str(exc)
            error = f"{type(exc).__name__}: {error}"
            log.exception("job %s failed", record.id)
        finally:
            beating.set()
        if status == INTERRUPTED and error is None:
            error = "interrupted"
        images: list[ResultImage] = []
        try:
            stored = self.listener.job_finished(record, result)
            if stored is not None:
                images = self.listener.job_images(record, stored)
        except Exception as exc:  # writing preview files, an image too large etc. must not lose the job
            log.exception("job %s: could not store its result", record.id)
            status, error, stored, images = FAILED, f"could not store the result: {exc}", None, []
        finished = self._finish(record.id, status, stored, error, images)
        self._current = None
        heartbeat.join(timeout=5)
        self.listener.job_recorded(finished or self.queue.get(record.id) or record)

    def _finish(
        self,
        job_id: str,
        status: str,
        result: dict[str, Any] | None,
        error: str | None,
        images: list[ResultImage] | None = None,
    ) -> JobRecord | None:
        """Record the outcome; a busy database gets a few more chances, so a finished
        job is not left looking like one that died with its server."""
        for attempt in range(5):
            try:
                return self.queue.finish(
                    job_id, self.worker_id, status, result=result, error=error, images=images or None
                )
            except Exception:
                log.exception("job %s: could not record %s (attempt %d)", job_id, status, attempt + 1)
                time.sleep(self.finish_retry_s * (attempt + 1))
        return None

    def _heartbeat(self, job_id: str, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_s):
            try:
                if not self.queue.heartbeat(job_id, self.worker_id, self.lease_s):
                    log.warning("job %s: lease lost", job_id)
                    return
                self._seen(force=True)
            except Exception:
                log.exception("job %s: heartbeat failed", job_id)

    @property
    def current_job_id(self) -> str | None:
        current = self._current
        return current[0] if current else None
