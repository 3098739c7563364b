"""The native REST API under ``/api/v1``: jobs (submit, read, list, cancel, retry,
events, images) and what the server offers (models, samplers, extensions, health)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from core import __version__
from core.api.catalog import Catalog
from core.api.images import decode_base64_image
from core.api.schemas import (
    Health,
    JobAccepted,
    JobList,
    JobRequest,
    JobView,
    ModelView,
    SamplerView,
    WorkerView,
)
from core.jobs import JobNotFound, JobRecord, JobService
from core.jobs.live import FINISHED, PROGRESS, STARTED
from core.jobs.record import QUEUED, RUNNING, STATUSES
from core.jobs.requests import request_summary
from plugin_api.types import GenerationRequest

SSE_KEEPALIVE_S = 15.0
# paging bound: SQLite integers are 64-bit, and a larger offset was an OverflowError (500)
MAX_OFFSET = 10**9
IMAGE_MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


def generation_request_from_job(body: JobRequest) -> GenerationRequest:
    """The engine's request from the API body (decodes images: call off the event loop)."""
    values = body.model_dump(exclude={"priority", "init_image", "mask"})
    request = GenerationRequest(**values)
    if body.init_image is not None:
        request.init_image = decode_base64_image(body.init_image, "init_image")
    if body.mask is not None:
        request.mask = decode_base64_image(body.mask, "mask")
    return request


def job_view(record: JobRecord, service: JobService) -> JobView:
    live = service.progress()
    result = record.result
    images: list[str] = []
    if result:
        images = [f"/api/v1/jobs/{record.id}/images/{n}" for n in range(len(result.get("paths", [])))]
        # Absolute locations are the server's business; clients fetch images by URL. The
        # names inside the outputs folder are not: `easel generate` on the same data
        # folder prints them as its own paths.
        files = service.result_files(result)
        result = {k: v for k, v in result.items() if k not in ("paths", "stored_images")} | {"files": files}
    return JobView(
        id=record.id,
        kind=record.kind,
        status=record.status,
        priority=record.priority,
        attempts=record.attempts,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        progress=record.progress,
        queue_position=service.queue_position(record.id) if record.status == QUEUED else None,
        error=record.error,
        request=request_summary(record.request),
        result=result,
        images=images,
        live=live.as_dict() if live is not None and live.job_id == record.id else None,
    )


