"""The AUTOMATIC1111-compatible API under ``/sdapi/v1``, so existing clients work.

Generations go through the same queue as everything else (submit, then wait without
holding a thread); the answer has A1111's shape: ``images`` (base64 PNG), ``parameters``
(the request) and ``info`` (a JSON string).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core.api.catalog import Catalog
from core.api.errors import field_error
from core.api.extras import NONE_UPSCALER, html_info, upscale_one
from core.api.images import decode_base64_image, encode_png_base64, file_base64
from core.api.sdapi_convert import request_from_sdapi, sdapi_info_json
from core.api.sdapi_misc import add_startup_routes
from core.api.sdapi_models import (
    SdapiExtraBatchImagesRequest,
    SdapiExtraSingleImageRequest,
    SdapiGenerationBase,
    SdapiImg2ImgRequest,
    SdapiPngInfoRequest,
    SdapiTxt2ImgRequest,
)
from core.builtin_settings import PREVIEW_METHOD
from core.errors import RequestError
from core.jobs import JobService
from core.jobs.record import CANCELLED, DONE, INTERRUPTED
from core.models.prediction import yaml_beside
from core.results import PHASE_LABELS, QUEUED
from core.saving.writer import infotext_of
from core.schedules import SCHEDULE_TYPES

# how the worker records a job that failed with the host's RequestError (core/jobs/worker.py)
REFUSAL_PREFIX = "RequestError: "


def refusal_in(error: str | None) -> tuple[str, str] | None:
    """(field, message) when a job failed because the request was refused, else None."""
    if not error or not error.startswith(REFUSAL_PREFIX):
        return None
    field, _, message = error[len(REFUSAL_PREFIX) :].partition(": ")
    return (field, message) if field and message else None


def a1111_error(status: int, error: str, detail: str, job_id: str) -> JSONResponse:
    """A1111's error body (its api middleware: error, detail, body, errors), plus the job."""
    return JSONResponse(
        status_code=status,
        content={"error": error, "detail": detail, "body": "", "errors": detail, "job_id": job_id},
    )


def checkpoint_yaml(info: Any) -> Any:
    """The ``<stem>.yaml`` beside a single-file checkpoint (A1111's checkpoint config)."""
    return None if info.format == "diffusers" else yaml_beside(info.path)


