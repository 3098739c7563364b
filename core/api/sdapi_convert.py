"""A1111 request bodies to Easel requests, and Easel results to A1111 response shapes."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import HTTPException
from PIL import ImageOps

from core.api.catalog import Catalog
from core.api.images import decode_base64_image
from core.api.sdapi_models import SdapiGenerationBase, SdapiImg2ImgRequest, SdapiTxt2ImgRequest
from core.errors import RequestError
from core.schedules import split_schedule_suffix
from plugin_api.types import GenerationRequest

# override_settings keys Easel applies; the rest are accepted and ignored, as A1111
# ignores options it does not know.
CLIP_SKIP_OPTION = "CLIP_stop_at_last_layers"
MODEL_OPTION = "sd_model_checkpoint"
FORMAT_OPTION = "samples_format"
VAE_OPTION = "sd_vae"
# Easel's step caching (docs/speed.md), as override_settings keys A1111 clients can send
CACHE_METHOD_OPTION = "easel_cache_method"
CACHE_THRESHOLD_OPTION = "easel_cache_threshold"

log = logging.getLogger("easel.api")


def _sampler_and_scheduler(body: SdapiGenerationBase, catalog: Catalog) -> tuple[str | None, str | None]:
    """The sampler (``sampler_name``, else the older ``sampler_index``) and schedule type.
    An unknown sampler is A1111's ``404 {"detail": "Sampler not found"}``, which clients
    branch on; a name with a schedule label at its end ("DPM++ 2M Karras") is known, as
    A1111 1.10 splits it off (the engine does the split)."""
    sampler = body.sampler_name or body.sampler_index
    if sampler:
        registry = catalog.host.samplers
        split = split_schedule_suffix(sampler)
        if registry.get(sampler) is None and (split is None or registry.get(split[0]) is None):
            log.info("refused /sdapi/v1 generation: sampler %r not found", sampler)
            raise HTTPException(status_code=404, detail="Sampler not found")
    return sampler, body.scheduler


def _apply_overrides(body: SdapiGenerationBase, request: GenerationRequest, catalog: Catalog) -> None:
    overrides = body.override_settings or {}
    if MODEL_OPTION in overrides:
        value = overrides[MODEL_OPTION]
        if not isinstance(value, str):
            raise RequestError(f"override_settings.{MODEL_OPTION}", "must be a model title or name")
        request.model = catalog.model_info(value, f"override_settings.{MODEL_OPTION}").name
    if CLIP_SKIP_OPTION in overrides:
        value = overrides[CLIP_SKIP_OPTION]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 12:
            raise RequestError(f"override_settings.{CLIP_SKIP_OPTION}", "must be an integer from 1 to 12")
        request.clip_skip = value
    if VAE_OPTION in overrides:
        value = overrides[VAE_OPTION]
        if not isinstance(value, str):
            raise RequestError(
                f"override_settings.{VAE_OPTION}", 'must be "Automatic", "None" or a VAE file name'
            )
        where = f"override_settings.{VAE_OPTION}"
        model = request.model or catalog.default_model()
        if catalog.engine is not None and model:  # an unknown file: a 422 naming the option
            catalog.engine.models.vaes.resolve(value, catalog.model_info(model, where), field=where)
        request.vae = value
    if CACHE_METHOD_OPTION in overrides or CACHE_THRESHOLD_OPTION in overrides:
        from core.sampling.step_cache import parse_cache

        cache = {
            "method": overrides.get(CACHE_METHOD_OPTION, "off"),
            "threshold": overrides.get(CACHE_THRESHOLD_OPTION),
        }
        plan = parse_cache(cache, f"override_settings.{CACHE_METHOD_OPTION}")
        request.cache = plan.as_request() if plan is not None else None
    if FORMAT_OPTION in overrides:
        value = str(overrides[FORMAT_OPTION]).lower()
        if value not in {"png", "jpeg", "jpg", "webp"}:
            raise RequestError(f"override_settings.{FORMAT_OPTION}", "must be png, jpeg or webp")
        request.output_format = "jpeg" if value == "jpg" else value


def _extension_args(body: SdapiGenerationBase, catalog: Catalog) -> dict[str, Any]:
    """alwayson_scripts ``{"name": {"args": [...]}}`` to extension_args[name]. An unknown
    script is a 422, as in A1111, so a typo is not silently ignored."""
    known = catalog.extension_names()
    args: dict[str, Any] = {}
    for name, value in body.alwayson_scripts.items():
        extension = known.get(name.casefold()) or known.get(name.casefold().replace(" ", "_"))
        if extension is None:
            loaded = ", ".join(sorted(known.values())) or "none"
            raise RequestError(f"alwayson_scripts.{name}", f"no extension named {name!r}; loaded: {loaded}")
        if not isinstance(value, dict):
            raise RequestError(f"alwayson_scripts.{name}", 'expected an object like {"args": [...]}')
        args[extension] = value
    return args


def request_from_sdapi(body: SdapiGenerationBase, catalog: Catalog) -> GenerationRequest:
    """Build the request (decodes images: call it off the event loop)."""
    sampler, scheduler = _sampler_and_scheduler(body, catalog)
    request = GenerationRequest(
        prompt=body.prompt,
        negative_prompt=body.negative_prompt,
        seed=body.seed,
        steps=body.steps,
        cfg_scale=body.cfg_scale,
        distilled_cfg_scale=body.distilled_cfg_scale,
        width=body.width,
        height=body.height,
        sampler=sampler,
        scheduler=scheduler,
        shift=body.shift,
        styles=list(body.styles),
        batch_size=body.batch_size,
        batch_count=body.n_iter,
        save_images=body.save_images and not body.do_not_save_samples,
        extension_args=_extension_args(body, catalog),
        # a selectable script (X/Y/Z plot): the engine checks the name and the arguments
        script_name=body.script_name or None,
        script_args=list(body.script_args),
    )
    _apply_overrides(body, request, catalog)
    if isinstance(body, SdapiTxt2ImgRequest) and body.enable_hr:
        request.enable_hr = True
        request.hr_scale = body.hr_scale
        request.hr_upscaler = body.hr_upscaler
        request.hr_second_pass_steps = body.hr_second_pass_steps
        request.hr_resize_x, request.hr_resize_y = body.hr_resize_x, body.hr_resize_y
        # A1111's hires default strength is 0.7 (its UI's value)
        request.denoising_strength = 0.7 if body.denoising_strength is None else body.denoising_strength
    if isinstance(body, SdapiImg2ImgRequest):
        if not body.init_images:
            raise RequestError("init_images", "img2img needs at least one base64 image")
        request.init_image = decode_base64_image(body.init_images[0], "init_images.0")
        if body.denoising_strength is not None:
            request.denoising_strength = body.denoising_strength
        if body.mask:
            mask = decode_base64_image(body.mask, "mask").convert("L")
            request.mask = ImageOps.invert(mask) if body.inpainting_mask_invert else mask
            request.mask_blur = 4 if body.mask_blur is None else body.mask_blur
            request.inpaint_full_res = body.inpaint_full_res
            request.inpaint_full_res_padding = body.inpaint_full_res_padding
            request.inpainting_fill = body.inpainting_fill  # A1111's API default: 0, "fill"
    return request


def _from_infotext(infotexts: list[str]) -> dict[str, Any]:
    if not infotexts:
        return {}
    try:
        from core.saving.infotext import parse_infotext
    except ImportError:
        return {}
    try:
        return parse_infotext(infotexts[0])
    except Exception:
        return {}


def sdapi_info(record: Any, catalog: Catalog) -> dict[str, Any]:
    """The ``info`` object A1111 returns (as a JSON string), from the finished job."""
    result = record.result or {}
    run = result.get("parameters") or {}
    asked = record.request
    parsed = _from_infotext(result.get("infotexts", []))
    seeds = result.get("seeds") or []
    # A1111's parser gives a "WxH" field as its "-1"/"-2" halves only
    size = [str(parsed.get("Size-1", "")), str(parsed.get("Size-2", ""))]

    def pick(key: str, infotext_key: str, default: Any = None) -> Any:
        for value in (run.get(key), asked.get(key), parsed.get(infotext_key)):
            if value is not None:
                return value
        return default

    width = pick("width", "", None) or (int(size[0]) if len(size) == 2 and size[0].isdigit() else None)
    height = pick("height", "", None) or (int(size[1]) if len(size) == 2 and size[1].isdigit() else None)
    model_name = pick("model", "Model")
    model_hash = run.get("model_hash") or parsed.get("Model hash")
    if model_name and not model_hash:
        try:
            model_hash = catalog.model_info(model_name).hash
        except RequestError:
            model_hash = None
    # A1111's info holds the prompts as the user sent them (<lora:...> tags kept), like the
    # infotext's prompt lines; what the model saw is in the infotext's "Transformed prompt"
    prompt = result.get("original_prompt", result.get("prompt")) or asked.get("prompt", "")
    negative = (
        result.get("original_negative_prompt", result.get("negative_prompt"))
        or asked.get("negative_prompt")
        or ""
    )
    count = len(seeds) or 1
    started = record.started_at or record.created_at
    return {
        "prompt": prompt,
        "all_prompts": _per_image(result, "prompts", "prompt", prompt, count),
        "negative_prompt": negative,
        "all_negative_prompts": _per_image(result, "negative_prompts", "negative_prompt", negative, count),
        "seed": seeds[0] if seeds else asked.get("seed"),
        "all_seeds": seeds,
        # Easel has no variation seeds: say so rather than invent one
        "subseed": -1,
        "all_subseeds": [-1] * len(seeds),
        "subseed_strength": 0,
        "width": width,
        "height": height,
        "sampler_name": pick("sampler", "Sampler"),
        "cfg_scale": pick("cfg_scale", "CFG scale"),
        "steps": pick("steps", "Steps"),
        "batch_size": asked.get("batch_size", 1),
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": model_name,
        "sd_model_hash": model_hash,
        "sd_vae_name": parsed.get("VAE"),
        "sd_vae_hash": parsed.get("VAE hash"),
        "seed_resize_from_w": -1,
        "seed_resize_from_h": -1,
        "denoising_strength": (
            asked.get("denoising_strength") if asked.get("init_image") or asked.get("enable_hr") else None
        ),
        # A1111's extensions' infotext fields (strings), and Easel's structured results
        # by extension name (ctx.results: JSON objects)
        "extra_generation_params": {**(result.get("extra_params") or {}), **(result.get("results") or {})},
        "index_of_first_image": 0,
        "infotexts": result.get("infotexts", []),
        "styles": list(asked.get("styles") or []),
        "job_timestamp": time.strftime("%Y%m%d%H%M%S", time.localtime(started)),
        "clip_skip": asked.get("clip_skip", 1),
        "is_using_inpainting_conditioning": False,
        "version": "easel",
        "warnings": result.get("warnings", []),
        "job_id": record.id,
    }


def _per_image(result: dict[str, Any], key: str, shared_key: str, written: str, count: int) -> list[str]:
    """A1111's ``all_prompts``: per image. Images that got prompts of their own (wildcards)
    list them; when all saw the request's one prompt, the prompt as written (tags kept),
    as A1111 lists it."""
    per_image = result.get(key) or []
    if per_image and any(value != result.get(shared_key) for value in per_image):
        return list(per_image)
    return [written] * count


def sdapi_info_json(record: Any, catalog: Catalog) -> str:
    return json.dumps(sdapi_info(record, catalog))
