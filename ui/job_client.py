"""The WebUI's only door to generation: submit to the ``JobService`` and follow the job.

Nothing in ``ui/`` calls the engine: a WebUI generation is a job like an API one, so it
is queued, persisted, listed in the Queue tab and can be interrupted from anywhere.
This module turns the service's job events into small snapshots the handlers render.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from plugin_api.types import GenerationRequest
from ui.i18n import Message  # messages the WebUI says in the page's language

log = logging.getLogger("easel.ui")

FINISHED_STATUSES = frozenset({"done", "failed", "cancelled", "interrupted"})
# How often a follower re-reads the record when no event arrives: covers a job that
# finished between submit() and subscribe().
POLL_S = 1.0


@dataclass
class JobSnapshot:
    """What a generation handler shows at one moment of a job's life."""

    job_id: str
    status: str  # queued | running | done | failed | cancelled | interrupted
    step: int = 0
    total_steps: int = 0
    batch_index: int = 0
    batch_count: int = 1
    fraction: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float = -1.0  # negative while unknown
    preview: Any | None = None  # PIL image
    phase: str = ""  # a running job's phase (core.results.PHASES): loading, sampling...
    queue_position: int | None = None
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


def _record_status(record: Any) -> str:
    return str(getattr(record, "status", None) or (record or {}).get("status", "queued"))


def _record_field(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, dict):
        return record.get(name, default)
    return getattr(record, name, default)