def worker_views(service: JobService) -> list[WorkerView]:
    return [WorkerView(**row) for row in service.workers()]


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def build_native_router(host: Any, service: JobService, catalog: Catalog) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["native"])
    started_at = time.time()

    def read_job(job_id: str) -> JobRecord:
        record = service.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    @router.post("/jobs", status_code=202, response_model=JobAccepted, summary="Queue a generation")
    async def create_job(body: JobRequest) -> JobAccepted:
        """Validates the request (422 naming the field, nothing queued), queues it and
        answers at once with the job id; follow it at ``events``."""

        def submit() -> str:
            return service.submit(generation_request_from_job(body), priority=body.priority)

        job_id = await run_in_threadpool(submit)
        return JobAccepted(
            id=job_id, status=QUEUED, url=f"/api/v1/jobs/{job_id}", events=f"/api/v1/jobs/{job_id}/events"
        )

    @router.get("/jobs/{job_id}", response_model=JobView, summary="One job with its result")
    def get_job(job_id: str) -> JobView:
        return job_view(read_job(job_id), service)

    @router.get("/jobs", response_model=JobList, summary="Queue and history, newest first")
    def list_jobs(
        status: list[Literal[STATUSES]] | None = Query(None, description="filter; repeatable"),  # type: ignore[valid-type]
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> JobList:
        statuses = tuple(status) if status else None
        records = service.list(statuses, limit=limit, offset=offset)
        return JobList(jobs=[job_view(r, service) for r in records], total=service.queue.count(statuses))

    @router.delete("/jobs/{job_id}", response_model=JobView, summary="Cancel (queued) or interrupt (running)")
    def delete_job(job_id: str) -> JobView:
        """A queued job is cancelled; a running one is interrupted within one sampler
        step (its status becomes ``interrupted`` shortly after); 409 if it finished."""
        return job_view(service.cancel(job_id), service)

    @router.post("/jobs/{job_id}/retry", response_model=JobView, summary="Queue a failed job again")
    def retry_job(job_id: str) -> JobView:
        return job_view(service.retry(job_id), service)

    @router.get("/jobs/{job_id}/images/{index}", summary="One result image (the written file)")
    def job_image(job_id: str, index: int) -> FileResponse:
        path = service.image_path(job_id, index)  # a stored image is fetched from the queue once
        if not path.is_file():
            raise JobNotFound(f"{job_id}/images/{index} (file removed)")
        return FileResponse(
            path, media_type=IMAGE_MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        )

    @router.get("/jobs/{job_id}/events", summary="Progress as Server-Sent Events")
    async def job_events(
        job_id: str, preview: Literal["jpeg", "png", "none"] = Query("jpeg", description="preview format")
    ) -> StreamingResponse:
        """Events: ``status`` (the job now), ``progress`` (step, total, ETA, base64
        ``preview``) once per step, then ``result`` (the finished job) and the end."""
        subscription = service.events.subscribe_async(job_id)  # before reading: miss nothing
        try:
            record = await run_in_threadpool(read_job, job_id)
        except JobNotFound:
            subscription.close()
            raise

        def progress_data(live: Any) -> dict[str, Any]:
            data = live.as_dict()
            data["preview"] = None if preview == "none" else live.preview_base64(preview.upper())
            return data

        async def stream() -> AsyncIterator[str]:
            try:
                yield _sse("status", job_view(record, service).model_dump())
                if record.finished:
                    yield _sse("result", job_view(record, service).model_dump())
                    return
                live = service.progress()
                if live is not None and live.job_id == job_id and live.step > 0:
                    yield _sse("progress", progress_data(live))
                while True:
                    event = await subscription.aget(timeout=SSE_KEEPALIVE_S)
                    if event is None:
                        latest = await run_in_threadpool(read_job, job_id)
                        if latest.finished:  # finished elsewhere (another worker process)
                            yield _sse("result", job_view(latest, service).model_dump())
                            return
                        yield ": keep-alive\n\n"
                    elif event.kind == PROGRESS and event.progress is not None:
                        yield _sse("progress", progress_data(event.progress))
                    elif event.kind == STARTED and event.record is not None:
                        yield _sse("status", job_view(event.record, service).model_dump())
                    elif event.kind == FINISHED and event.record is not None:
                        yield _sse("result", job_view(event.record, service).model_dump())
                        return
            finally:
                subscription.close()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get("/models", response_model=list[ModelView], summary="Checkpoints in the models folder")
    def list_models() -> list[ModelView]:
        default = catalog.default_model()
        return [
            ModelView(
                name=m.name,
                title=catalog.model_title(m),
                family=m.family,
                format=m.format,
                size=m.size,
                hash=m.hash,
                path=str(m.path),
                default=m.name == default,
                recommended=m.recommended,
                prediction=m.prediction.label if m.prediction else None,
                prediction_source=m.prediction.source if m.prediction else None,
            )
            for m in catalog.models()
        ]

    @router.get("/samplers", response_model=list[SamplerView], summary="Registered samplers")
    def list_samplers() -> list[SamplerView]:
        return [
            SamplerView(
                name=s.name,
                aliases=list(s.aliases),
                flow=s.flow,
                extension=host.samplers.owner(s.name),
                options=dict(getattr(s, "options", {}) or {}),
                nearest=getattr(s, "note", "") or None,
            )
            for s in catalog.samplers()
        ]

    @router.get("/extra-networks", summary="Extra-network cards (LoRA, embeddings...) for a browser")
    def list_extra_networks(network: str | None = None) -> list[dict[str, Any]]:
        cards = host.extra_network_cards()
        if network is not None:
            cards = [card for card in cards if card["network"].casefold() == network.casefold()]
        return cards

    @router.get("/extensions", summary="Every extension with its state, load time and errors")
    def list_extensions() -> list[dict[str, Any]]:
        return host.extensions.listing()

    @router.get("/workers", response_model=list[WorkerView], summary="The workers of this queue")
    def list_workers() -> list[WorkerView]:
        """Every worker process that shares this server's queue (``easel worker``,
        ``--workers N``), and this process's own worker when it has one."""
        return worker_views(service)

    @router.get("/health", response_model=Health, summary="Liveness and queue size")
    async def health() -> Health:
        # In the event loop on purpose: a burst of submissions can hold every threadpool
        # thread, and health must answer anyway. Two indexed reads of a WAL database
        # never wait for writers.
        return Health(
            status="ok",
            version=__version__,
            queued=service.queue.count((QUEUED,)),
            running=service.queue.count((RUNNING,)),
            current_job=service.current_job_id,
            uptime_s=round(time.time() - started_at, 3),
        )

    return router
