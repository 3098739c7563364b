"""The sampling-maths hooks for one sampling pass: model patches, the start noise, and the
three points around every denoiser call (see ``plugin_api.hookspecs``).

The implementations are listed once per pass, so a hook that no extension implements
costs the loop one truthiness check per denoiser call. Each implementation is isolated
as the other per-step hooks are (``GenerationHooks._step_call``): one that raises, or
leaves a field of another shape or type, has its changes undone, is reported once and
is not called again in that generation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any

import pluggy
import torch

from core.plugins.dispatch import HookDispatcher
from plugin_api.types import DenoiserCall, GenerationContext, SamplingNoise

log = logging.getLogger("easel.hooks")

CALL_HOOKS = ("before_denoiser", "after_denoiser", "after_cfg")
# shared with GenerationHooks: (hook, extension) pairs that failed in this generation
FAILED_STEP_HOOKS = "easel.failed_step_hooks"
# what each hook may change; the rest of DenoiserCall is the host's record of the call
WRITABLE = {
    "before_denoiser": ("x", "encoder_hidden_states", "added_cond_kwargs", "denoiser_kwargs", "cfg_scale"),
    "after_denoiser": ("uncond_pred", "cond_pred"),
    "after_cfg": ("prediction",),
}


def _snapshot(obj: Any) -> dict[str, Any]:
    # dicts are copied so that an implementation's in-place edits of them can be undone
    return {key: dict(value) if isinstance(value, dict) else value for key, value in vars(obj).items()}


def _problem(field: str, before: Any, after: Any) -> str | None:
    """Why ``after`` cannot replace ``before`` in ``field``, or None."""
    if after is before:
        return None
    if field == "cfg_scale":
        if isinstance(after, bool) or not isinstance(after, int | float) or not math.isfinite(after):
            return f"cfg_scale must be a finite number, got {after!r}"
        return None
    if isinstance(before, torch.Tensor):
        if not isinstance(after, torch.Tensor):
            return f"{field} must stay a tensor, got {type(after).__name__}"
        if after.shape != before.shape:
            return f"{field} changed shape from {tuple(before.shape)} to {tuple(after.shape)}"
    if isinstance(before, dict) and not isinstance(after, dict):
        return f"{field} must stay a dict, got {type(after).__name__}"
    return None


class SamplingHooks:
    """The sampling-maths hooks of one generation, as the sampling loop calls them."""

    def __init__(self, dispatcher: HookDispatcher, ctx: GenerationContext) -> None:
        self._hooks = dispatcher
        self._ctx = ctx
        self._failed: set[tuple[str, str]] = ctx.state.setdefault(FAILED_STEP_HOOKS, set())
        self._impls = {hook: self._live(hook) for hook in (*CALL_HOOKS, "prepare_noise", "patch_denoiser")}
        # the loop asks this once per call: False means the plain, hook-free path
        self.on_calls = any(self._impls[hook] for hook in CALL_HOOKS)

    def _live(self, hook: str) -> list[pluggy.HookImpl]:
        return [i for i in self._hooks.implementations(hook) if (hook, i.plugin_name) not in self._failed]

    def has(self, hook: str) -> bool:
        return bool(self._impls[hook])

    def _disable(self, hook: str, impl: pluggy.HookImpl, reason: str | None = None) -> None:
        """Stop calling ``impl`` for this generation; say so once."""
        name = impl.plugin_name
        self._failed.add((hook, name))
        self._impls[hook] = [i for i in self._impls[hook] if i is not impl]
        self.on_calls = any(self._impls[h] for h in CALL_HOOKS)
        if reason is not None:  # a bad result (an exception was reported by the dispatcher)
            self._hooks.report(name, hook, reason)
        self._ctx.warnings.append(f"extension {name!r} failed in {hook}")

    def _chain(self, hook: str, arg: str, value: Any, writable: tuple[str, ...]) -> None:
        for impl in list(self._impls[hook]):
            saved = _snapshot(value)
            ok, _ = self._hooks.call_one(hook, impl, {"ctx": self._ctx, arg: value})
            reason = None
            if ok:
                reason = next(
                    (r for f in writable if (r := _problem(f, saved[f], getattr(value, f))) is not None), None
                )
            if not ok or reason is not None:
                vars(value).update(saved)  # the extension's half-done changes go with it
                self._disable(hook, impl, reason)

    # --- once per pass ---------------------------------------------------------------

    @contextmanager
    def patches(self, denoiser: Any) -> Iterator[None]:
        """Enter every ``patch_denoiser`` context for the pass; exit them (in reverse)
        when it ends, however it ends."""
        with ExitStack() as stack:
            for impl in list(self._impls["patch_denoiser"]):
                ok, patch = self._hooks.call_one(
                    "patch_denoiser", impl, {"ctx": self._ctx, "denoiser": denoiser}
                )
                if not ok:
                    self._disable("patch_denoiser", impl)
                elif patch is not None:
                    self._enter(stack, impl, patch)
            yield

    def _enter(self, stack: ExitStack, impl: pluggy.HookImpl, patch: Any) -> None:
        if not isinstance(patch, AbstractContextManager):
            self._disable("patch_denoiser", impl, f"returned {type(patch).__name__}, not a context manager")
            return
        try:
            patch.__enter__()
        except Exception as exc:  # a patch that cannot apply must not stop the generation
            self._disable("patch_denoiser", impl, f"entering its patch: {type(exc).__name__}: {exc}")
            return
        stack.callback(self._exit, impl, patch)

    def _exit(self, impl: pluggy.HookImpl, patch: AbstractContextManager) -> None:
        try:
            patch.__exit__(None, None, None)
        except Exception as exc:  # reported; the pass's own outcome stands
            self._disable("patch_denoiser", impl, f"removing its patch: {type(exc).__name__}: {exc}")

    def prepare_noise(self, noise: SamplingNoise) -> None:
        if self._impls["prepare_noise"]:
            self._chain("prepare_noise", "noise", noise, ("noise",))

    # --- every denoiser call ------------------------------------------------------------

    def call(self, hook: str, call: DenoiserCall) -> None:
        """Run one of before_denoiser / after_denoiser / after_cfg as a chain."""
        if self._impls[hook]:
            self._chain(hook, "call", call, WRITABLE[hook])