class JobClient:
    """Submit, follow, cancel and list jobs for the WebUI."""

    def __init__(self, service: Any) -> None:
        self.service = service

    # --- submitting and following ---------------------------------------------------

    def submit(self, request: GenerationRequest) -> str:
        return str(self.service.submit(request))

    def follow(self, job_id: str, timeout_s: float | None = None) -> Iterator[JobSnapshot]:
        """Snapshots of the job until it has finished; the last one is final.

        Progress events the UI is too slow for are dropped by the service (only the
        newest matters); the finished event never is.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._subscribe(job_id) as subscription:
            snapshot = self.snapshot(job_id)
            yield snapshot
            if snapshot.finished:
                return
            while deadline is None or time.monotonic() < deadline:
                event = subscription.get(timeout=POLL_S)
                if event is None:
                    # No event for a while: it may have finished before we subscribed,
                    # or it waits behind other jobs (then show its place in the queue), or
                    # a long phase (loading the model) runs: its clock still moves.
                    snapshot = self._live_snapshot(job_id) or self.snapshot(job_id)
                    yield snapshot
                    if snapshot.finished:
                        return
                    continue
                kind = getattr(event, "kind", "")
                if kind == "progress" and event.progress is not None:
                    yield self._from_progress(job_id, event.progress)
                elif kind == "finished":
                    yield self.snapshot(job_id, record=event.record)
                    return
                else:  # queued / started
                    yield self.snapshot(job_id, record=event.record)
            yield JobSnapshot(job_id=job_id, status="failed", error=f"no result after {timeout_s} s")

    def _subscribe(self, job_id: str) -> Any:
        # The brief names it ``service.subscribe``; the service keeps it on its event hub.
        subscribe = getattr(self.service, "subscribe", None) or self.service.events.subscribe
        return subscribe(job_id)

    def _live_snapshot(self, job_id: str) -> JobSnapshot | None:
        """The running job's live progress when it is this job (this process's worker)."""
        live = getattr(self.service, "progress", lambda: None)()
        if live is None or getattr(live, "job_id", None) != job_id:
            return None
        return self._from_progress(job_id, live)

    def _from_progress(self, job_id: str, progress: Any) -> JobSnapshot:
        elapsed = getattr(progress, "elapsed_now", None)
        return JobSnapshot(
            job_id=job_id,
            status="running",
            step=int(progress.step),
            total_steps=int(progress.total_steps),
            batch_index=int(progress.batch_index),
            batch_count=int(progress.batch_count),
            fraction=float(progress.fraction),
            elapsed_s=float(elapsed() if callable(elapsed) else progress.elapsed_s),
            eta_s=float(progress.eta_s),
            preview=progress.preview,
            phase=str(getattr(progress, "phase", "") or ""),
        )

    def snapshot(self, job_id: str, record: Any | None = None) -> JobSnapshot:
        record = record if record is not None else self.service.get(job_id)
        if record is None:
            return JobSnapshot(job_id=job_id, status="failed", error=f"job {job_id} not found")
        status = _record_status(record)
        snapshot = JobSnapshot(
            job_id=job_id,
            status=status,
            fraction=float(_record_field(record, "progress", 0.0) or 0.0),
            error=_record_field(record, "error"),
            result=_record_field(record, "result") or {},
        )
        if snapshot.finished and snapshot.result.get("stored_images"):
            snapshot.result = self._local_images(job_id, snapshot.result)
        if status == "queued":
            snapshot.queue_position = self.queue_position(job_id)
        return snapshot

    def _local_images(self, job_id: str, result: dict[str, Any]) -> dict[str, Any]:
        """A job whose worker stored its images in the queue (--result-images db, maybe on
        another machine): its paths on this node, written from the queue when missing."""
        try:
            return {**result, "paths": [str(p) for p in self.service.image_paths(job_id)]}
        except Exception:  # the job still shows, without images, if they cannot be had
            log.exception("job %s: could not fetch its stored images", job_id)
            return result

    def queue_position(self, job_id: str) -> int | None:
        """1-based place among queued jobs, None when it is not queued."""
        try:
            if hasattr(self.service, "queue_position"):
                return self.service.queue_position(job_id)
            queued = self.service.list(statuses=("queued",), limit=200)
        except Exception:  # a listing problem must not break following the job
            return None
        ids = [_record_field(r, "id") for r in queued]
        return ids.index(job_id) + 1 if job_id in ids else None

    # --- results ---------------------------------------------------------------------

    @staticmethod
    def result_paths(result: dict[str, Any]) -> list[str]:
        """The image files a finished job wrote (the engine saves every image)."""
        paths = result.get("paths") or result.get("images") or []
        return [str(p) for p in paths if isinstance(p, str | Path) and Path(p).is_file()]

    @staticmethod
    def result_infotexts(result: dict[str, Any]) -> list[str]:
        return [str(t) for t in result.get("infotexts") or []]

    @staticmethod
    def result_seeds(result: dict[str, Any]) -> list[int]:
        return [int(s) for s in result.get("seeds") or []]

    @staticmethod
    def load_images(paths: list[str]) -> list[Image.Image]:
        images = []
        for path in paths:
            with Image.open(path) as image:
                image.load()
                images.append(image)
        return images

    # --- control ---------------------------------------------------------------------

    def interrupt(self, job_id: str | None) -> str:
        """Stop this session's job: a queued one is cancelled, a running one interrupted."""
        if not job_id:
            return Message("no job to interrupt")
        return self.cancel(job_id)

    def skip(self, job_id: str | None) -> str:
        """Skip the current batch of this session's job only: Skip in one browser must
        not cut short another session's generation."""
        if not job_id:
            return Message("no job to skip")
        current = getattr(self.service, "current_job_id", job_id)
        if current != job_id:
            return Message("job {job_id} is not running", job_id=job_id)
        self.service.skip()
        return Message("job {job_id}: skipping the current batch", job_id=job_id)

    def cancel(self, job_id: str | None) -> str:
        """Cancel a queued job or interrupt a running one; says what happened."""
        job_id = (job_id or "").strip()
        if not job_id:
            return Message("enter a job id")
        record = self.service.get(job_id)
        if record is None:
            return Message("job {job_id} not found", job_id=job_id)
        status = _record_status(record)
        try:
            if status == "queued":
                self.service.cancel(job_id)
                return Message("job {job_id} cancelled", job_id=job_id)
            if status == "running":
                self.service.interrupt(job_id)
                return Message("job {job_id} interrupted", job_id=job_id)
        except (KeyError, ValueError) as exc:  # it finished or started meanwhile
            return Message("job {job_id}: {error}", job_id=job_id, error=exc)
        return Message("job {job_id} is already {status}", job_id=job_id, status=Message(status))

    def list_jobs(self, limit: int = 100) -> list[Any]:
        return list(self.service.list(limit=limit))

    def workers(self) -> list[dict[str, Any]]:
        """The queue's workers (several with `easel worker` / `--workers N`)."""
        return list(self.service.workers())
