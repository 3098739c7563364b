"""ESRGAN-family upscalers for Easel, through spandrel.

Every ``.safetensors`` file (and, with ``--allow-pickle``, ``.pth``) in ``models/ESRGAN``
and its neighbours (``RealESRGAN``, ``SwinIR``, ``DAT``, ``HAT``...) becomes an upscaler
named after the file; spandrel detects the architecture and scale from the weights on
first use. The Extras API, hires fix and the Extras tab use them through the host's
upscaler registry, like the core's Lanczos and Nearest.

Built only on ``plugin_api``: ``register_upscalers`` (one per file), ``register_settings``
(tile size and overlap), ``startup``/``shutdown``, ``after_sample`` (post-sample upscaling
asked for with ``extension_args["esrgan"] = {"upscaler": name, "scale": 2}``),
``register_api_routes`` (``GET /esrgan/upscalers``: the files with their detected
architecture, or why they cannot be used), ``ui_tabs`` (Extras) and ``ui_form_sections``
(upscale after generation, in the txt2img and img2img forms).
"""

from __future__ import annotations

import logging
import math
import re
import threading
from pathlib import Path
from typing import Any

from extensions.esrgan.loading import (
    UpscalerFile,
    UpscalerFileError,
    find_upscaler_files,
    load_upscaler,
    unusable_reason,
)
from extensions.esrgan.tiling import DEFAULT_OVERLAP
from extensions.esrgan.upscaling import ModelCache, UpscalerInputError, file_upscaler, resolve_device
from plugin_api.errors import InvalidRequest
from plugin_api.hookspecs import hookimpl
from plugin_api.types import FormSection, GenerationContext, GenerationRequest, SettingSpec, Tab, UpscalerSpec

log = logging.getLogger("easel.esrgan")

NAME = "esrgan"
SHIPPED_MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
TILE_SETTING, OVERLAP_SETTING = "esrgan.tile_size", "esrgan.tile_overlap"
TILE_CHOICES = (0, 64, 128, 192, 256, 384, 512, 768, 1024)


class _State:
    def __init__(self) -> None:
        self.host: Any = None
        self.files: list[UpscalerFile] = []
        self.cache = ModelCache()
        self.descriptions: dict[tuple[str, float], dict[str, Any]] = {}
        self.lock = threading.Lock()

    def settings(self, host: Any = None) -> dict[str, Any]:
        """What the upscalers need from ``host`` (default: the last one started)."""
        host = host if host is not None else self.host
        tile, overlap = 0, DEFAULT_OVERLAP
        if host is not None:
            try:
                tile = int(host.get_setting(TILE_SETTING) or 0)
                overlap = int(host.get_setting(OVERLAP_SETTING))
            except (KeyError, TypeError, ValueError):
                pass
        return {
            "allow_pickle": bool(host is not None and host.settings.allow_pickle),
            "device": resolve_device(host.settings.device if host is not None else "auto"),
            "tile": tile,
            "overlap": overlap,
        }


STATE = _State()


def models_dirs(host: Any) -> list[Path]:
    """The user's models folder, then the shipped one (for the demo upscaler)."""
    user = Path(host.settings.models_dir)
    return [user] if user.resolve() == SHIPPED_MODELS_DIR.resolve() else [user, SHIPPED_MODELS_DIR]


def scale_from_name(name: str) -> int | None:
    """The scale in a file name ("4x-UltraSharp", "RealESRGAN_x4plus"), as A1111 guesses."""
    match = re.search(r"(?:^|[^a-z0-9])(\d)x|x(\d)(?:[^0-9]|$)", name.casefold())
    return int(match.group(1) or match.group(2)) if match else None


@hookimpl
def register_upscalers(register: Any, host: Any) -> None:
    STATE.host = host
    STATE.files = find_upscaler_files(models_dirs(host))
    allow_pickle = bool(host.settings.allow_pickle)
    for file in STATE.files:
        # offered only if it can run (GET /esrgan/upscalers lists every file, with why not)
        reason = unusable_reason(file.path, allow_pickle)
        if reason is not None:
            log.warning("upscaler %r not offered: %s", file.name, reason)
            continue
        register(
            UpscalerSpec(
                name=file.name,
                # bound to this host: its pickle opt-in and device, even if another starts later
                upscale=file_upscaler(file, STATE.cache, lambda host=host: STATE.settings(host)),
                scale=scale_from_name(file.name),
            )
        )


@hookimpl
def register_settings(register: Any) -> None:
    register(
        SettingSpec(
            key=TILE_SETTING,
            default=0,
            label="Upscaler tile size (0: from free memory)",
            choices=TILE_CHOICES,
            description="Input pixels per tile side for neural upscalers.",
        )
    )
    register(
        SettingSpec(
            key=OVERLAP_SETTING,
            default=DEFAULT_OVERLAP,
            label="Upscaler tile overlap",
            choices=(0, 8, 16, 32, 48, 64),
            description="Input pixels shared by neighbouring tiles, blended to hide seams.",
        )
    )


@hookimpl
def startup(host: Any) -> None:
    STATE.host = host


@hookimpl
def shutdown(host: Any) -> None:
    if STATE.host is host:
        STATE.cache.clear()


def describe(file: UpscalerFile) -> dict[str, Any]:
    """What ``GET /esrgan/upscalers`` says about one file (memoised per modification)."""
    entry: dict[str, Any] = {"name": file.name, "path": str(file.path), "format": file.format}
    try:
        key = (str(file.path), file.path.stat().st_mtime)
    except OSError:
        return {**entry, "error": f"{file.path}: no such file"}
    with STATE.lock:
        if key not in STATE.descriptions:
            try:
                loaded = load_upscaler(file.path, STATE.settings()["allow_pickle"], name=file.name)
                STATE.descriptions[key] = {**loaded.describe(), "error": None}
            except UpscalerFileError as exc:
                STATE.descriptions[key] = {"error": str(exc)}
        return {**entry, **STATE.descriptions[key]}


