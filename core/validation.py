"""Validate a GenerationRequest and fill the family's defaults, before any model loads.

Every error is a ``RequestError(field, message)`` naming the request field, so the CLI,
the API and the WebUI can point at the exact input.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from core.errors import ModelError, RequestError
from core.families import FamilyAdapter, get_family
from core.models.sizes import native_side, size_hint
from core.samplers import display_name, names_for, resolve_sampler
from core.sampling.hires import HiresPlan, plan_hires
from core.sampling.step_cache import CachePlan, parse_cache
from core.schedules import ScheduleType, find_schedule, schedule_choices, split_schedule_suffix
from plugin_api.images import MAX_IMAGE_SIDE
from plugin_api.types import GenerationRequest, SamplerSpec

MIN_SIZE, MAX_SIZE = 64, 2048
MAX_STEPS = 150
MAX_CFG = 30.0
MAX_BATCH_SIZE = 8
MAX_BATCH_COUNT = 100
MAX_CLIP_SKIP = 12
MAX_SEED = 2**32 - 1  # A1111's range; per-image seeds are seed + index
OUTPUT_FORMATS = ("png", "jpeg", "jpg", "webp")
DEFAULT_LATE_CFG_START = 0.5  # late_cfg_scale without a start: the second half of the steps


@dataclasses.dataclass
class ValidatedRequest:
    request: GenerationRequest  # a copy with every default filled in
    model_name: str
    family: FamilyAdapter
    sampler: SamplerSpec
    sampler_name: str  # as shown to users and in infotext
    hires: HiresPlan | None = None  # hires fix, when the request asks for it
    schedule: ScheduleType | None = None  # the schedule type (None: Automatic)
    # what the result must say about the request (an approximated sampler, a fallback)
    warnings: list[str] = dataclasses.field(default_factory=list)
    cache: CachePlan | None = None  # step caching, when the request asks for it

    @property
    def uses_cfg(self) -> bool:
        """Whether any step needs the negative prompt's prediction (a CFG scale of 1 does not)."""
        req = self.request
        return req.cfg_scale != 1.0 or (req.late_cfg_scale is not None and req.late_cfg_scale != 1.0)

    @property
    def largest_size(self) -> tuple[int, int]:
        """(width, height) of the largest pass: the hires pass when there is one."""
        if self.hires is not None:
            return self.hires.width, self.hires.height
        return self.request.width, self.request.height


