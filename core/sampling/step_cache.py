"""Step caching: reuse part of the denoiser's work between neighbouring sampling steps.

A request opts in with ``cache = {"method": ..., "threshold": ...}`` (off by default):

| method | families | what is reused | ``threshold`` |
|---|---|---|---|
| ``fbcache`` | transformers (Z-Image) | every block after the first, when the first block's output changed little | relative change of the first block's residual (0.05) |
| ``magcache`` | transformers | every block, while the accumulated residual-magnitude error stays small | accumulated error (0.06) |
| ``taylorseer`` | transformers | attention / feed-forward outputs, predicted by a Taylor series | full computation every N steps (3) |
| ``deepcache`` | UNets (SD1.x/2.x, SDXL) | the deep features: everything below the shallowest down/up block pair | full computation every N steps (3) |

The transformer methods are diffusers' own hooks (``diffusers.hooks``), applied to the
denoiser for one sampling pass and removed after it, so no state reaches the next pass or
job. DeepCache (Ma et al. 2023) is implemented here with forward hooks on the UNet's
blocks: on a full step every block runs and the outputs of the deep ones are kept; on the
other steps only ``conv_in``, the first down block, the last up block and ``conv_out`` run,
and the deep blocks hand back what they returned on the last full step. The UNet's own
forward still runs, so LoRA layers, ControlNet residuals (the shallow ones still apply on
a cached step), SDXL's added conditioning and the memory modes' offload hooks keep working.

The counts of denoiser calls and of calls that ran the whole network are kept in
``StepCacheStats`` and reported in the result (and by ``python -m bench demo --cache``).
"""

from __future__ import annotations

import inspect
import logging
import re
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from core.errors import RequestError

log = logging.getLogger("easel.cache")

OFF = "off"
TRANSFORMER_METHODS = ("fbcache", "magcache", "taylorseer")
UNET_METHODS = ("deepcache",)
METHODS = (OFF, *TRANSFORMER_METHODS, *UNET_METHODS)
# interval methods take a whole number of steps; the others a float tolerance
INTERVAL_METHODS = ("taylorseer", "deepcache")
DEFAULT_THRESHOLD = {"fbcache": 0.05, "magcache": 0.06, "taylorseer": 3, "deepcache": 3}
MAX_TOLERANCE = 1.0
MAX_INTERVAL = 10
# caching pays off on long schedules; a distilled 8-9 step model gains ~1.1x and loses detail
FEW_STEPS = 10
INFOTEXT_KEY = "Cache"  # "Cache: deepcache 3"


@dataclass(frozen=True)
class CachePlan:
    method: str
    threshold: float

    @property
    def label(self) -> str:
        """The infotext value: "deepcache 3", "fbcache 0.05"."""
        value = int(self.threshold) if self.method in INTERVAL_METHODS else self.threshold
        return f"{self.method} {value:g}"

    def as_request(self) -> dict[str, Any]:
        """The request field's canonical form."""
        value = int(self.threshold) if self.method in INTERVAL_METHODS else self.threshold
        return {"method": self.method, "threshold": value}


@dataclass
class StepCacheStats:
    """Counted while sampling: denoiser calls, and those that ran the whole network."""

    method: str = OFF
    calls: int = 0
    full_calls: int = 0

    @property
    def saved(self) -> int:
        return self.calls - self.full_calls

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "full_calls": self.full_calls, "saved": self.saved}


_TEXT_FORM = re.compile(r"^\s*([A-Za-z]+)\s*(?:[:\s]\s*([0-9.eE+-]+))?\s*$")


