"""JobService: the queue plus the worker plus the live side (progress, events, wait).

Every front end (WebUI, native API, /sdapi/v1, CLI) talks to this object only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.jobs.live import (
    FINISHED,
    PROGRESS,
    QUEUED_EVENT,
    STARTED,
    AsyncSubscription,
    EventHub,
    JobEvent,
    LiveProgress,
    Subscription,
)
from core.jobs.queue import (
    DEFAULT_AFFINITY_PASSES,
    DEFAULT_MAX_ATTEMPTS,
    JobNotFound,
    JobQueue,
    JobStateError,
)
from core.jobs.record import DONE, FINISHED_STATUSES, QUEUED, RUNNING, JobRecord
from core.jobs.recovery import recover_images
from core.jobs.remote_events import RemoteEvents, progress_event
from core.jobs.requests import request_from_json, request_to_json
from core.jobs.result_images import (
    DB,
    DEFAULT_MAX_MB,
    OUTPUTS,
    SHARED_FOLDER,
    TRANSIENT,
    ImagePathRefused,
    ResultImage,
    local_path,
    read_result_images,
    write_atomically,
)
from core.jobs.results import result_to_json, write_transient_images
from core.jobs.worker import Runner, Worker
from core.results import CancelToken, GenerationResult, ProgressEvent
from plugin_api.types import GenerationRequest

log = logging.getLogger("easel.jobs")

PROGRESS_WRITE_INTERVAL_S = 1.0  # the DB copy of progress is for listings; keep writes rare
TRANSIENT_TTL_S = 3600.0  # unsaved results (save_images=false) are kept this long
# A cancel asked by another process is a flag in the job's row: read at most this often
# while sampling (once per step on a slow step), so it lands within about one step.
INTERRUPT_POLL_S = 0.25


class JobTimeout(TimeoutError):
    """wait() ran out of time; the job goes on."""


class JobService:
    def __init__(
        self,
        queue: JobQueue,
        runner: Runner,
        *,
        transient_dir: Path,
        validate: Callable[[GenerationRequest], GenerationRequest] | None = None,
        image_roots: tuple[Path, ...] = (),
        worker_id: str | None = None,
        engine: Any | None = None,
        shared: bool = False,
        device: str = "",
        lease_s: float = 60.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        affinity_passes: int = DEFAULT_AFFINITY_PASSES,
        result_images: str = SHARED_FOLDER,
        result_image_max_mb: float = DEFAULT_MAX_MB,
    ) -> None:
        self.queue = queue
        self.runner = runner
        self.validate = validate
        self.engine = engine
        self.transient_dir = Path(transient_dir)
        self.image_roots = tuple(Path(p).resolve() for p in (*image_roots, self.transient_dir))
        # --result-images db: this process's worker stores its images' bytes in the queue;
        # stored images are written back under the same name into these folders
        self.result_images = result_images
        self.max_image_bytes = int(result_image_max_mb * 1024 * 1024)
        self.stored_image_roots = {TRANSIENT: self.transient_dir.resolve()}
        if image_roots:
            self.stored_image_roots[OUTPUTS] = Path(image_roots[0]).resolve()
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.events = EventHub()
        self._lock = threading.Lock()
        self._live: LiveProgress | None = None
        self._cancel: CancelToken | None = None
        self._interrupt_requested: set[str] = set()
        self._last_progress_write = 0.0
        self._last_interrupt_check = 0.0
        # `shared`: one of several worker processes on this queue (easel worker)
        self.shared = shared
        self.lease_s = lease_s  # the same setting on every node: it also says who is alive
        self.worker = Worker(
            queue,
            runner,
            request_from_json,
            self,
            worker_id=self.worker_id,
            lease_s=lease_s,
            heartbeat_s=max(0.2, lease_s / 3),
            shared=shared,
            device=device,
            max_attempts=max_attempts,
            affinity_passes=affinity_passes,
        )
        self.remote: RemoteEvents | None = None
        # Fills ``request.model`` when a front end leaves it empty, so a default chosen
        # in one place (A1111's /sdapi/v1/options) holds for every front end.
        self.default_model: Callable[[], str | None] | None = None

    @classmethod
    def for_engine(cls, engine: Any, queue: JobQueue, *, settings: Any, shared: bool = False) -> JobService:
        """The usual wiring: the engine runs and validates, outputs and transient
        results are the folders clients may read images from."""
        return cls(
            queue,
            engine.generate,
            validate=engine.validate,
            transient_dir=settings.state_dir / "transient",
            image_roots=(settings.outputs_dir,),
            engine=engine,
            lease_s=float(getattr(settings, "lease_s", 60.0)),
            shared=shared,
            device=str(engine.models.device) if shared else "",
            max_attempts=int(getattr(settings, "max_attempts", DEFAULT_MAX_ATTEMPTS)),
            affinity_passes=int(getattr(settings, "affinity_passes", DEFAULT_AFFINITY_PASSES)),
            result_images=str(getattr(settings, "result_images", SHARED_FOLDER)),
            result_image_max_mb=float(getattr(settings, "result_image_max_mb", DEFAULT_MAX_MB)),
        )

    # --- lifecycle ------------------------------------------------------------------

    def start(
        self, recover: bool = True, run_worker: bool = True, remote_events: bool | None = None
    ) -> JobService:
        """Start the worker. ``recover``: this process is the only worker of this queue,
        so any job still marked running was lost when the last process died.
        ``run_worker=False``: an API node; other processes run the jobs, and their events
        reach this one's subscribers through the queue (RemoteEvents). ``remote_events``:
        also with a worker here, when other processes share the queue."""
        if recover:
            lost = self.queue.recover_running(only_expired=False, reason="interrupted: the server stopped")
            for job_id in lost:
                log.warning("job %s was running when the server stopped; marked interrupted", job_id)
            journal = getattr(self.engine, "journal", None)
            if journal is not None:
                recover_images(self.queue, journal, self.engine.outputs_dir)
        self._name_crashed_extensions()
        self._remove_old_transient()
        if run_worker:
            self.worker.start()
        if remote_events if remote_events is not None else not run_worker:
            # this process's own job already publishes here: skip its echo
            self.remote = RemoteEvents(
                self.queue, self.events, ignore=lambda job_id: job_id == self.worker.current_job_id
            ).start()
        return self

    def _name_crashed_extensions(self) -> None:
        """Jobs whose worker process an extension killed say which one (the extension
        manager found it in the crash marker when it loaded; core/plugins/crash_marker.py)."""
        extensions = getattr(getattr(self.engine, "host", None), "extensions", None)
        for crash in getattr(extensions, "crashes", []):
            if not crash.get("job_id"):
                continue
            note = (
                f"extension {crash['extension']!r} was running {crash['hook']} when the worker process died"
            )
            quarantine = extensions.quarantined().get(crash["extension"])
            if quarantine:
                note += f" ({quarantine})"
            try:
                self.queue.note_error(str(crash["job_id"]), note)
            except Exception:
                log.exception("job %s: could not name the extension that crashed it", crash["job_id"])

    def stop(self) -> None:
        """Interrupt the running job (it is recorded as interrupted) and close the queue."""
        if self.worker.is_alive():
            self.worker.stop()
            log.info("job worker stopped")
        if self.remote is not None:
            self.remote.stop()
        if self.shared:
            try:
                self.queue.worker_gone(self.worker_id)
            except Exception:
                log.exception("could not remove this worker from the registry")
        self.queue.close()

    def _notify(self, event: dict[str, Any]) -> None:
        """Tell API nodes in other processes (PostgreSQL LISTEN/NOTIFY); best effort."""
        if self.shared and self.queue.notifies:
            try:
                self.queue.notify(event)
            except Exception:
                log.exception("job %s: could not send the event %s", event.get("job_id"), event.get("kind"))

    # --- submitting and reading -----------------------------------------------------

    def submit(self, request: GenerationRequest, priority: int = 0, kind: str | None = None) -> str:
        """Validate (raises the engine's RequestError before anything is queued) and queue."""
        if request.model is None and self.default_model is not None:
            request.model = self.default_model()
        if self.validate is not None:
            request = self.validate(request)
        record = self.queue.put(kind or request.mode, request_to_json(request), priority)
        self.events.publish(JobEvent(QUEUED_EVENT, record.id, record=record))
        self.worker.notify()
        return record.id

    def get(self, job_id: str) -> JobRecord | None:
        record = self.queue.get(job_id)
        live = self._live
        if record is not None and live is not None and live.job_id == job_id and record.status == RUNNING:
            record.progress = live.fraction
        return record

    def list(
        self, statuses: tuple[str, ...] | None = None, limit: int = 50, offset: int = 0
    ) -> list[JobRecord]:
        return self.queue.list(statuses, limit=limit, offset=offset)

    def pending_count(self) -> int:
        return self.queue.count((QUEUED, RUNNING))

    def queue_position(self, job_id: str) -> int | None:
        """1 = this queued job runs next; None when it is not queued."""
        position = getattr(self.queue, "queue_position", None)
        return position(job_id) if position else None

    def subscribe(self, job_id: str | None = None) -> Subscription:
        """Events of one job (or of all, with None) for a thread: ``sub.get(timeout)``;
        close it (or use ``with``) when done."""
        return self.events.subscribe(job_id)

    def subscribe_async(self, job_id: str | None = None) -> AsyncSubscription:
        """The same for asyncio code (``await sub.aget(timeout)``); call it in the loop."""
        return self.events.subscribe_async(job_id)

    def progress(self) -> LiveProgress | None:
        """The running job's live progress (None when idle); on an API node, the newest
        a worker process sent (PostgreSQL notifications only)."""
        if self._live is None and self.remote is not None:
            return self.remote.latest
        return self._live

    def workers(self) -> list[dict[str, Any]]:
        """Every worker of this queue as plain rows (GET /api/v1/workers, the Queue tab):
        the registry's, and this process's own worker first when it has one."""
        now = time.time()
        rows = [
            {
                "id": w.id,
                "host": w.host,
                "pid": w.pid,
                "device": w.device,
                "loaded_model": w.model,
                "current_job": w.job_id,
                "last_heartbeat": w.heartbeat_at,
                "heartbeat_age_s": round(max(0.0, w.heartbeat_age_s), 3),
                # two missed leases: presumed dead (killed, lost power) and shown stale.
                # The age is the queue's own (PostgreSQL: the database server's clock),
                # so this node's clock need not agree with the workers'
                "alive": w.heartbeat_age_s < 2 * self.lease_s,
                "in_process": False,
                "started_at": w.started_at,
                "jobs_done": w.jobs_done,
                "model_loads": w.model_loads,
                "draining": w.draining,
            }
            for w in self.queue.workers()
        ]
        if self.worker.is_alive() and not self.shared:  # the embedded worker keeps no registry row
            info = self.worker.info
            device = str(self.engine.models.device) if self.engine is not None else info.device
            rows.insert(
                0,
                {
                    "id": info.id,
                    "host": info.host,
                    "pid": info.pid,
                    "device": device,
                    "loaded_model": info.model,
                    "current_job": self.worker.current_job_id,
                    "last_heartbeat": now,
                    "heartbeat_age_s": 0.0,
                    "alive": True,
                    "in_process": True,
                    "started_at": info.started_at,
                    "jobs_done": info.jobs_done,
                    "model_loads": info.model_loads,
                    "draining": False,
                },
            )
        return rows

    @property
    def current_job_id(self) -> str | None:
        live = self._live
        return live.job_id if live else None

    # --- control --------------------------------------------------------------------

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job, or interrupt it if it is running. Raises JobNotFound, or
        JobStateError for a job that already finished."""
        try:
            record = self.queue.cancel(job_id)
        except JobStateError:
            record = self.queue.get(job_id)
            if record is None:
                raise JobNotFound(job_id) from None
            if record.status != RUNNING:
                raise
            self.interrupt(job_id)
            return record
        self.events.publish(JobEvent(FINISHED, job_id, record=record))  # wake its waiters
        return record

    def interrupt(self, job_id: str | None = None) -> bool:
        """Stop the given running job within one step; without an id (A1111's
        ``/sdapi/v1/interrupt``, which knows one job at a time) every job that runs, in
        this process or in a worker process of this queue. True when one was asked to stop."""
        if job_id is not None:
            return self._interrupt_one(job_id)
        running = {r.id for r in self.queue.list(statuses=(RUNNING,), limit=10_000)}
        live = self._live
        if live is not None:
            running.add(live.job_id)
        return any([self._interrupt_one(running_id) for running_id in sorted(running)])

    def _interrupt_one(self, job_id: str) -> bool:
        with self._lock:
            live, cancel = self._live, self._cancel
            if live is not None and cancel is not None and live.job_id == job_id:
                live.interrupted = True
                cancel.interrupt()
                return True
            # claimed but not started yet, or running in another worker process: the flag
            # in its row reaches whichever worker runs it; the set covers this process's
            record = self.queue.get(job_id)
            if record is not None and record.status == RUNNING:
                self._interrupt_requested.add(job_id)
                self.queue.request_interrupt(job_id)
                return True
            return False

    def skip(self) -> bool:
        """Skip the current batch of the running job (A1111's Skip)."""
        with self._lock:
            if self._live is None or self._cancel is None:
                return False
            self._live.skipped = True
            self._cancel.skip()
            return True

    def retry(self, job_id: str) -> JobRecord:
        record = self.queue.retry(job_id)
        self.events.publish(JobEvent(QUEUED_EVENT, record.id, record=record))
        self.worker.notify()
        return record

    # --- waiting ---------------------------------------------------------------------

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """Block until the job finished; raises JobNotFound or JobTimeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.events.subscribe(job_id) as subscription:
            while True:
                record = self.queue.get(job_id)  # after subscribing: no event is missed
                if record is None:
                    raise JobNotFound(job_id)
                if record.status in FINISHED_STATUSES:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise JobTimeout(f"job {job_id} is still {record.status}")
                # re-check now and then: another process may run this queue's jobs
                subscription.get(timeout=min(remaining or 5.0, 5.0))

    async def wait_async(self, job_id: str, timeout: float | None = None) -> JobRecord:
        """The same for asyncio code, without tying up a thread while waiting."""
        deadline = None if timeout is None else time.monotonic() + timeout
        subscription = self.events.subscribe_async(job_id)
        try:
            while True:
                record = await asyncio.to_thread(self.queue.get, job_id)
                if record is None:
                    raise JobNotFound(job_id)
                if record.status in FINISHED_STATUSES:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise JobTimeout(f"job {job_id} is still {record.status}")
                while True:
                    event = await subscription.aget(timeout=min(remaining or 5.0, 5.0))
                    if event is None or event.final:
                        break
        finally:
            subscription.close()

    def image_paths(self, job_id: str) -> list[Path]:
        """The files of a finished job's images, each checked to lie inside an image root.
        An image whose bytes the worker stored in the queue (``--result-images db``) is
        written into this node's folder first when it is not there yet."""
        record = self.queue.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        count = len((record.result or {}).get("paths", []))
        return [self._image_path(record, index) for index in range(count)]

    def image_path(self, job_id: str, index: int) -> Path:
        """One image's file (as ``image_paths``), only this one fetched from the queue."""
        record = self.queue.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        if not 0 <= index < len((record.result or {}).get("paths", [])):
            raise JobNotFound(f"{job_id}/images/{index}")
        return self._image_path(record, index)

    def _image_path(self, record: JobRecord, index: int) -> Path:
        result = record.result or {}
        stored = result.get("stored_images") or []
        if index < len(stored):
            return self._stored_image(record.id, index, stored[index])
        name = result["paths"][index]
        path = Path(name).resolve()
        if not any(path.is_relative_to(root) for root in self.image_roots):
            raise ImagePathRefused(f"job {record.id}: image path {name} lies outside the image folders")
        return path

    def _stored_image(self, job_id: str, index: int, entry: dict[str, Any]) -> Path:
        """This node's file of a stored image: there already (an earlier request, or the
        worker shares this data folder), or written now from the queue's bytes."""
        path = local_path(entry, self.stored_image_roots)
        if path.is_file():
            return path
        data = self.queue.result_image(job_id, index)
        if data is None:  # retried since, or stored by a worker of an older version
            return path  # the caller answers "file removed"
        write_atomically(path, data)
        log.info("job %s: image %d written from the queue to %s", job_id, index, path)
        return path

    def result_files(self, result: dict[str, Any]) -> list[str | None]:
        """Each image's name in the outputs folder (the result's ``files``): the stored
        name when the worker stored its bytes, else the path relative to this node's folders."""
        stored = result.get("stored_images") or []
        names = self.output_names(result.get("paths", []))
        return [str(stored[i].get("name")) if i < len(stored) else n for i, n in enumerate(names)]

    def output_names(self, paths: list[str]) -> list[str | None]:
        """Each path relative to the image folder it lies in (None outside them)."""
        names: list[str | None] = []
        for name in paths:
            path = Path(name).resolve()
            root = next((r for r in self.image_roots if path.is_relative_to(r)), None)
            names.append(None if root is None else path.relative_to(root).as_posix())
        return names

    # --- WorkerListener: called from the worker thread --------------------------------

    def job_started(self, record: JobRecord, cancel: CancelToken) -> None:
        live = LiveProgress(job_id=record.id)
        with self._lock:
            self._live, self._cancel = live, cancel
            if record.id in self._interrupt_requested:
                self._interrupt_requested.discard(record.id)
                live.interrupted = True
                cancel.interrupt()
        self.events.publish(JobEvent(STARTED, record.id, progress=live, record=record))
        self._notify({"kind": STARTED, "job_id": record.id})

    def job_progress(self, job_id: str, event: ProgressEvent) -> None:
        with self._lock:
            old = self._live
            if old is None or old.job_id != job_id:
                return
            live = LiveProgress(
                job_id=job_id,
                started_at=old.started_at,
                step=event.step,
                total_steps=event.total_steps,
                batch_index=event.batch_index,
                batch_count=event.batch_count,
                fraction=event.fraction,
                elapsed_s=event.elapsed_s,
                eta_s=event.eta_s,
                preview=event.preview if event.preview is not None else old.preview,
                interrupted=old.interrupted,
                skipped=old.skipped,
                phase=event.phase,
            )
            self._live = live  # replaced, never mutated: readers see a consistent state
        self.events.publish(JobEvent(PROGRESS, job_id, progress=live))
        self._notify(progress_event(job_id, live, with_preview=True))
        now = time.monotonic()
        if self.shared and now - self._last_interrupt_check >= INTERRUPT_POLL_S:
            self._last_interrupt_check = now
            try:
                if self.queue.interrupt_requested(job_id):
                    self.interrupt(job_id)
            except Exception:
                log.exception("job %s: could not read its cancel flag", job_id)
        # a fraction of 0 (the loading/encoding phases) tells a listing nothing and would use
        # up the write slot of the first sampling step, the progress other nodes poll for
        if live.fraction > 0 and now - self._last_progress_write >= PROGRESS_WRITE_INTERVAL_S:
            self._last_progress_write = now
            try:
                self.queue.set_progress(job_id, live.fraction)
            except Exception:
                log.exception("job %s: could not store progress", job_id)

    def job_finished(self, record: JobRecord, result: GenerationResult | None) -> dict[str, Any] | None:
        if result is None:
            return None
        paths = list(result.paths)
        if result.images and len(paths) != len(result.images):
            # not saved (save_images=false): keep them where clients can still fetch them
            paths = write_transient_images(self.transient_dir / record.id, result.images, result.infotexts)
        return result_to_json(result, paths, saved=bool(result.paths))

    def job_images(self, record: JobRecord, stored: dict[str, Any]) -> list[ResultImage]:
        """--result-images db: the bytes of the job's image files, as written, stored with
        its finish; their places go into the result (``stored_images``) for the API node."""
        if self.result_images != DB:
            return []
        entries, images = read_result_images(
            record.id, list(stored.get("paths") or []), self.stored_image_roots, self.max_image_bytes
        )
        stored["stored_images"] = entries
        return images

    def job_recorded(self, record: JobRecord) -> None:
        journal = getattr(self.engine, "journal", None)
        if journal is not None and record.status == DONE:
            journal.forget(record.id)  # the record holds the images now; others keep it for a retry
        with self._lock:
            if self._live is not None and self._live.job_id == record.id:
                self._live, self._cancel = None, None
            self._interrupt_requested.discard(record.id)
        self.events.publish(JobEvent(FINISHED, record.id, record=record))
        self._notify({"kind": FINISHED, "job_id": record.id})
        self._remove_old_transient()

    def _remove_old_transient(self) -> None:
        """Unsaved results are only for the client that waits for them: drop old ones."""
        if not self.transient_dir.is_dir():
            return
        cutoff = time.time() - TRANSIENT_TTL_S
        for folder in self.transient_dir.iterdir():
            try:
                if folder.stat().st_mtime < cutoff:
                    for file in folder.iterdir():
                        file.unlink()
                    folder.rmdir()
            except OSError:
                continue
