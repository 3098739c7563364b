"""Events of jobs that other processes run, into this process's EventHub (the API node).

An API node whose jobs run in ``easel worker`` processes hears nothing from its own worker
thread. Two sources make up for it:

- ``LISTEN/NOTIFY`` (PostgreSQL): workers send started / progress (every step, with a small
  preview when it fits in a notification) / finished; this thread republishes them.
- polling, for every backend: each job someone waits for (SSE, ``wait``) is read again
  every ``poll_s``; a changed progress or a finished record is published. On SQLite this is
  the only source, so progress there moves in the steps the worker writes (once a second).
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import threading
from collections.abc import Callable
from typing import Any

from core.jobs.live import FINISHED, PROGRESS, STARTED, EventHub, JobEvent, LiveProgress
from core.jobs.queue import JobQueue
from core.jobs.record import RUNNING

log = logging.getLogger("easel.jobs")


def progress_event(job_id: str, live: LiveProgress, with_preview: bool) -> dict[str, Any]:
    """A worker's progress as a small JSON notification."""
    event: dict[str, Any] = {"kind": PROGRESS, "job_id": job_id, **live.as_dict()}
    if with_preview and live.preview is not None:
        event["preview"] = live.preview_base64("JPEG")
    return event


def live_from_event(event: dict[str, Any]) -> LiveProgress:
    preview = None
    if event.get("preview"):
        from PIL import Image

        with contextlib.suppress(Exception):  # a bad preview costs the preview, not the event
            preview = Image.open(io.BytesIO(base64.b64decode(event["preview"])))
            preview.load()
    return LiveProgress(
        job_id=event["job_id"],
        step=int(event.get("step", 0)),
        total_steps=int(event.get("total_steps", 0)),
        batch_index=int(event.get("batch_index", 0)),
        batch_count=int(event.get("batch_count", 1)),
        fraction=float(event.get("progress", 0.0)),
        elapsed_s=float(event.get("elapsed_s", 0.0)),
        eta_s=float(event.get("eta_s", -1.0)),
        preview=preview,
        interrupted=bool(event.get("interrupted", False)),
        phase=str(event.get("phase") or "sampling"),
        **({"started_at": float(event["started_at"])} if event.get("started_at") else {}),
    )


class RemoteEvents:
    def __init__(
        self,
        queue: JobQueue,
        hub: EventHub,
        poll_s: float = 0.5,
        ignore: Callable[[str], bool] | None = None,
    ) -> None:
        self.queue = queue
        self.ignore = ignore or (lambda _job_id: False)
        self.hub = hub
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._progress: dict[str, float] = {}
        # the newest progress heard, for /sdapi/v1/progress and the WebUI on an API node
        self.latest: LiveProgress | None = None
        self._threads = [threading.Thread(target=self._poll, name="easel-remote-poll", daemon=True)]
        if queue.notifies:
            self._threads.append(
                threading.Thread(target=self._listen, name="easel-remote-listen", daemon=True)
            )

    def start(self) -> RemoteEvents:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                for event in self.queue.listen(timeout_s=1.0):
                    self._publish(event)
                    if self._stop.is_set():
                        return
            except Exception:  # the database restarts: listen again after a pause
                log.exception("listening for job events failed; retrying")
                self._stop.wait(2.0)

    def _publish(self, event: dict[str, Any]) -> None:
        kind, job_id = event.get("kind"), event.get("job_id")
        if not isinstance(job_id, str) or self.ignore(job_id):
            return
        if kind == PROGRESS:
            live = live_from_event(event)
            self._progress[job_id] = live.fraction
            self.latest = live
            self.hub.publish(JobEvent(PROGRESS, job_id, progress=live))
        elif kind in (STARTED, FINISHED):
            record = self.queue.get(job_id)
            if record is not None:
                self.hub.publish(JobEvent(kind, job_id, record=record))
            if kind == FINISHED:
                self._progress.pop(job_id, None)
                if self.latest is not None and self.latest.job_id == job_id:
                    self.latest = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            latest = self.latest
            watched = self.hub.watched_ids() | ({latest.job_id} if latest is not None else set())
            for job_id in watched:
                if self.ignore(job_id):
                    continue
                try:
                    record = self.queue.get(job_id)
                except Exception:
                    log.exception("job %s: could not read it", job_id)
                    continue
                if record is None:
                    continue
                if record.status != RUNNING:  # finished, or queued again after its worker died
                    self._progress.pop(job_id, None)
                    if latest is not None and latest.job_id == job_id:
                        self.latest = None
                if record.finished:
                    self.hub.publish(JobEvent(FINISHED, job_id, record=record))
                elif record.status == RUNNING and record.progress > self._progress.get(job_id, 0.0):
                    self._progress[job_id] = record.progress
                    live = LiveProgress(job_id=job_id, fraction=record.progress)
                    self.hub.publish(JobEvent(PROGRESS, job_id, progress=live))
