"""The live side of jobs: progress of the running job and event fan-out to subscribers.

Events are published from the worker thread and consumed by SSE streams (asyncio), the
WebUI (threads) and ``wait``. Publishing never blocks: a slow subscriber loses old
progress events (it only needs the newest), never the final one.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from core.jobs.record import JobRecord
from core.results import PHASE_LABELS, SAMPLING, STARTING

PROGRESS = "progress"
STARTED = "started"
QUEUED_EVENT = "queued"
FINISHED = "finished"

# progress events a slow subscriber may have waiting; older ones are dropped
MAX_PENDING_PROGRESS = 8


@dataclass
class LiveProgress:
    """Where the running job is now (what /sdapi/v1/progress and SSE report)."""

    job_id: str
    started_at: float = field(default_factory=time.time)
    step: int = 0
    total_steps: int = 0
    batch_index: int = 0
    batch_count: int = 1
    fraction: float = 0.0
    elapsed_s: float = 0.0
    eta_s: float = -1.0  # negative while unknown (before the first sampling step)
    preview: Any | None = field(default=None, repr=False)  # PIL image
    interrupted: bool = False
    skipped: bool = False
    phase: str = STARTING  # core.results.PHASES
    _preview_cache: dict[str, str] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def preview_base64(self, fmt: str = "JPEG") -> str | None:
        """The preview encoded once per format, however many clients ask."""
        if self.preview is None:
            return None
        with self._lock:
            if fmt not in self._preview_cache:
                buffer = io.BytesIO()
                image = self.preview.convert("RGB") if fmt == "JPEG" else self.preview
                image.save(buffer, format=fmt, quality=85) if fmt == "JPEG" else image.save(
                    buffer, format=fmt
                )
                self._preview_cache[fmt] = base64.b64encode(buffer.getvalue()).decode("ascii")
            return self._preview_cache[fmt]

    def textinfo(self) -> str:
        """What the job is doing, in words (A1111's ``textinfo``): "Loading model",
        "Sampling step 3/20, batch 1/2", "Decoding"..."""
        label = PHASE_LABELS.get(self.phase, self.phase)
        if self.phase == SAMPLING:
            label = f"{label} step {self.step}/{self.total_steps}"
        if self.batch_count > 1:
            label = f"{label}, batch {self.batch_index + 1}/{self.batch_count}"
        return label

    def elapsed_now(self) -> float:
        """Seconds since the job started, now (the events' ``elapsed_s`` is as of the last one)."""
        return max(self.elapsed_s, time.time() - self.started_at)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "phase": self.phase,
            "started_at": round(self.started_at, 3),
            "step": self.step,
            "total_steps": self.total_steps,
            "batch_index": self.batch_index,
            "batch_count": self.batch_count,
            "progress": round(self.fraction, 4),
            "elapsed_s": round(self.elapsed_s, 3),
            "eta_s": round(self.eta_s, 3),
            "interrupted": self.interrupted,
            "skipped": self.skipped,
        }


@dataclass
class JobEvent:
    kind: str  # queued | started | progress | finished
    job_id: str
    progress: LiveProgress | None = None
    record: JobRecord | None = None

    @property
    def final(self) -> bool:
        return self.kind == FINISHED


class Subscription:
    """Events for one job (or all jobs), read from a thread with ``get(timeout)``."""

    def __init__(self, job_id: str | None, hub: EventHub) -> None:
        self.job_id = job_id
        self._hub = hub
        self._events: collections.deque[JobEvent] = collections.deque()
        self._ready = threading.Condition()

    def push(self, event: JobEvent) -> None:
        with self._ready:
            _append_bounded(self._events, event)
            self._ready.notify_all()

    def get(self, timeout: float | None = None) -> JobEvent | None:
        """The next event, or None after ``timeout`` seconds."""
        with self._ready:
            if not self._events and not self._ready.wait_for(lambda: bool(self._events), timeout):
                return None
            return self._events.popleft()

    def close(self) -> None:
        self._hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class AsyncSubscription(Subscription):
    """The same for asyncio code: ``await sub.aget(timeout)``. Events are handed to the
    subscriber's loop with ``call_soon_threadsafe``, so waiting costs no thread."""

    def __init__(self, job_id: str | None, hub: EventHub, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(job_id, hub)
        self._loop = loop
        self._wakeup = asyncio.Event()

    def push(self, event: JobEvent) -> None:
        with self._ready:
            _append_bounded(self._events, event)
        with contextlib.suppress(RuntimeError):  # a closed loop: the client went away
            self._loop.call_soon_threadsafe(self._wakeup.set)

    async def aget(self, timeout: float | None = None) -> JobEvent | None:
        while True:
            with self._ready:
                if self._events:
                    return self._events.popleft()
                self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                with self._ready:
                    return self._events.popleft() if self._events else None


def _append_bounded(events: collections.deque[JobEvent], event: JobEvent) -> None:
    if event.kind == PROGRESS:
        pending = [e for e in events if e.kind == PROGRESS]
        if len(pending) >= MAX_PENDING_PROGRESS:
            events.remove(pending[0])
    events.append(event)


class EventHub:
    """Thread-safe fan-out of job events to subscriptions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()

    def subscribe(self, job_id: str | None = None) -> Subscription:
        subscription = Subscription(job_id, self)
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def subscribe_async(self, job_id: str | None = None) -> AsyncSubscription:
        subscription = AsyncSubscription(job_id, self, asyncio.get_running_loop())
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def publish(self, event: JobEvent) -> None:
        with self._lock:
            targets = [s for s in self._subscriptions if s.job_id in (None, event.job_id)]
        for subscription in targets:
            subscription.push(event)

    def watched_ids(self) -> set[str]:
        """The jobs someone subscribed to by id."""
        with self._lock:
            return {s.job_id for s in self._subscriptions if s.job_id is not None}

    def __len__(self) -> int:
        with self._lock:
            return len(self._subscriptions)
