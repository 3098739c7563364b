"""sd-webui-controlnet's HTTP routes, so its clients work against Easel:

- ``GET /controlnet/model_list`` -> ``{"model_list": [...]}`` (usable models of every family)
- ``GET /controlnet/module_list`` -> ``{"module_list": [...], "module_detail": {...}}``
- ``GET /controlnet/version`` -> ``{"version": 2}``
- ``POST /controlnet/detect`` (preprocessor preview): ``{"controlnet_module": "canny",
  "controlnet_input_images": [b64, ...], "controlnet_processor_res": 512,
  "controlnet_threshold_a": 100, "controlnet_threshold_b": 200}`` -> ``{"images": [b64],
  "info": "Success"}``; a bad image, an unknown module or missing weights is a 422 naming
  the field.

Generation itself goes through ``/sdapi/v1/txt2img|img2img`` with
``alwayson_scripts.controlnet.args`` (see ``units``).
"""

from __future__ import annotations

import base64
import io
from typing import Any

from extensions.controlnet.preprocessors import ANNOTATORS, PreprocessorWeightsMissing
from extensions.controlnet.units import ControlUnit, decode_image
from plugin_api.errors import InvalidRequest

API_VERSION = 2  # the sd-webui-controlnet API version whose shapes these follow


def encode_png(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def module_list(state: Any) -> dict[str, Any]:
    specs = state.preprocessors()
    detail = {}
    for name, spec in sorted(specs.items()):
        missing = state.annotators.missing(tuple(spec.needs_weights)) if spec.needs_weights else []
        detail[name] = {
            "model_free": not spec.needs_weights,
            "needs_weights": list(spec.needs_weights),
            "missing_weights": missing,
            "available": not missing,
            "sliders": [],
        }
    return {"module_list": sorted(specs), "module_detail": detail}


def detect(state: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Run a preprocessor on each image (raises InvalidRequest naming the field)."""
    from extensions.controlnet import find_preprocessor

    module = body.get("controlnet_module", "none")
    images = body.get("controlnet_input_images") or []
    if not isinstance(images, list) or not images:
        raise InvalidRequest("controlnet_input_images", "expected a non-empty list of base64 images")
    probe = ControlUnit(index=0, field="controlnet", image=None, preprocessor=str(module), model="")
    try:
        spec = find_preprocessor(probe)
    except InvalidRequest as exc:
        raise InvalidRequest("controlnet_module", exc.message) from exc
    threshold_a, threshold_b = body.get("controlnet_threshold_a"), body.get("controlnet_threshold_b")
    options = {
        "threshold_a": None if threshold_a is None or float(threshold_a) < 0 else float(threshold_a),
        "threshold_b": None if threshold_b is None or float(threshold_b) < 0 else float(threshold_b),
        "resolution": int(body.get("controlnet_processor_res") or 512),
    }
    out = []
    for index, data in enumerate(images):
        image = decode_image(data, f"controlnet_input_images.{index}")
        try:
            out.append(encode_png(spec.process(image, **options).convert("RGB")))
        except PreprocessorWeightsMissing as exc:
            raise InvalidRequest("controlnet_module", str(exc)) from exc
    return {"images": out, "info": "Success"}


def add_routes(router: Any, state: Any) -> None:
    from fastapi import Body
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool

    def refused(exc: InvalidRequest) -> JSONResponse:
        # the host's 422 shape: FastAPI's "detail" list plus A1111's one-line "errors"
        loc = ["body", *[part for part in exc.field.split(".") if part]]
        return JSONResponse(
            status_code=422,
            content={
                "error": "RequestError",
                "detail": [{"loc": loc, "msg": exc.message, "type": "value_error"}],
                "errors": f"{exc.field}: {exc.message}",
            },
        )

    @router.get("/controlnet/version", summary="ControlNet API version (sd-webui-controlnet)")
    def version() -> dict[str, int]:
        return {"version": API_VERSION}

    @router.get("/controlnet/model_list", summary="ControlNet models in models/ControlNet")
    def model_list(update: bool = True) -> dict[str, Any]:
        infos = state.library.scan()
        return {
            "model_list": [i.name for i in infos if not i.problem],
            "model_detail": {i.name: i.as_dict() for i in infos},
        }

    @router.get("/controlnet/module_list", summary="ControlNet preprocessors")
    def modules(alias_names: bool = False) -> dict[str, Any]:
        return module_list(state)

    @router.post("/controlnet/detect", summary="Run a preprocessor (preview)")
    async def detect_route(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        try:
            return await run_in_threadpool(detect, state, body)
        except InvalidRequest as exc:
            return refused(exc)  # type: ignore[return-value]

    # the annotator list is static; expose it for clients that want to fetch weights
    @router.get("/controlnet/annotators", summary="Weight files each annotator needs")
    def annotators() -> dict[str, Any]:
        return {
            "folder": str(state.annotators.folder),
            "annotators": {
                name: {"files": list(a.files), "missing": state.annotators.missing(a.files)}
                for name, a in ANNOTATORS.items()
            },
        }
