"""The /sdapi/v1 endpoints A1111 clients call at start-up or for housekeeping, in A1111
1.10's shapes (modules/api/api.py, models.py): lists Easel has nothing for answer as an
A1111 without them does (an empty list), actions it cannot take are refused with a 4xx
saying why, never a 404 that clients read as "not an A1111 server".
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core.api.catalog import Catalog
from core.api.images import decode_base64_image
from core.api.sdapi_models import SdapiInterrogateRequest
from core.interrogate import InterrogatorUnavailable, find_interrogator
from core.jobs import JobService
from core.sampling.hires import LATENT_MODES
from core.styles import load_styles, styles_path

log = logging.getLogger("easel.api")

# a moment for the answer to reach the client before the server stops
STOP_DELAY_S = 0.5


def refused(status: int, detail: str, what: str) -> JSONResponse:
    log.info("refused %s: %s", what, detail)
    return JSONResponse(status_code=status, content={"error": "Refused", "detail": detail})


def add_startup_routes(router: APIRouter, host: Any, service: JobService, catalog: Catalog) -> None:
    settings = host.settings

    @router.get("/prompt-styles", summary="Prompt styles from styles.csv in the data folder (A1111)")
    def prompt_styles() -> list[dict[str, str]]:
        return [style.a1111() for style in load_styles(styles_path(settings.data_dir)).values()]

    @router.get("/face-restorers", summary="Face restorers (A1111); none in Easel yet")
    def face_restorers() -> list[dict[str, Any]]:
        return []

    @router.get("/latent-upscale-modes", summary="Hires fix latent upscale modes (A1111)")
    def latent_upscale_modes() -> list[dict[str, str]]:
        return [{"name": name} for name in LATENT_MODES]

    @router.get(
        "/sd-modules", summary="Separate VAE / text-encoder modules (A1111); Easel uses each model's own"
    )
    def sd_modules() -> list[dict[str, Any]]:
        return []

    @router.get("/hypernetworks", summary="Hypernetworks (A1111); not supported")
    def hypernetworks() -> list[dict[str, Any]]:
        return []

    @router.get("/realesrgan-models", summary="RealESRGAN models (A1111); Easel's are in /upscalers")
    def realesrgan_models() -> list[dict[str, Any]]:
        return []

    @router.get("/script-info", summary="Script arguments (A1111): the selectable scripts' argument names")
    def script_info() -> list[dict[str, Any]]:
        entries = []
        for spec in getattr(host, "scripts", []):
            args = [
                {
                    "label": name,
                    "value": None,
                    "minimum": None,
                    "maximum": None,
                    "step": None,
                    "choices": None,
                }
                for name in spec.arg_names
            ]
            for mode in spec.modes:
                entries.append(
                    {
                        "name": spec.name.casefold(),
                        "is_alwayson": False,
                        "is_img2img": mode == "img2img",
                        "args": args,
                    }
                )
        return entries

    @router.post("/interrogate", summary="Caption an image (A1111) with a registered interrogator")
    async def interrogate(body: SdapiInterrogateRequest) -> Any:
        # the image is read first, so a bad one is named as such (422 "image")
        image = await run_in_threadpool(decode_base64_image, body.image, "image")
        try:
            spec = find_interrogator(host.interrogators, body.model, catalog.default_model())
        except InterrogatorUnavailable as exc:
            # 422, never 404: A1111 clients read a 404 as "not an A1111 server"
            return refused(422, f"model: {exc}", "/sdapi/v1/interrogate")
        caption = await run_in_threadpool(spec.interrogate, image.convert("RGB"))
        return {"caption": caption}

    @router.post("/refresh-checkpoints", summary="Scan the models folder again (A1111)")
    def refresh_checkpoints() -> None:
        if catalog.engine is not None and hasattr(catalog.engine.models, "refresh"):
            catalog.engine.models.refresh()

    @router.post("/refresh-loras", summary="Scan models/Lora again (A1111); Easel reads it on each use")
    def refresh_loras() -> None:
        return None

    # GET /embeddings is served by the bundled embeddings extension (extensions/embeddings)
    @router.post("/refresh-embeddings", summary="(A1111) nothing to refresh: embeddings are read on each use")
    def refresh_embeddings() -> None:
        return None

    @router.post("/refresh-vae", summary="(A1111) nothing to refresh: each model uses its own VAE")
    def refresh_vae() -> None:
        return None

    @router.post("/unload-checkpoint", summary="Free the loaded models' memory (A1111)")
    async def unload_checkpoint() -> dict[str, Any]:
        if catalog.engine is not None:
            await run_in_threadpool(catalog.engine.models.unload)
        return {}

    @router.post("/reload-checkpoint", summary="Load the default model again (A1111)")
    async def reload_checkpoint() -> dict[str, Any]:
        if catalog.engine is not None:
            await run_in_threadpool(catalog.engine.load_model, catalog.default_model())
        return {}

    @router.get("/cmd-flags", summary="How the server was started (A1111)")
    def cmd_flags() -> dict[str, Any]:
        # A1111 answers with all its command-line flags; clients read a few of them (the
        # AIYA Discord bot reads gradio_auth): those are here with Easel's meaning
        return {
            "gradio_auth": None,  # Easel's WebUI uses api_auth's HTTP Basic auth
            "share": False,
            "nowebui": False,
            "lowvram": False,
            "medvram": False,
            "ckpt_dir": str(settings.models_dir / "Stable-diffusion"),
            "lora_dir": str(settings.models_dir / "Lora"),
            "data_dir": str(settings.data_dir),
            "models_dir": str(settings.models_dir),
            "listen": settings.listens_publicly,
            "host": settings.host,
            "port": settings.port,
            "api_auth": bool(settings.api_auth),
            "device": settings.device,
            "safe_mode": settings.safe_mode,
            "allow_pickle": settings.allow_pickle,
            "api_server_stop": settings.allow_server_control,
            "api": True,
        }

    @router.get("/memory", summary="RAM and accelerator memory (A1111)")
    def memory() -> dict[str, Any]:
        page, pages = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_PHYS_PAGES")
        available = os.sysconf("SC_AVPHYS_PAGES") * page
        total = pages * page
        ram = {"free": available, "used": total - available, "total": total}
        torch = sys.modules.get("torch")
        cuda: dict[str, Any] = {"error": "no CUDA device"}
        if torch is not None and torch.cuda.is_available():
            free, total_cuda = torch.cuda.mem_get_info()
            cuda = {"system": {"free": free, "used": total_cuda - free, "total": total_cuda}}
        return {"ram": ram, "cuda": cuda}

    def stop_soon(what: str) -> JSONResponse:
        if not settings.allow_server_control:
            return refused(
                403,
                f"{what} is disabled: any API caller could stop the server; start easel serve "
                "with --api-server-stop (EASEL_API_SERVER_STOP=1) to allow it",
                f"/sdapi/v1/{what}",
            )
        log.info("stopping the server: %s asked through the API", what)
        # SIGINT: uvicorn's own graceful shutdown (the queue and the host stop cleanly)
        threading.Timer(STOP_DELAY_S, os.kill, (os.getpid(), signal.SIGINT)).start()
        return JSONResponse(status_code=200, content={})

    @router.post("/server-stop", summary="Stop the server (A1111; needs --api-server-stop)")
    def server_stop() -> JSONResponse:
        return stop_soon("server-stop")

    @router.post("/server-kill", summary="Stop the server (A1111; needs --api-server-stop)")
    def server_kill() -> JSONResponse:
        return stop_soon("server-kill")

    @router.post(
        "/server-restart", summary="Restart the server (A1111); refused: run Easel under a supervisor"
    )
    def server_restart() -> JSONResponse:
        return refused(
            501,
            "Easel cannot restart itself; run it under a supervisor (systemd, a container) and use "
            "server-stop (with --api-server-stop) to have it restarted",
            "/sdapi/v1/server-restart",
        )