def parse_cache(value: Any, field_name: str = "cache") -> CachePlan | None:
    """A request's ``cache`` (None, "off", "deepcache", "deepcache:3", the infotext's
    "deepcache 3", or ``{"method": ..., "threshold": ...}``) as a plan; None when off.
    Raises ``RequestError`` naming the field."""
    if value is None:
        return None
    threshold: Any = None
    if isinstance(value, str):
        match = _TEXT_FORM.match(value)
        if match is None:
            raise RequestError(field_name, f'expected "METHOD" or "METHOD:THRESHOLD", got {value!r}')
        method, threshold_text = match.group(1), match.group(2)
        if threshold_text is not None:
            try:
                threshold = float(threshold_text)
            except ValueError:
                raise RequestError(
                    field_name, f"threshold must be a number, got {threshold_text!r}"
                ) from None
    elif isinstance(value, dict):
        unknown = set(value) - {"method", "threshold"}
        if unknown:
            raise RequestError(f"{field_name}.{sorted(unknown)[0]}", "unknown key; use method and threshold")
        method, threshold = value.get("method", OFF), value.get("threshold")
        if method is None:
            method = OFF
    else:
        raise RequestError(
            field_name, f'must be an object {{"method": ..., "threshold": ...}}, got {value!r}'
        )
    if not isinstance(method, str) or method.strip().lower() not in METHODS:
        raise RequestError(
            f"{field_name}.method", f"unknown cache method {method!r}; choose one of: {', '.join(METHODS)}"
        )
    method = method.strip().lower()
    if method == OFF:
        return None
    if threshold is None:
        threshold = DEFAULT_THRESHOLD[method]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold != threshold:
        raise RequestError(f"{field_name}.threshold", f"must be a number, got {threshold!r}")
    if method in INTERVAL_METHODS:
        if float(threshold) != int(threshold) or not 2 <= threshold <= MAX_INTERVAL:
            raise RequestError(
                f"{field_name}.threshold",
                f"{method} takes the interval between full steps, a whole number from 2 to {MAX_INTERVAL}; got {threshold!r}",
            )
        return CachePlan(method, float(int(threshold)))
    if not 0 < threshold <= MAX_TOLERANCE:
        raise RequestError(
            f"{field_name}.threshold",
            f"{method} takes a tolerance in (0, {MAX_TOLERANCE:g}]; got {threshold!r}",
        )
    return CachePlan(method, float(threshold))


def check_plan(plan: CachePlan, family: Any, compile_mode: str, steps: int) -> list[str]:
    """Refuse a method the model cannot run (``RequestError("cache", reason)``); return
    warnings for one that runs but gains little."""
    unet = family.denoiser_name == "unet"
    if unet and plan.method not in UNET_METHODS:
        raise RequestError(
            "cache",
            f"{plan.method} hooks a transformer's block stack; {family.label} has a UNet: use deepcache",
        )
    if not unet and plan.method in UNET_METHODS:
        raise RequestError(
            "cache",
            f"deepcache reuses a UNet's deep blocks; {family.label} is a transformer: use fbcache, magcache or taylorseer",
        )
    if compile_mode == "full":
        raise RequestError(
            "cache",
            "the denoiser is compiled whole (EASEL_COMPILE=full) and caching changes its path from step "
            "to step (a recompilation each time): use EASEL_COMPILE=regional or off",
        )
    if not unet and compile_mode != "off":
        raise RequestError(
            "cache",
            f"{plan.method} replaces the forward of the transformer blocks that regional compilation "
            "compiled: use EASEL_COMPILE=off with it",
        )
    if steps < FEW_STEPS:
        return [f"cache {plan.label}: at {steps} steps caching saves little and costs detail"]
    return []


# --- running a pass with a cache --------------------------------------------------------


class _CallCounter:
    """Counts denoiser calls (a pre-hook on the denoiser) and full calls (a pre-hook on the
    first layer with weights inside a deep block). Not on the block itself: a cached block
    is still *called* (its replaced forward answers from the cache), its layers are not."""

    def __init__(self, stats: StepCacheStats, root: torch.nn.Module, deep_block: torch.nn.Module) -> None:
        deep = next(
            m
            for m in deep_block.modules()
            if not list(m.children()) and next(m.parameters(), None) is not None
        )

        def count_call(*_: Any) -> None:
            stats.calls += 1

        def count_full(*_: Any) -> None:
            stats.full_calls += 1

        self.handles = [
            root.register_forward_pre_hook(count_call),
            deep.register_forward_pre_hook(count_full),
        ]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class DeepCache:
    """DeepCache for a diffusers ``UNet2DConditionModel``: every ``interval``-th call runs
    the whole UNet and keeps the deep blocks' outputs; the calls between run only the
    shallowest blocks and reuse them."""

    def __init__(self, unet: torch.nn.Module, interval: int) -> None:
        if len(unet.down_blocks) < 2 or len(unet.up_blocks) < 2:
            raise RequestError("cache", "deepcache needs a UNet with at least two down and up blocks")
        self.interval = interval
        self.call = -1
        self.outputs: dict[int, Any] = {}
        deep = [*unet.down_blocks[1:], unet.mid_block, *unet.up_blocks[:-1]]
        self.deep = [module for module in deep if module is not None]
        self.handles = [unet.register_forward_pre_hook(self._next_call)]
        self._forwards: list[tuple[torch.nn.Module, Any]] = []
        for module in self.deep:
            self._forwards.append((module, module.forward))
            module.forward = self._wrap(module, module.forward)

    def _next_call(self, *_: Any) -> None:
        self.call += 1

    @property
    def full(self) -> bool:
        return self.call % self.interval == 0 or not self.outputs

    def _wrap(self, module: torch.nn.Module, forward: Any) -> Any:
        key = id(module)

        def cached_forward(*args: Any, **kwargs: Any) -> Any:
            if self.full or key not in self.outputs:
                output = forward(*args, **kwargs)
                self.outputs[key] = output
                return output
            return self.outputs[key]

        return cached_forward

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        for module, forward in self._forwards:
            # the instance attribute we set shadows the class's forward: delete it, unless
            # something else replaced it meanwhile (then put back what we found)
            if "forward" in vars(module):
                del module.forward
            if module.forward != forward:
                module.forward = forward
        self.outputs.clear()