def build_sdapi_router(host: Any, service: JobService, catalog: Catalog) -> APIRouter:
    router = APIRouter(prefix="/sdapi/v1", tags=["sdapi (AUTOMATIC1111-compatible)"])

    async def generate(body: SdapiGenerationBase) -> dict[str, Any]:
        def submit() -> str:
            return service.submit(request_from_sdapi(body, catalog))

        job_id = await run_in_threadpool(submit)
        record = await service.wait_async(job_id)
        if record.status == CANCELLED:
            # cancelled before it ran (DELETE /api/v1/jobs/{id}, the queue tab): the
            # caller's request was fine, so no 500; A1111's error shape, 409
            return a1111_error(  # type: ignore[return-value]
                409, "JobCancelled", f"job {job_id} was cancelled before it ran", job_id
            )
        if record.status not in (DONE, INTERRUPTED):
            refusal = refusal_in(record.error)
            if refusal is not None:
                # an extension refused the request once the job ran (before_sample, after
                # the model loaded): the caller's request is at fault, so a 422 naming the
                # field, as when the refusal comes at submit
                return field_error(*refusal, job_id=job_id)  # type: ignore[return-value]
            return a1111_error(  # type: ignore[return-value]
                500, "GenerationFailed", record.error or record.status, job_id
            )

        def encode() -> list[str]:
            if not body.send_images:
                return []
            return [file_base64(path) for path in service.image_paths(job_id)]

        images = await run_in_threadpool(encode)
        parameters = body.model_dump(mode="json")
        if isinstance(body, SdapiImg2ImgRequest):
            # A1111 echoes the request without the (large) input images
            parameters["init_images"] = None
            parameters["mask"] = None
        return {"images": images, "parameters": parameters, "info": sdapi_info_json(record, catalog)}

    @router.post("/txt2img", summary="Text to image (A1111)")
    async def txt2img(body: SdapiTxt2ImgRequest) -> dict[str, Any]:
        return await generate(body)

    @router.post("/img2img", summary="Image to image / inpainting (A1111)")
    async def img2img(body: SdapiImg2ImgRequest) -> dict[str, Any]:
        return await generate(body)

    @router.get("/progress", summary="Progress of the running job (A1111)")
    async def progress(skip_current_image: bool = Query(False)) -> dict[str, Any]:
        # In the event loop, like /health: it must answer while submissions fill the
        # threadpool. The preview is small and encoded once per step for all pollers.
        live = service.progress()
        pending = service.pending_count()
        if live is None:
            return {
                "progress": 0.0,
                "eta_relative": 0.0,
                "state": {
                    "skipped": False,
                    "interrupted": False,
                    "job": PHASE_LABELS[QUEUED] if pending else "",
                    "job_count": pending,
                    "job_timestamp": "0",
                    "job_no": 0,
                    "sampling_step": 0,
                    "sampling_steps": 0,
                },
                "current_image": None,
                "textinfo": PHASE_LABELS[QUEUED] if pending else None,
                "current_task": None,
            }
        return {
            "progress": round(live.fraction, 4),
            # A1111 clients divide and format it: 0, not a negative, while it is unknown
            "eta_relative": round(max(0.0, live.eta_s), 3),
            "state": {
                "skipped": live.skipped,
                "interrupted": live.interrupted,
                # A1111 names the work in progress here ("Batch 1 out of 2"); Easel its phase
                "job": PHASE_LABELS.get(live.phase, live.phase),
                "job_count": pending,
                "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(live.started_at)),
                "job_no": live.batch_index,
                "sampling_step": live.step,
                "sampling_steps": live.total_steps,
            },
            "current_image": None if skip_current_image else live.preview_base64("PNG"),
            "textinfo": live.textinfo(),
            "current_task": live.job_id,
        }

    @router.post(
        "/interrupt", summary="Stop the running job (A1111); with worker processes, every job that runs"
    )
    def interrupt() -> dict[str, Any]:
        return {"interrupted": service.interrupt()}

    @router.post("/skip", summary="Skip the current batch of the running job (A1111)")
    def skip() -> dict[str, Any]:
        return {"skipped": service.skip()}

    @router.get("/sd-models", summary="Checkpoints (A1111)")
    def sd_models() -> list[dict[str, Any]]:
        return [
            {
                "title": catalog.model_title(m),
                "model_name": m.name,
                "hash": m.hash,
                "sha256": getattr(m, "sha256", None),
                "filename": str(m.path),
                # A1111's: the yaml beside the checkpoint that configures it, else None
                "config": str(yaml) if (yaml := checkpoint_yaml(m)) else None,
                # not A1111's: what the file predicts, as `easel models` shows it
                "easel_prediction": m.prediction.label if m.prediction else None,
            }
            for m in catalog.models()
        ]

    @router.get(
        "/samplers", summary="Samplers (A1111); options.easel_nearest says what an approximated one runs"
    )
    def samplers() -> list[dict[str, Any]]:
        # flow-matching forms are not listed: A1111 clients send A1111 names, and a flow
        # model runs "Euler" as "Euler (flow)" (core/samplers.py)
        entries = []
        for spec in catalog.samplers():
            if spec.flow:
                continue
            options = dict(spec.options)
            if spec.note:
                options["easel_nearest"] = spec.note
            entries.append({"name": spec.name, "aliases": list(spec.aliases), "options": options})
        return entries

    @router.get("/schedulers", summary="Schedule types (A1111)")
    def schedulers() -> list[dict[str, Any]]:
        return [schedule.a1111() for schedule in SCHEDULE_TYPES]

    @router.get("/upscalers", summary="Upscalers (A1111)")
    def upscalers() -> list[dict[str, Any]]:
        entries = [
            {"name": NONE_UPSCALER, "model_name": None, "model_path": None, "model_url": None, "scale": 1}
        ]
        for spec in catalog.upscalers():
            entries.append(
                {
                    "name": spec.name,
                    "model_name": None,
                    "model_path": None,
                    "model_url": None,
                    "scale": spec.scale or 1,
                }
            )
        return entries

    @router.get("/loras", summary="LoRA files in models/Lora (A1111)")
    def loras() -> list[dict[str, Any]]:
        return catalog.loras()

    @router.get(
        "/scripts", summary="Scripts (A1111): selectable scripts and the extensions alwayson_scripts reach"
    )
    def scripts() -> dict[str, list[str]]:
        names = sorted(name.casefold() for name in catalog.extension_names().values())
        listed = {"txt2img": list(names), "img2img": list(names)}
        # selectable scripts first under their titles, lower-cased as A1111 lists them
        for spec in getattr(host, "scripts", []):
            for mode in ("txt2img", "img2img"):
                if mode in spec.modes:
                    listed[mode].insert(0, spec.name.casefold())
        return listed

    @router.get("/sd-vae", summary="VAE files (A1111): models/VAE and <checkpoint>.vae.safetensors")
    def sd_vae() -> list[dict[str, Any]]:
        return (
            [vae.as_dict() for vae in catalog.engine.models.vaes.list()] if catalog.engine is not None else []
        )

    @router.get("/options", summary="Options (A1111)")
    def get_options() -> dict[str, Any]:
        default = catalog.default_model()
        title = default
        if default:
            try:
                title = catalog.model_title(catalog.model_info(default))
            except RequestError:
                title = default
        # fixed answers for A1111 options Easel does not let change; the host's settings
        # (A1111's names: samples_format, outdir_*, CLIP_stop_at_last_layers...) after them
        options: dict[str, Any] = {
            "sd_checkpoint_hash": None,
            "samples_save": True,
            "enable_pnginfo": True,
            "eta_noise_seed_delta": 0,
            "show_progress_every_n_steps": 1,
            "sd_checkpoint_cache": 1,
        }
        options.update(host.user_settings.all())
        options["sd_model_checkpoint"] = title  # A1111's "name [hash]" title of the model in use
        options["live_previews_enable"] = options.get(PREVIEW_METHOD) != "None"
        return options

    @router.post("/options", summary="Set options (A1111): sd_model_checkpoint switches the default model")
    def set_options(values: dict[str, Any] = Body(...)) -> None:
        """Unknown keys are ignored, as in A1111; a bad model or setting value is a 422."""
        known = {
            key: value
            for key, value in values.items()
            if key in host.setting_specs and key != "sd_model_checkpoint"  # a title: set below
        }
        # every value is checked before any is saved: a refused request changes nothing
        for key, value in known.items():
            try:
                host.user_settings.check(host.setting_specs.get(key), value)
            except (KeyError, ValueError) as exc:
                raise RequestError(key, str(exc)) from None
        if "sd_model_checkpoint" in values:
            value = values["sd_model_checkpoint"]
            if not isinstance(value, str):
                raise RequestError("sd_model_checkpoint", "must be a model title or name")
            catalog.set_default_model(value)
        for key, value in known.items():
            try:
                host.set_setting(key, value)
            except (KeyError, ValueError) as exc:
                raise RequestError(key, str(exc)) from None

    @router.post("/png-info", summary="Read the generation parameters in an image (A1111)")
    async def png_info(body: SdapiPngInfoRequest) -> dict[str, Any]:
        def read() -> dict[str, Any]:
            image = decode_base64_image(body.image, "image")
            items = {k: v for k, v in image.info.items() if isinstance(v, str)}
            items.pop("parameters", None)
            # A1111 reads JPEG/WebP parameters from EXIF UserComment too
            info = infotext_of(image) or ""
            parameters: dict[str, Any] = {}
            if info:
                try:
                    from core.saving.infotext import parse_infotext

                    parameters = parse_infotext(info)
                except ImportError:
                    parameters = {}
            return {"info": info, "items": items, "parameters": parameters}

        return await run_in_threadpool(read)

    @router.post("/extra-single-image", summary="Upscale one image (A1111 Extras)")
    async def extra_single_image(body: SdapiExtraSingleImageRequest) -> dict[str, Any]:
        def upscale() -> dict[str, Any]:
            image = decode_base64_image(body.image, "image")
            result = upscale_one(host.upscalers, image, body)
            return {"html_info": html_info([result], body), "image": encode_png_base64(result)}

        return await run_in_threadpool(upscale)

    @router.post("/extra-batch-images", summary="Upscale several images (A1111 Extras, batch)")
    async def extra_batch_images(body: SdapiExtraBatchImagesRequest) -> dict[str, Any]:
        def upscale() -> dict[str, Any]:
            results = []
            for index, item in enumerate(body.imageList):
                image = decode_base64_image(item.data, f"imageList.{index}.data")
                results.append(upscale_one(host.upscalers, image, body))
            return {"html_info": html_info(results, body), "images": [encode_png_base64(r) for r in results]}

        return await run_in_threadpool(upscale)

    add_startup_routes(router, host, service, catalog)
    return router