def _int(request: GenerationRequest, field: str, low: int, high: int) -> int:
    value = getattr(request, field)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RequestError(field, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise RequestError(field, f"must be between {low} and {high}, got {value}")
    return value


def _float(request: GenerationRequest, field: str, low: float, high: float) -> float:
    value = getattr(request, field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(field, f"must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise RequestError(field, f"must be a finite number, got {value}")
    if not low <= value <= high:
        raise RequestError(field, f"must be between {low:g} and {high:g}, got {value:g}")
    return value


def _size(request: GenerationRequest, field: str, multiple: int) -> int:
    value = _int(request, field, MIN_SIZE, MAX_SIZE)
    if value % multiple:
        raise RequestError(field, f"must be a multiple of {multiple} for this model, got {value}")
    return value


def validate_request(request: Any, models: Any, samplers: Any, upscalers: Any = None) -> ValidatedRequest:
    """Check every field of ``request`` and return a filled-in copy.

    ``models`` is the ModelManager (listing only: nothing is loaded), ``samplers`` the
    host's sampler registry, ``upscalers`` its upscaler registry (for hires fix).
    """
    if not isinstance(request, GenerationRequest):
        raise RequestError("request", f"expected a GenerationRequest, got {type(request).__name__}")
    req = dataclasses.replace(request, extension_args=dict(request.extension_args or {}))
    for field in ("prompt", "negative_prompt"):
        value = getattr(req, field)
        if value is None:
            setattr(req, field, "")
        elif not isinstance(value, str):
            raise RequestError(field, f"must be text, got {type(value).__name__}")

    if req.model is not None and not isinstance(req.model, str):
        raise RequestError("model", f"must be a model name, got {req.model!r}")
    try:
        name = req.model or models.default_name()
        if not name:
            raise RequestError("model", "no models found; put a checkpoint in models/Stable-diffusion")
        info = models.info(name)
    except ModelError as exc:
        raise RequestError("model", str(exc)) from exc
    req.model = info.name
    family = get_family(info.family)
    defaults = family.defaults_for(info.variant)

    for field, value in info.recommended.items():
        if getattr(req, field) is None:
            setattr(req, field, value)  # the model's own recommendation (its easel.json)
    for field in ("width", "height", "steps", "cfg_scale", "sampler"):
        if getattr(req, field) is None:
            native = info.native_size if field in ("width", "height") else None
            setattr(req, field, native or getattr(defaults, field))
    req.width = _size(req, "width", defaults.size_multiple)
    req.height = _size(req, "height", defaults.size_multiple)
    far = size_hint(req.width, req.height, native_side(info, defaults.width))
    size_warnings = [far] if far else []
    if isinstance(req.steps, int) and 1 <= req.steps < defaults.min_steps:
        raise RequestError(
            "steps", f"{family.label} needs at least {defaults.min_steps} steps, got {req.steps}"
        )
    req.steps = _int(req, "steps", 1, MAX_STEPS)
    req.cfg_scale = _float(req, "cfg_scale", 0.0, MAX_CFG)
    if req.late_cfg_scale is None:
        req.late_cfg_start = None  # one scale throughout
    else:
        req.late_cfg_scale = _float(req, "late_cfg_scale", 0.0, MAX_CFG)
        if req.late_cfg_start is None:
            req.late_cfg_start = DEFAULT_LATE_CFG_START
        req.late_cfg_start = _float(req, "late_cfg_start", 0.0, 1.0)
    distilled_warnings: list[str] = []
    _distilled_guidance(req, family, info.variant, distilled_warnings)
    req.seed = _int(req, "seed", -1, MAX_SEED)
    req.batch_size = _int(req, "batch_size", 1, MAX_BATCH_SIZE)
    req.batch_count = _int(req, "batch_count", 1, MAX_BATCH_COUNT)
    if req.clip_skip is None:
        req.clip_skip = 1  # a host fills the CLIP_stop_at_last_layers setting before
    req.clip_skip = _int(req, "clip_skip", 1, MAX_CLIP_SKIP)

    if not isinstance(req.sampler, str) or not req.sampler.strip():
        raise RequestError("sampler", f"must be a sampler name, got {req.sampler!r}")
    spec, schedule, warnings = _sampler_and_schedule(req, samplers, family)
    warnings = distilled_warnings + size_warnings + warnings
    sampler_name = display_name(spec) if family.flow else spec.name
    # canonical: "k_euler_a" and "euler A" become "Euler a". A name run as another
    # sampler (no flow form) keeps the asked name, so validating the stored request again
    # (the queue validates at submit and at run) gives the same warning again.
    asked = samplers.get(req.sampler.strip())
    req.sampler = (
        asked.name if asked is not None and asked.name != spec.name and not asked.flow else sampler_name
    )
    req.scheduler = schedule.label  # canonical: "karras" becomes "Karras"
    if req.shift is not None:
        req.shift = _float(req, "shift", 0.01, 100.0)
        if not family.flow:
            warnings.append(f"shift applies to flow-matching models only; {family.label} ignores it")
            req.shift = None

    if req.output_format is None:
        req.output_format = "png"  # a host fills the samples_format setting before
    fmt = req.output_format.lower() if isinstance(req.output_format, str) else req.output_format
    if fmt not in OUTPUT_FORMATS:
        raise RequestError(
            "output_format", f"must be one of {', '.join(OUTPUT_FORMATS)}, got {req.output_format!r}"
        )
    req.output_format = "jpeg" if fmt == "jpg" else fmt

    if req.init_image is not None:
        _check_image(req.init_image, "init_image")
        req.denoising_strength = _float(req, "denoising_strength", 0.0, 1.0)
    if req.mask is not None:
        if req.init_image is None:
            raise RequestError("mask", "a mask needs an init_image (inpainting)")
        _check_image(req.mask, "mask")
        req.mask_blur = _int(req, "mask_blur", 0, 64)
        req.inpaint_full_res_padding = _int(req, "inpaint_full_res_padding", 0, 256)
        req.inpainting_fill = _int(req, "inpainting_fill", 0, 3)
    if not isinstance(req.extension_args, dict):
        raise RequestError("extension_args", "must be a mapping of extension name to arguments")
    hires = plan_hires(req, upscalers, defaults.size_multiple, MAX_SIZE)
    if hires is not None:
        req.denoising_strength = _float(req, "denoising_strength", 0.0, 1.0)
    cache = parse_cache(req.cache)
    req.cache = cache.as_request() if cache is not None else None  # canonical, JSON
    return ValidatedRequest(req, info.name, family, spec, sampler_name, hires, schedule, warnings, cache)


def _distilled_guidance(
    req: GenerationRequest, family: FamilyAdapter, variant: str, warnings: list[str]
) -> None:
    """Distilled CFG for the models that take it (FLUX.1-dev); the negative prompt's fate
    on a guidance-distilled family, which needs real CFG (scale > 1) to use it."""
    takes_guidance = family.distilled_guidance_default(variant)
    if takes_guidance is None:
        if req.distilled_cfg_scale is not None:
            warnings.append(
                f"Distilled CFG Scale applies to guidance-distilled models (FLUX.1-dev); {family.label} ignores it"
            )
            req.distilled_cfg_scale = None
    else:
        if req.distilled_cfg_scale is None:
            req.distilled_cfg_scale = takes_guidance
        req.distilled_cfg_scale = _float(req, "distilled_cfg_scale", 0.0, MAX_CFG)
    if family.guidance_distilled_family and req.negative_prompt.strip() and req.cfg_scale == 1.0:
        warnings.append(
            f"{family.label} ignores the negative prompt at CFG scale 1 (its guidance is distilled); "
            "set CFG scale above 1 for true CFG with the negative prompt (twice the time per step)"
        )


def _sampler_and_schedule(
    req: GenerationRequest, samplers: Any, family: FamilyAdapter
) -> tuple[SamplerSpec, ScheduleType, list[str]]:
    """The sampler and schedule type a request names, as A1111 1.10 reads them: a name
    with a schedule label at its end ("DPM++ 2M Karras", from A1111 < 1.9) is the
    sampler plus that schedule type."""
    if req.scheduler is not None and not isinstance(req.scheduler, str):
        raise RequestError("scheduler", f"must be a schedule type name, got {req.scheduler!r}")
    schedule = find_schedule(req.scheduler)
    if schedule is None:
        raise RequestError(
            "scheduler", f"unknown schedule type {req.scheduler!r}; choose one of: {schedule_choices()}"
        )
    name = req.sampler.strip()
    found = resolve_sampler(samplers, name, family.flow)
    if found is None and samplers.get(name) is None:
        split = split_schedule_suffix(name)
        if split is not None and samplers.get(split[0]) is not None:
            name, schedule = split
            found = resolve_sampler(samplers, name, family.flow)
    if found is None:
        choices = ", ".join(names_for(samplers, family.flow))
        raise RequestError(
            "sampler", f"unknown sampler {req.sampler!r} for {family.label}; choose one of: {choices}"
        )
    spec, warning = found
    warnings = [warning] if warning else []
    if spec.note:
        warnings.append(spec.note)
    return spec, schedule, warnings


def _check_image(value: Any, field: str) -> None:
    from PIL import Image

    if not isinstance(value, Image.Image):
        raise RequestError(field, f"must be an image, got {type(value).__name__}")
    if value.width < 8 or value.height < 8:
        raise RequestError(field, f"image is too small ({value.width}x{value.height})")
    # the API's image gate already refused these before decoding; Python and WebUI callers
    # hand over decoded images, which get the same limit here (one limit for every door)
    if value.width > MAX_IMAGE_SIDE or value.height > MAX_IMAGE_SIDE:
        raise RequestError(
            field, f"image is {value.width}x{value.height}; the limit is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
        )
