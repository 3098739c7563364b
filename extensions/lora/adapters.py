"""Hot-swapping LoRA adapters on a loaded model through diffusers/PEFT.

Each LoRA is converted once (diffusers' ``lora_state_dict`` understands kohya/A1111,
diffusers/PEFT and ComfyUI key layouts), checked against the model's modules, and
injected UNFUSED under its own adapter name into the denoiser and text encoder(s). A
request then only switches which adapters are active and at what weight
(``set_weights_and_activate_adapters``); a request without LoRA disables every adapter
layer, so each wrapped layer runs exactly its base layer again (bit-identical output).
At most ``capacity`` adapters stay per model (least recently used ones are deleted).

A denoiser that ``torch.compile`` compiled is the exception: its LoRAs are kept as
tensors and written into one fixed adapter slot per request (``compiled.CompiledSlot``), so
that switching LoRAs never recompiles it. Text encoders are not compiled and keep the
adapters above.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import torch

from extensions.lora.compiled import CompiledSlot, LayerDelta, SlotError, layer_deltas
from extensions.lora.library import LoraFileError, LoraInfo
from extensions.lora.syntax import LoraUse

log = logging.getLogger("easel.lora")

DEFAULT_CAPACITY = 8
SHOWN_UNMATCHED_KEYS = 5


class LoraApplyError(Exception):
    """A LoRA that cannot go onto this model; the message names the file and why."""


@dataclass(frozen=True)
class FamilyLayout:
    """Where a family's LoRA keys go: the diffusers loader mixin that converts the file,
    the denoiser component and its key prefix, and (component, prefix) per text encoder."""

    mixin: str
    denoiser: str
    denoiser_prefix: str
    text_encoders: tuple[tuple[str, str], ...]


LAYOUTS: dict[str, FamilyLayout] = {
    "sd15": FamilyLayout(
        "StableDiffusionLoraLoaderMixin", "unet", "unet", (("text_encoder", "text_encoder"),)
    ),
    "sdxl": FamilyLayout(
        "StableDiffusionXLLoraLoaderMixin",
        "unet",
        "unet",
        (("text_encoder", "text_encoder"), ("text_encoder_2", "text_encoder_2")),
    ),
    "zimage": FamilyLayout("ZImageLoraLoaderMixin", "transformer", "transformer", ()),
    # kohya (lora_unet_double_blocks_*), ai-toolkit/diffusers (transformer.*), ComfyUI
    # (diffusion_model.*) and BFL (lora_A/lora_B on double_blocks.*): diffusers converts each
    "flux": FamilyLayout(
        "FluxLoraLoaderMixin", "transformer", "transformer", (("text_encoder", "text_encoder"),)
    ),
    # Chroma's blocks carry FLUX.1's names (without the modulation layers): the same conversion
    "chroma": FamilyLayout("FluxLoraLoaderMixin", "transformer", "transformer", ()),
    # diffusers/ai-toolkit (transformer.transformer_blocks.N...lora_A), ComfyUI
    # (diffusion_model.* lora_down/lora_up/alpha) and kohya/musubi (lora_unet_transformer_blocks_N_*)
    "qwen_image": FamilyLayout("QwenImageLoraLoaderMixin", "transformer", "transformer", ()),
    # FLUX.2 Klein: ai-toolkit/ComfyUI (diffusion_model.double_blocks.*), diffusers
    # (transformer.*) and kohya layouts, converted by diffusers' FLUX.2 mixin
    "flux2": FamilyLayout("Flux2LoraLoaderMixin", "transformer", "transformer", ()),
}


@dataclass
class LoadedAdapter:
    adapter_name: str  # the PEFT adapter name inside the modules
    info: LoraInfo
    components: list[str]  # component names that hold this adapter
    # compiled denoiser: the LoRA's layers as tensors, for the slot (None otherwise)
    denoiser_deltas: dict[str, LayerDelta] | None = None


def _mixin(layout: FamilyLayout) -> Any:
    import diffusers.loaders.lora_pipeline as pipelines

    return getattr(pipelines, layout.mixin)


def _module_name(peft_key: str) -> str | None:
    if ".lora_" not in peft_key:
        return None
    return peft_key.rsplit(".lora_", 1)[0]


def _check_keys(module: torch.nn.Module, peft_state: dict[str, torch.Tensor], prefix: str) -> list[str]:
    """Keys (``prefix.``-qualified) that name no Linear/Conv module of ``module`` or whose
    shape does not fit it."""
    modules = dict(module.named_modules())
    bad = []
    for key, tensor in peft_state.items():
        name = _module_name(key)
        target = modules.get(name) if name is not None else None
        # a layer that already holds adapters is a PEFT wrapper around the original one
        target = getattr(target, "base_layer", target)
        if isinstance(target, torch.nn.Linear):
            fan_in, fan_out = target.in_features, target.out_features
        elif isinstance(target, torch.nn.Conv2d):
            fan_in, fan_out = target.in_channels, target.out_channels
        else:
            bad.append(f"{prefix}.{key}")
            continue
        if ".lora_A." in key and tensor.ndim >= 2 and tensor.shape[1] != fan_in:
            bad.append(f"{prefix}.{key} (shape {list(tensor.shape)}, layer takes {fan_in})")
        elif ".lora_B." in key and tensor.ndim >= 2 and tensor.shape[0] != fan_out:
            bad.append(f"{prefix}.{key} (shape {list(tensor.shape)}, layer gives {fan_out})")
    return bad


def peft_part(
    state: dict[str, torch.Tensor], prefix: str, module: torch.nn.Module, is_denoiser: bool
) -> dict[str, torch.Tensor]:
    """The keys of ``state`` under ``prefix``, without it, in PEFT's layout for ``module``
    (``<layer>.lora_A.weight``...); empty when the LoRA has none for it."""
    from diffusers.utils.state_dict_utils import (
        convert_state_dict_to_diffusers,
        convert_state_dict_to_peft,
        convert_unet_state_dict_to_peft,
    )

    part = {k.removeprefix(f"{prefix}."): v for k, v in state.items() if k.startswith(f"{prefix}.")}
    if not part:
        return part
    if is_denoiser:
        return part if "lora_A" in next(iter(part)) else convert_unet_state_dict_to_peft(part)
    part = convert_state_dict_to_peft(convert_state_dict_to_diffusers(part))
    if not hasattr(module, "text_model"):
        part = {k.removeprefix("text_model."): v for k, v in part.items()}
    return part


def split_for_model(
    layout: FamilyLayout, components: dict[str, Any], tensors: dict[str, torch.Tensor], path: Any
) -> tuple[dict[str, torch.Tensor], Any]:
    """Convert a LoRA file's tensors to diffusers keys and check every key against the
    model. Raises ``LoraApplyError`` naming the file and unmatched keys."""
    kwargs: dict[str, Any] = {}
    if layout.mixin == "StableDiffusionXLLoraLoaderMixin":
        kwargs["unet_config"] = components[layout.denoiser].config
    try:
        converted = _mixin(layout).lora_state_dict(dict(tensors), **kwargs)
    except Exception as exc:  # a layout diffusers cannot convert
        raise LoraApplyError(
            f"{path}: not a LoRA this model family understands ({type(exc).__name__}: {exc})"
        ) from exc
    state, alphas = converted if isinstance(converted, tuple) else (converted, None)
    if not state:
        raise LoraApplyError(f"{path}: holds no LoRA weights")

    prefixes = [(layout.denoiser, layout.denoiser_prefix), *layout.text_encoders]
    unmatched = [k for k in state if not any(k.startswith(f"{p}.") for _, p in prefixes)]
    for component, prefix in prefixes:
        module = components.get(component)
        if module is None:
            unmatched += [k for k in state if k.startswith(f"{prefix}.")]
            continue
        part = peft_part(state, prefix, module, is_denoiser=component == layout.denoiser)
        unmatched += _check_keys(module, part, prefix)
    if unmatched:
        shown = ", ".join(unmatched[:SHOWN_UNMATCHED_KEYS])
        more = (
            f" and {len(unmatched) - SHOWN_UNMATCHED_KEYS} more"
            if len(unmatched) > SHOWN_UNMATCHED_KEYS
            else ""
        )
        raise LoraApplyError(
            f"{path}: {len(unmatched)} of {len(state)} LoRA keys match nothing in this model "
            f"(a LoRA for another model family?): {shown}{more}"
        )
    return state, alphas


@dataclass
class AdapterPool:
    """The adapters injected into one loaded model, least recently used first."""

    layout: FamilyLayout
    model_ref: Any  # weakref.ref to the loaded model: the pool must not keep it alive
    capacity: int = DEFAULT_CAPACITY
    adapters: OrderedDict[tuple[str, float, int], LoadedAdapter] = field(default_factory=OrderedDict)
    _names: Any = field(default_factory=lambda: itertools.count())
    slot: CompiledSlot | None = None  # set when the denoiser is compiled

    @property
    def compiled(self) -> bool:
        model = self.model_ref()
        return any(step.startswith("compile:") for step in getattr(model, "acceleration", []) or [])

    @property
    def components(self) -> dict[str, Any]:
        model = self.model_ref()
        if model is None:
            raise LoraApplyError("the model was unloaded")
        return model.components

    @staticmethod
    def key(info: LoraInfo) -> tuple[str, float, int]:
        return (str(info.path), info.mtime, info.size)

    def _modules(self) -> list[tuple[str, str]]:
        return [(self.layout.denoiser, self.layout.denoiser_prefix), *self.layout.text_encoders]

    def ensure(self, info: LoraInfo, read: Any, keep: set[tuple[str, float, int]]) -> LoadedAdapter:
        """The adapter for ``info``, injected now if it is not in the pool yet
        (``read(info)`` gives the file's tensors). Evicts least recently used adapters
        not in ``keep`` beyond the capacity."""
        key = self.key(info)
        if key in self.adapters:
            self.adapters.move_to_end(key)
            return self.adapters[key]
        try:
            tensors = read(info)
        except LoraFileError as exc:
            raise LoraApplyError(str(exc)) from exc
        state, alphas = split_for_model(self.layout, self.components, tensors, info.path)
        adapter = LoadedAdapter(f"easel_lora_{next(self._names)}", info, [])
        mixin = _mixin(self.layout)
        try:
            # the engine runs hooks under torch.inference_mode, as it loaded the base
            # weights: the adapter weights are made the same way
            with torch.no_grad():
                for component, prefix in self._modules():
                    if not any(k.startswith(f"{prefix}.") for k in state):
                        continue
                    module = self.components[component]
                    if component == self.layout.denoiser and self.compiled:
                        adapter.denoiser_deltas = self._deltas_for_slot(module, state, alphas, prefix)
                    elif component == self.layout.denoiser:
                        module.load_lora_adapter(
                            state, prefix=prefix, network_alphas=alphas, adapter_name=adapter.adapter_name
                        )
                    else:
                        mixin.load_lora_into_text_encoder(
                            state, alphas, module, prefix=prefix, adapter_name=adapter.adapter_name
                        )
                    adapter.components.append(component)
        except Exception as exc:
            self._delete(adapter)  # leave no half-injected adapter behind
            raise LoraApplyError(f"{info.path}: cannot load: {type(exc).__name__}: {exc}") from exc
        self.adapters[key] = adapter
        self._evict(keep | {key})
        self.deactivate()  # loading may leave the new adapter active
        return adapter

    @staticmethod
    def _deltas_for_slot(
        denoiser: torch.nn.Module, state: dict[str, torch.Tensor], alphas: Any, prefix: str
    ) -> dict[str, LayerDelta]:
        part = peft_part(state, prefix, denoiser, is_denoiser=True)
        first = next(denoiser.parameters())
        try:
            deltas = layer_deltas(part, alphas, prefix)
        except SlotError as exc:
            raise LoraApplyError(f"cannot go onto the compiled denoiser: {exc}") from exc
        return {
            name: LayerDelta(
                d.down.to(first.device, first.dtype), d.up.to(first.device, first.dtype), d.scale
            )
            for name, d in deltas.items()
        }

    def _write_slot(self, chosen: list[tuple[LoadedAdapter, LoraUse]]) -> None:
        denoiser = self.components[self.layout.denoiser]
        if self.slot is None or self.slot.denoiser is not denoiser:
            self.slot = CompiledSlot(denoiser)
        try:
            self.slot.write([(a.denoiser_deltas, u.unet) for a, u in chosen if a.denoiser_deltas])
        except SlotError as exc:
            self.slot.write([])
            raise LoraApplyError(f"cannot go onto the compiled denoiser: {exc}") from exc

    def _delete(self, adapter: LoadedAdapter) -> None:
        from diffusers.utils.peft_utils import delete_adapter_layers

        for component, _ in self._modules():
            module = self.components.get(component)
            if module is None or not hasattr(module, "peft_config"):
                continue
            try:
                if adapter.adapter_name not in getattr(module, "peft_config", {}):
                    continue
                if component == self.layout.denoiser:
                    module.delete_adapters(adapter.adapter_name)
                else:
                    delete_adapter_layers(module, adapter.adapter_name)
            except Exception:  # never let cleanup hide the first error
                log.exception("removing LoRA adapter %s from %s failed", adapter.adapter_name, component)

    def _evict(self, keep: set[tuple[str, float, int]]) -> None:
        for key in list(self.adapters):
            if len(self.adapters) <= self.capacity:
                break
            if key in keep:
                continue
            adapter = self.adapters.pop(key)
            log.info("LoRA %s left the warm pool", adapter.info.name)
            self._delete(adapter)

    def activate(self, chosen: list[tuple[LoadedAdapter, LoraUse]]) -> None:
        """Make exactly these adapters active, at these weights, on every component."""
        from diffusers.utils.peft_utils import set_adapter_layers, set_weights_and_activate_adapters

        for component, _ in self._modules():
            module = self.components.get(component)
            if module is None:
                continue
            if component == self.layout.denoiser and self.compiled:
                self._write_slot(chosen)
                continue
            here = [(a, u) for a, u in chosen if component in a.components]
            if not here:
                set_adapter_layers(module, enabled=False)
                continue
            is_denoiser = component == self.layout.denoiser
            names = [a.adapter_name for a, _ in here]
            weights = [u.unet if is_denoiser else u.te for _, u in here]
            set_adapter_layers(module, enabled=True)
            set_weights_and_activate_adapters(module, names, weights)

    def deactivate(self) -> None:
        """Every adapter layer off: each wrapped layer runs only its base layer."""
        from diffusers.utils.peft_utils import set_adapter_layers

        for component, _ in self._modules():
            module = self.components.get(component)
            if module is None:
                continue
            if component == self.layout.denoiser and self.compiled:
                if self.slot is not None:
                    self.slot.write([])  # zeros: the base model exactly, same graphs
                continue
            set_adapter_layers(module, enabled=False)


class PoolRegistry:
    """One ``AdapterPool`` per loaded model, keyed by the denoiser module's identity (a
    reloaded model is a new object and starts with an empty pool)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._pools: weakref.WeakKeyDictionary[Any, AdapterPool] = weakref.WeakKeyDictionary()
        self.lock = threading.RLock()

    def existing(self, model: Any) -> AdapterPool | None:
        layout = LAYOUTS.get(getattr(model, "family", ""))
        denoiser = model.components.get(layout.denoiser) if layout else None
        return self._pools.get(denoiser) if denoiser is not None else None

    def for_model(self, model: Any) -> AdapterPool:
        family = getattr(model, "family", "")
        layout = LAYOUTS.get(family)
        if layout is None:
            raise LoraApplyError(f"LoRA is not supported for the {family!r} model family")
        if any(step.startswith("fp8(") for step in getattr(model, "acceleration", []) or []):
            raise LoraApplyError(
                "the model's denoiser runs FP8 linear layers (EASEL_FP8=1), which LoRA layers cannot wrap"
            )
        denoiser = model.components.get(layout.denoiser)
        if denoiser is None:
            raise LoraApplyError(f"model {getattr(model, 'name', '?')!r} has no {layout.denoiser}")
        pool = self._pools.get(denoiser)
        if pool is None:
            pool = AdapterPool(layout, weakref.ref(model), self.capacity)
            self._pools[denoiser] = pool
        return pool
