"""The prompt stage of a generation: styles, the context, seeds, the transform_prompt chain.

It needs no model, so it runs twice for a queued request: once at submit on a throwaway
copy (``ctx.dry_run``: an extension's refusal is then a 422 before anything is queued)
and once when the job runs. Seeds are drawn here, before ``transform_prompt``, so a hook
can choose per image from ``ctx.seeds`` (wildcards); ``ctx.prompts`` /
``ctx.negative_prompts`` come out with one entry per image.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from core.errors import RequestError
from core.plugins.extra_networks import ExtraNetworks
from core.styles import apply_styles
from core.validation import ValidatedRequest
from plugin_api.types import GenerationContext, GenerationRequest

log = logging.getLogger("easel.engine")

SEED_RANGE = 2**32


def dry_copy(request: GenerationRequest) -> GenerationRequest:
    """A copy a dry run may edit: the request's own lists and extension arguments stay as
    they are (the images inside are shared, hooks only read them)."""
    clone = copy.copy(request)
    clone.styles = list(request.styles or [])
    clone.extension_args = copy.deepcopy(request.extension_args)
    return clone


def new_context(
    checked: ValidatedRequest,
    *,
    host: Any,
    styles_file: Path,
    job_id: str | None,
    device: str,
    dtype: str,
    is_cancelled: Callable[[], bool],
    dry_run: bool = False,
) -> GenerationContext:
    """The context of one generation, with the styles applied to the request (A1111 applies
    them before anything reads the prompt; the infotext has the styled prompt)."""
    req = checked.request
    req.prompt, req.negative_prompt, missing_styles = apply_styles(
        req.prompt, req.negative_prompt, list(req.styles or []), styles_file
    )
    ctx = GenerationContext(
        request=req,
        original_prompt=req.prompt,
        original_negative_prompt=req.negative_prompt,
        job_id=job_id,
        model_name=checked.model_name,
        family=checked.family.name,
        device=device,
        dtype=dtype,
        settings=user_settings(host),
        dry_run=dry_run,
        is_cancelled=is_cancelled,
    )
    ctx.warnings.extend(checked.warnings)
    ctx.warnings.extend(
        f"style {name!r} is not in {styles_file.name}: skipped, as A1111 skips it" for name in missing_styles
    )
    return ctx


def user_settings(host: Any) -> MappingProxyType:
    """The user settings as a read-only mapping (empty for a host without them)."""
    settings = getattr(host, "user_settings", None)
    return MappingProxyType(dict(settings.all()) if settings is not None else {})


def run_prompt_stage(ctx: GenerationContext, hooks: Any, extra_networks: ExtraNetworks | None = None) -> None:
    """Draw the seeds, run the ``transform_prompt`` chain, and check what it left.

    Extra-network tags (``<lora:x:1>``) leave the prompt before the chain, so a translator
    never sees them, and leave the per-image prompts after it, where a wildcard may have
    written one."""
    req = ctx.request
    base_seed = req.seed if req.seed != -1 else random.randrange(SEED_RANGE)
    req.seed = base_seed
    total_images = req.batch_size * req.batch_count
    ctx.seeds = [base_seed + i for i in range(total_images)]
    if extra_networks is not None:
        extra_networks.take_tags(req, ctx)
    ctx.prompts = [req.prompt] * total_images
    ctx.negative_prompts = [req.negative_prompt] * total_images
    hooks.transform_prompt(req, ctx)
    check_prompt_stage(ctx, total_images)
    if extra_networks is not None:
        extra_networks.take_image_tags(ctx)


def check_prompt_stage(ctx: GenerationContext, total_images: int) -> None:
    """What the chain left must be usable: a hook's mistake names the field, not a crash
    deep in the sampler."""
    req = ctx.request
    for field in ("prompt", "negative_prompt"):
        if not isinstance(getattr(req, field), str):
            raise RequestError(field, "a transform_prompt hook left it as non-text")
    for field in ("prompts", "negative_prompts"):
        values = getattr(ctx, field)
        if not isinstance(values, list) or len(values) != total_images:
            raise RequestError(
                field,
                f"a transform_prompt hook left ctx.{field} without one entry per image ({total_images})",
            )
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise RequestError(f"{field}.{index}", "a transform_prompt hook left it as non-text")
    if not isinstance(ctx.seeds, list) or len(ctx.seeds) != total_images:
        raise RequestError("seed", f"a transform_prompt hook left ctx.seeds without {total_images} entries")
    for index, seed in enumerate(ctx.seeds):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise RequestError(f"seeds.{index}", "a transform_prompt hook left it as a non-seed")
