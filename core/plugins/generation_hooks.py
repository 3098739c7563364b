"""The per-generation hooks as the engine calls them: chains, merges and isolation.

The engine never touches pluggy; it calls these methods at the points the sampling
loop documents (see ``plugin_api.hookspecs``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from core.errors import RequestError
from core.plugins.dispatch import HookDispatcher
from core.plugins.sampling_hooks import SamplingHooks
from plugin_api.errors import InvalidRequest
from plugin_api.types import (
    GenerationContext,
    GenerationRequest,
    GenerationResult,
    PromptTransform,
    StepState,
)

log = logging.getLogger("easel.hooks")

# ctx.state key where the host remembers which per-step hooks failed in this generation
_FAILED_STEP_HOOKS = "easel.failed_step_hooks"


def merge_denoiser_kwargs(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge ``extra`` into ``base``: same-key tensors are added (element-wise for lists
    and tuples), so residuals from two ControlNet-like extensions combine."""
    merged = dict(base)
    for key, value in extra.items():
        if key not in merged or merged[key] is None:
            merged[key] = value
        elif isinstance(value, list | tuple):
            merged[key] = type(value)(a + b for a, b in zip(merged[key], value, strict=True))
        else:
            merged[key] = merged[key] + value
    return merged


@contextmanager
def _refusals_as_request_errors() -> Iterator[None]:
    """An extension's InvalidRequest becomes the host's RequestError (same field)."""
    try:
        yield
    except InvalidRequest as exc:
        raise RequestError(exc.field, exc.message) from exc


class GenerationHooks:
    def __init__(self, dispatcher: HookDispatcher) -> None:
        self._hooks = dispatcher

    def validate_request(
        self, request: GenerationRequest, family: str, settings: Mapping[str, Any] | None = None
    ) -> None:
        """Let extensions refuse a request before it is queued (raises RequestError)."""
        settings = MappingProxyType(dict(settings or {}))
        with _refusals_as_request_errors():
            self._hooks.call("validate_request", request=request, family=family, settings=settings)

    def transform_prompt(self, request: GenerationRequest, ctx: GenerationContext) -> None:
        """Run the chain, recording every link that changed a prompt. ``ctx.prompts`` /
        ``ctx.negative_prompts`` (one per image) follow request-level edits until a link
        sets them per image (see the hookspec)."""
        count = len(ctx.seeds)
        if not ctx.prompts:
            ctx.prompts = [request.prompt] * count
        if not ctx.negative_prompts:
            ctx.negative_prompts = [request.negative_prompt] * count
        for impl in self._hooks.implementations("transform_prompt"):
            before = (request.prompt, request.negative_prompt)
            lists_before = (list(ctx.prompts), list(ctx.negative_prompts))
            with _refusals_as_request_errors():
                ok, _ = self._hooks.call_one("transform_prompt", impl, {"request": request, "ctx": ctx})
            if not ok:
                # a half-done edit must not leak into the next link
                request.prompt, request.negative_prompt = before
                ctx.prompts, ctx.negative_prompts = lists_before
                continue
            self._follow_request_edit(impl.plugin_name, request, ctx, before, lists_before)
            lists_changed = (ctx.prompts, ctx.negative_prompts) != lists_before
            if (request.prompt, request.negative_prompt) != before or lists_changed:
                ctx.prompt_transforms.append(
                    PromptTransform(
                        extension=impl.plugin_name,
                        prompt_before=before[0],
                        prompt_after=request.prompt,
                        negative_before=before[1],
                        negative_after=request.negative_prompt,
                    )
                )

    @staticmethod
    def _follow_request_edit(
        extension: str,
        request: GenerationRequest,
        ctx: GenerationContext,
        before: tuple[str, str],
        lists_before: tuple[list[str], list[str]],
    ) -> None:
        """A link that edited ``request.prompt`` (or the negative) but left the per-image
        list alone: its edit applies to every image while the images share one prompt;
        once they differ it cannot be replayed per image, so it is kept out (a warning)."""
        for index, (attribute, listed) in enumerate(
            (("prompt", "prompts"), ("negative_prompt", "negative_prompts"))
        ):
            now, was = getattr(request, attribute), before[index]
            values = getattr(ctx, listed)
            if now == was or values != lists_before[index]:
                continue
            if all(value == was for value in values):
                setattr(ctx, listed, [now] * len(values))
            else:
                warning = (
                    f"extension {extension!r} edited request.{attribute} after the images got "
                    f"prompts of their own: its edit is not in ctx.{listed}; order it before "
                    "the per-image transform (extension.toml before/after) or edit the list"
                )
                ctx.warnings.append(warning)
                log.warning("%s", warning)

    def generation_finished(self, ctx: GenerationContext, result: GenerationResult) -> None:
        self._hooks.call("generation_finished", ctx=ctx, result=result)

    def generation_failed(self, ctx: GenerationContext, error: BaseException) -> None:
        self._hooks.call("generation_failed", ctx=ctx, error=error)

    def model_loaded(self, ctx: GenerationContext | None, model: Any) -> None:
        self._hooks.call("model_loaded", ctx=ctx, model=model)

    def before_sample(self, ctx: GenerationContext) -> None:
        with _refusals_as_request_errors():
            self._hooks.call("before_sample", ctx=ctx)

    def _step_call(self, hook: str, ctx: GenerationContext, step: StepState) -> list[Any]:
        failed: set[str] = ctx.state.setdefault(_FAILED_STEP_HOOKS, set())
        results = []
        for impl in self._hooks.implementations(hook):
            if (hook, impl.plugin_name) in failed:
                continue
            ok, result = self._hooks.call_one(hook, impl, {"ctx": ctx, "step": step})
            if ok:
                results.append(result)
            else:  # once per generation is enough: don't flood the log every step
                failed.add((hook, impl.plugin_name))
                ctx.warnings.append(f"extension {impl.plugin_name!r} failed in {hook}")
        return results

    def denoiser_kwargs(self, ctx: GenerationContext, step: StepState) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for result in self._step_call("denoiser_kwargs", ctx, step):
            if isinstance(result, dict):
                merged = merge_denoiser_kwargs(merged, result)
        return merged

    def sampling(self, ctx: GenerationContext) -> SamplingHooks:
        """The sampling-maths hooks for one sampling pass (core.plugins.sampling_hooks)."""
        return SamplingHooks(self._hooks, ctx)

    def on_step(self, ctx: GenerationContext, step: StepState) -> None:
        self._step_call("on_step", ctx, step)

    def after_sample(self, ctx: GenerationContext, images: list[Any]) -> list[Any]:
        for impl in self._hooks.implementations("after_sample"):
            ok, result = self._hooks.call_one("after_sample", impl, {"ctx": ctx, "images": list(images)})
            if ok and result is not None:
                if isinstance(result, list) and len(result) > 0:
                    images = result
                else:
                    ctx.warnings.append(
                        f"extension {impl.plugin_name!r}: after_sample must return a "
                        "non-empty list of images or None; its result was ignored"
                    )
        return images

    def image_saved(self, ctx: GenerationContext, path: str) -> None:
        self._hooks.call("image_saved", ctx=ctx, path=path)