@hookimpl
def register_api_routes(router: Any) -> None:
    from starlette.concurrency import run_in_threadpool

    @router.get(
        "/esrgan/upscalers", tags=["esrgan"], summary="Upscaler files and their detected architecture"
    )
    async def list_upscalers() -> list[dict[str, Any]]:
        return await run_in_threadpool(lambda: [describe(f) for f in STATE.files])


MAX_POST_SCALE = 8.0


def post_sample_request(args: Any) -> tuple[str, float] | None:
    """``extension_args["esrgan"]``: ``{"upscaler": name, "scale": 2}`` (scale default 2),
    or A1111's alwayson_scripts form ``{"args": [name, scale]}``. Raises
    UpscalerInputError naming the field; numbers as text ("2") are read as A1111 does."""
    if not args:
        return None
    base = f"extension_args.{NAME}"
    fields = {"upscaler": f"{base}.upscaler", "scale": f"{base}.scale"}
    if isinstance(args, dict) and isinstance(args.get("args"), list):
        listed = args["args"]
        if listed and isinstance(listed[0], dict):
            args = listed[0]
            fields = {key: f"{base}.args.0.{key}" for key in fields}
        else:  # A1111's positional form: [name, scale]
            args = dict(zip(("upscaler", "scale"), listed, strict=False))
            fields = {"upscaler": f"{base}.args.0", "scale": f"{base}.args.1"}
        if not args:
            return None
    if not isinstance(args, dict) or not isinstance(args.get("upscaler"), str):
        raise UpscalerInputError(fields["upscaler"], 'expected {"upscaler": name, "scale": number}')
    scale = args.get("scale", 2)
    number: float | None = None
    if not isinstance(scale, bool) and isinstance(scale, int | float | str):
        try:
            number = float(scale)
        except (ValueError, OverflowError):
            number = None
    # "nan" and "inf" parse as floats: the range check must refuse them too (NaN fails every
    # comparison, so test for finiteness explicitly rather than trust `1 <= x <= 8`)
    if number is None or not math.isfinite(number) or not 1 <= number <= MAX_POST_SCALE:
        raise UpscalerInputError(
            fields["scale"], f"must be a finite number from 1 to {MAX_POST_SCALE:g}, got {scale!r}"
        )
    return args["upscaler"], number


def upscaler_field(args: Any) -> str:
    """Where the upscaler's name was, as the client spelled the arguments."""
    listed = args.get("args") if isinstance(args, dict) else None
    if isinstance(listed, list) and listed:
        return f"extension_args.{NAME}.args.0" + (".upscaler" if isinstance(listed[0], dict) else "")
    return f"extension_args.{NAME}.upscaler"


@hookimpl
def validate_request(request: GenerationRequest, family: str) -> None:
    """Refuse bad post-sample upscaling before a job exists (it used to run the whole
    generation and end "done" with a warning)."""
    try:
        wanted = post_sample_request(request.extension_args.get(NAME))
    except UpscalerInputError as exc:
        raise InvalidRequest(exc.field, str(exc).removeprefix(f"{exc.field}: ")) from None
    if wanted is None or STATE.host is None:
        return
    name = wanted[0]
    if STATE.host.upscalers.get(name) is None:
        known = ", ".join(STATE.host.upscalers.names())
        raise InvalidRequest(
            upscaler_field(request.extension_args.get(NAME)), f"no upscaler {name!r} (known: {known})"
        )


@hookimpl
def after_sample(ctx: GenerationContext, images: list[Any]) -> list[Any] | None:
    try:
        wanted = post_sample_request(ctx.request.extension_args.get(NAME))
    except UpscalerInputError as exc:  # validate_request refuses these; kept for direct callers
        ctx.warnings.append(f"ESRGAN: post-sample upscaling skipped: {exc}")
        return None
    if wanted is None or STATE.host is None:
        return None
    name, scale = wanted
    spec = STATE.host.upscalers.get(name)
    if spec is None:
        known = ", ".join(STATE.host.upscalers.names())
        ctx.warnings.append(f"ESRGAN: post-sample upscaling skipped: no upscaler {name!r} (known: {known})")
        return None
    try:
        upscaled = [spec.upscale(image, scale) for image in images]
    except (UpscalerFileError, UpscalerInputError) as exc:
        ctx.warnings.append(f"ESRGAN: post-sample upscaling skipped: {exc}")
        return None
    ctx.extra_params["Postprocess upscaler"] = spec.name
    ctx.extra_params["Postprocess upscale by"] = f"{scale:g}"
    return upscaled


@hookimpl
def ui_tabs(host: Any) -> list[Tab]:
    from types import SimpleNamespace

    from extensions.esrgan.tab import build_tab

    # the tab upscales and saves with the host that asked for it, not STATE.host (the last
    # one started: another host in the same process would get this tab's files)
    return [Tab(title="Extras", build=lambda: build_tab(SimpleNamespace(host=host)), elem_id="extras_tab")]


@hookimpl
def ui_form_sections() -> list[FormSection]:
    from extensions.esrgan import section

    return [
        FormSection(
            title="Upscale after generation",
            build=lambda tab: section.build(STATE, tab),
            to_args=section.to_args,
        )
    ]