def _alias_hidden_states(block_class: type, argument: str) -> None:
    """diffusers' FBCache and MagCache hooks read a block's input as ``hidden_states``;
    Z-Image's block names it ``x``. Record the alias in diffusers' block metadata so the
    hooks find it (idempotent)."""
    from diffusers.hooks._helpers import TransformerBlockRegistry

    metadata = TransformerBlockRegistry.get(block_class)
    names = list(inspect.signature(block_class.forward).parameters)[1:]
    indices = {name: index for index, name in enumerate(names)}
    if "hidden_states" not in indices and argument in indices:
        indices["hidden_states"] = indices[argument]
        metadata._cached_parameter_indices = indices


class TransformerCache:
    """One of diffusers' cache hooks on a transformer, for one pass."""

    def __init__(self, transformer: torch.nn.Module, plan: CachePlan, total_calls: int, ratios: Any) -> None:
        from diffusers import hooks
        from diffusers.hooks.hooks import CacheContext, HookRegistry, _set_cache_context

        blocks = _block_stack(transformer)
        if len(blocks) < 2:
            raise RequestError("cache", f"{plan.method} needs a transformer with at least two blocks")
        block_class = type(blocks[0])
        if block_class.__name__ == "ZImageTransformerBlock":
            _alias_hidden_states(block_class, "x")
        self.transformer = transformer
        self.calibrating = False
        if plan.method == "fbcache":
            hooks.apply_first_block_cache(transformer, hooks.FirstBlockCacheConfig(threshold=plan.threshold))
        elif plan.method == "taylorseer":
            # diffusers' default patterns name Flux-style stacks; these are the attention and
            # feed-forward branches of whatever this transformer's stack is called
            stack = "|".join(re.escape(name) for name in _stack_names(transformer))
            config = hooks.TaylorSeerCacheConfig(
                cache_identifiers=[rf"^(?:{stack})\.\d+\.(?:attention|attn|attn1|feed_forward|ff)$"],
                cache_interval=int(plan.threshold),
                disable_cache_before_step=min(3, max(1, total_calls // 4)),
                # float32 factors: bfloat16 would round the predictions on the CPU path
                taylor_factors_dtype=torch.float32,
            )
            hooks.apply_taylorseer_cache(transformer, config)
        else:
            self.calibrating = ratios is None
            config = (
                # a run that never ends for the hook, so it keeps the ratios for us to read
                hooks.MagCacheConfig(calibrate=True, num_inference_steps=10**6)
                if self.calibrating
                else hooks.MagCacheConfig(
                    threshold=plan.threshold, num_inference_steps=total_calls, mag_ratios=list(ratios)
                )
            )
            hooks.apply_mag_cache(transformer, config)
        self.registry = HookRegistry.check_if_exists_or_initialize(transformer)
        self.registry.invalidate_child_registries_cache()
        _set_cache_context(transformer, CacheContext("easel", num_inference_steps=total_calls))
        self._set_context = _set_cache_context

    def calibration(self) -> list[float] | None:
        """MagCache's measured magnitude ratios, after a calibrating pass."""
        if not self.calibrating:
            return None
        from diffusers.hooks.mag_cache import _MAG_CACHE_LEADER_BLOCK_HOOK

        for child in self.registry._get_child_registries():
            hook = child.hooks.get(_MAG_CACHE_LEADER_BLOCK_HOOK)
            if hook is not None:
                ratios = list(hook.state_manager.get_state().calibration_ratios)
                return ratios or None
        return None

    def remove(self) -> None:
        from diffusers.hooks.first_block_cache import _FBC_BLOCK_HOOK, _FBC_LEADER_BLOCK_HOOK
        from diffusers.hooks.mag_cache import _MAG_CACHE_BLOCK_HOOK, _MAG_CACHE_LEADER_BLOCK_HOOK
        from diffusers.hooks.taylorseer_cache import _TAYLORSEER_CACHE_HOOK

        self._set_context(self.transformer, None)
        for name in (
            _FBC_LEADER_BLOCK_HOOK, _FBC_BLOCK_HOOK, _MAG_CACHE_LEADER_BLOCK_HOOK,
            _MAG_CACHE_BLOCK_HOOK, _TAYLORSEER_CACHE_HOOK,
        ):  # fmt: skip
            self.registry.remove_hook(name, recurse=True)
        self.registry.invalidate_child_registries_cache()
        _restore_class_forwards(self.transformer)


def _restore_class_forwards(root: torch.nn.Module) -> None:
    """diffusers' ``remove_hook`` puts the original bound ``forward`` back as an instance
    attribute; drop it where it is just the class's own, so the module is as loaded (a
    later ``torch.compile`` or hook sees the pristine class method)."""
    for module in root.modules():
        forward = vars(module).get("forward")
        if (
            getattr(forward, "__self__", None) is module
            and getattr(forward, "__func__", None) is type(module).forward
        ):
            del module.forward


def _stack_names(transformer: torch.nn.Module) -> list[str]:
    from diffusers.hooks._common import _ALL_TRANSFORMER_BLOCK_IDENTIFIERS

    return [
        name
        for name, child in transformer.named_children()
        if name in _ALL_TRANSFORMER_BLOCK_IDENTIFIERS and isinstance(child, torch.nn.ModuleList)
    ]


def _block_stack(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """The main stack of blocks, where diffusers' block caches attach (``layers``,
    ``transformer_blocks``...)."""
    return [block for name in _stack_names(transformer) for block in getattr(transformer, name)]


# MagCache's ratios per transformer (weakly held: gone with the model) and schedule,
# measured by the first magcache pass of that schedule
_MAG_RATIOS: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, list[float]]] = (
    weakref.WeakKeyDictionary()
)


class StepCache:
    """A plan applied to one model for one sampling pass: ``start(total_calls)`` when the
    loop knows its length, ``close()`` (always) after it."""

    def __init__(self, plan: CachePlan, model: Any, schedule_key: tuple, stats: StepCacheStats) -> None:
        self.plan, self.model, self.stats = plan, model, stats
        self.schedule_key = schedule_key
        self.denoiser = model.components[model.adapter.denoiser_name]
        self._active: DeepCache | TransformerCache | None = None
        self._counter: _CallCounter | None = None
        self.warnings: list[str] = []

    def start(self, total_calls: int) -> None:
        stats, denoiser = self.stats, self.denoiser
        stats.method = self.plan.label
        if self.plan.method == "deepcache":
            self._active = DeepCache(denoiser, int(self.plan.threshold))
            deep = denoiser.mid_block if denoiser.mid_block is not None else denoiser.up_blocks[0]
        else:
            key = (total_calls, *self.schedule_key)
            ratios = _MAG_RATIOS.get(denoiser, {}).get(key) if self.plan.method == "magcache" else None
            self._active = TransformerCache(denoiser, self.plan, total_calls, ratios)
            if self.plan.method == "magcache" and ratios is None:
                self.warnings.append(
                    "magcache: this pass measured the model's magnitude ratios (no step was "
                    "skipped); later passes with the same schedule reuse them"
                )
            deep = _block_stack(denoiser)[-1]
        self._counter = _CallCounter(stats, denoiser, deep)

    def close(self) -> None:
        if isinstance(self._active, TransformerCache):
            ratios = self._active.calibration()
            if ratios is not None:
                _MAG_RATIOS.setdefault(self.denoiser, {})[(len(ratios), *self.schedule_key)] = ratios
        for item in (self._counter, self._active):
            if item is not None:
                item.remove()
        self._active = self._counter = None


@contextmanager
def step_cache(plan: CachePlan | None, model: Any, schedule_key: tuple, stats: StepCacheStats):
    """``with step_cache(...) as cache:`` pass ``cache`` to the loop (None when off); the
    hooks are removed on the way out, whatever happened inside."""
    if plan is None:
        yield None
        return
    cache = StepCache(plan, model, schedule_key, stats)
    try:
        yield cache
    finally:
        cache.close()


@dataclass
class CacheReport:
    """What a job's cache did, over every pass (the result's ``parameters["cache"]``)."""

    plan: CachePlan
    stats: StepCacheStats = field(default_factory=StepCacheStats)
