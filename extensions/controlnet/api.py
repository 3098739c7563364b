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
import math
from typing import Any

from extensions.controlnet.preprocessors import ANNOTATORS, PreprocessorWeightsMissing
from extensions.controlnet.units import ControlUnit, decode_image
from plugin_api.errors import InvalidRequest

API_VERSION = 2  # the sd-webui-controlnet API version whose shapes these follow
DEFAULT_PROCESSOR_RES = 512
MIN_PROCESSOR_RES, MAX_PROCESSOR_RES = 64, 4096  # the image limit every route shares
MAX_THRESHOLD = 4096.0  # sd-webui-controlnet's largest slider (a resolution-like value)


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


def _number(body: dict[str, Any], field: str) -> float | None:
    """A finite number (a numeric string too: sd-webui-controlnet's pydantic model accepts
    them), None when absent; InvalidRequest naming the field otherwise."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise InvalidRequest(field, f"must be a number, got {value[:40]!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(field, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidRequest(field, f"must be a finite number, got {value!r}")
    return float(value)


def threshold(body: dict[str, Any], field: str) -> float | None:
    """A preprocessor threshold; negative (A1111's -1) means the preprocessor's default."""
    value = _number(body, field)
    if value is None or value < 0:
        return None
    if value > MAX_THRESHOLD:
        raise InvalidRequest(field, f"must be at most {MAX_THRESHOLD}, got {value:g}")
    return value


def processor_resolution(body: dict[str, Any]) -> int:
    """The preprocessor's working resolution; absent, 0 or -1 (A1111) means 512."""
    field = "controlnet_processor_res"
    value = _number(body, field)
    if value is None or value in (0, -1):
        return DEFAULT_PROCESSOR_RES
    if not value.is_integer() or not MIN_PROCESSOR_RES <= value <= MAX_PROCESSOR_RES:
        raise InvalidRequest(
            field, f"must be a whole number from {MIN_PROCESSOR_RES} to {MAX_PROCESSOR_RES}, got {value:g}"
        )
    return int(value)


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
    options = {
        "threshold_a": threshold(body, "controlnet_threshold_a"),
        "threshold_b": threshold(body, "controlnet_threshold_b"),
        "resolution": processor_resolution(body),
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
