"""What a generation writes about itself: the A1111 infotext of each image, the fields its
file name pattern can name, and the result's parameters (the native API's record of what
ran). Pure functions of the validated request, the loaded model and the context: the engine
calls them per image (core/engine.py)."""

from __future__ import annotations

import json
import time
from typing import Any

from core import __version__
from core.models.manager import LoadedModel
from core.sampling.step_cache import INFOTEXT_KEY as CACHE_KEY
from core.saving.filenames import NameFields
from core.saving.infotext import TRANSFORMED_NEGATIVE_PROMPT, TRANSFORMED_PROMPT, build_infotext
from core.validation import ValidatedRequest
from plugin_api.types import GenerationContext, GenerationRequest


def infotext(
    checked: ValidatedRequest,
    model: LoadedModel,
    ctx: GenerationContext,
    seed: int,
    position: int,
    index: int = 0,
    *,
    hashes: Any,
) -> str:
    """The A1111 ``parameters`` text of image ``index`` of the request (``position`` in
    its batch): its own seed and, when transforms changed it, its own prompt."""
    req = checked.request
    prompt = ctx.prompts[index] if index < len(ctx.prompts) else req.prompt
    negative = ctx.negative_prompts[index] if index < len(ctx.negative_prompts) else req.negative_prompt
    params: dict[str, Any] = {
        "Steps": req.steps,
        "Sampler": checked.sampler_name,
        "Schedule type": req.scheduler,  # the label the user chose, as A1111 writes it
        "CFG scale": req.cfg_scale,
        "Distilled CFG Scale": req.distilled_cfg_scale,
        "Seed": seed,
        "Size": f"{req.width}x{req.height}",
        "Model hash": model.info.hash,
        "Model": model.name,
    }
    if model.vae_file is not None:  # A1111 names a VAE only when a file replaced the model's own
        params["VAE hash"] = hashes.short_hash(model.vae_file.path)
        params["VAE"] = model.vae_file.name
    if req.shift is not None:
        params["Shift"] = req.shift
    if checked.cache is not None:
        params[CACHE_KEY] = checked.cache.label  # "deepcache 3": a paste reproduces it
    if req.late_cfg_scale is not None:
        params["Late CFG scale"] = req.late_cfg_scale
        params["Late CFG start"] = req.late_cfg_start
    if req.batch_size > 1:
        params["Batch size"] = req.batch_size
        params["Batch pos"] = position
    if req.init_image is not None:
        params["Denoising strength"] = req.denoising_strength
    if checked.hires is not None:
        params.update(checked.hires.infotext_params(req.denoising_strength))
    if req.mask is not None:
        params["Mask blur"] = req.mask_blur
        if req.inpaint_full_res:
            params["Inpaint area"] = "Only masked"
            params["Masked area padding"] = req.inpaint_full_res_padding
    if req.clip_skip > 1:
        params["Clip skip"] = req.clip_skip
    if req.styles:
        # A1111 re-derives the styles from the styled prompt when it reads an infotext;
        # the names are written too so PNG Info and Easel show which were applied
        params["Styles array"] = json.dumps(list(req.styles), ensure_ascii=False)
    params.update(ctx.extra_params)
    for extension, value in ctx.results.items():  # structured: one compact JSON field each
        params[extension] = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    if ctx.prompt_transforms:
        # what the text encoder saw for this image, after the transform_prompt chain
        # (LoRA tags taken out, a Chinese prompt translated, a wildcard chosen...)
        if ctx.original_prompt != prompt:
            params[TRANSFORMED_PROMPT] = prompt
        if ctx.original_negative_prompt != negative:
            params[TRANSFORMED_NEGATIVE_PROMPT] = negative
        params["Prompt transforms"] = " > ".join(t.extension for t in ctx.prompt_transforms)
    params["Version"] = f"easel-{__version__}"
    # The prompt lines are the prompts as the user wrote them, <lora:...> tags included,
    # as A1111 writes them: pasting these parameters (PNG Info, Civitai, A1111) runs the
    # same transforms again and remakes the image.
    return build_infotext(ctx.original_prompt, ctx.original_negative_prompt, params)


def result_parameters(req: GenerationRequest, checked: ValidatedRequest, seed: int) -> dict[str, Any]:
    """The result's ``parameters``: what the request ran with, as the native API returns it."""
    return {
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt,
        "seed": seed,
        "steps": req.steps,
        "cfg_scale": req.cfg_scale,
        "late_cfg_scale": req.late_cfg_scale,
        "late_cfg_start": req.late_cfg_start,
        "width": req.width,
        "height": req.height,
        "sampler": checked.sampler_name,
        "scheduler": req.scheduler,
        "shift": req.shift,
        "styles": list(req.styles or []),
        "model": checked.model_name,
        "vae": req.vae,
        "family": checked.family.name,
        "batch_size": req.batch_size,
        "batch_count": req.batch_count,
        "clip_skip": req.clip_skip,
        "mode": req.mode,
        "denoising_strength": (
            req.denoising_strength if req.init_image is not None or checked.hires else None
        ),
        "hires": (
            {
                "width": checked.hires.width,
                "height": checked.hires.height,
                "steps": checked.hires.steps,
                "upscaler": checked.hires.upscaler,
            }
            if checked.hires
            else None
        ),
    }


def name_fields(
    checked: ValidatedRequest, model: LoadedModel, ctx: GenerationContext, seed: int, position: int,
    index: int,
) -> NameFields:  # fmt: skip
    """What the file name pattern can name about image ``index`` (A1111's tags)."""
    req = checked.request
    return NameFields(
        seed=seed,
        prompt=ctx.original_prompt,
        negative_prompt=ctx.original_negative_prompt,
        seeds=list(ctx.seeds),
        steps=req.steps,
        cfg_scale=req.cfg_scale,
        width=req.width,
        height=req.height,
        sampler=checked.sampler_name,
        scheduler=req.scheduler or "",
        styles=list(req.styles or []),
        model_name=model.name,
        model_hash=model.info.hash or "",
        vae_filename=model.vae_file.name if model.vae_file is not None else "",
        clip_skip=req.clip_skip,
        batch_number=position,
        generation_number=index,
        denoising=req.denoising_strength if req.init_image is not None or checked.hires else None,
        job_timestamp=ctx.state.setdefault("easel.job_timestamp", time.strftime("%Y%m%d%H%M%S")),
    )
