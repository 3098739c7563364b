"""Placement: put a loaded model's weights where its memory mode says, for one generation.

    with Placement(model, "model-offload", device) as placement:
        cond = placement.run("text", lambda: encode(...), warnings)
        latents = placement.run("denoiser", sample, warnings)
        images = placement.run("vae", decode, warnings)

``run`` makes the phase's weights present on the device (in the offload modes), calls the
function and, when it runs out of device memory, steps down to the next memory mode
(``memory_modes.next_mode``), reports that in ``warnings`` and calls it again.

How the offload modes keep weights: each parameter and buffer keeps one home copy in CPU
memory. "Present" swaps a device copy in; "away" swaps in an empty tensor on the ``meta``
device, so a stray use of an offloaded weight fails loudly instead of silently computing
on the CPU. Inference never writes weights, so nothing is copied back, and the original
Parameter objects (in CPU memory) are put back when the placement ends.
``model-offload`` swaps whole components per phase; ``sequential-offload`` swaps each
layer in a forward pre-hook and out in a forward hook. Code that makes a component's
inputs asks ``core.families.devices.execution_device`` where it computes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

from core.errors import OutOfMemory
from core.families.devices import EXECUTION_DEVICE_ATTR
from core.models.memory_modes import MODES, next_mode

log = logging.getLogger("easel.memory")

T = TypeVar("T")
PHASES = ("text", "denoiser", "vae")


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Weights:
    """The parameters and buffers a module owns directly, swappable between a device copy
    and a meta placeholder, with the home copy in CPU memory (the original Parameter
    objects, put back when the placement ends)."""

    def __init__(self, module: torch.nn.Module, storage: torch.device) -> None:
        self.module = module
        self.params: dict[str, torch.nn.Parameter] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        for name, param in module.named_parameters(recurse=False):
            param.data = param.data.to(storage)
            self.params[name] = param
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None:
                self.buffers[name] = buffer.to(storage)

    def _swap(self, make: Callable[[torch.Tensor], torch.Tensor]) -> None:
        # new Parameter objects: a Parameter's data cannot change to a meta tensor in place
        for name, param in self.params.items():
            self.module._parameters[name] = torch.nn.Parameter(make(param.data), requires_grad=False)
        for name, buffer in self.buffers.items():
            self.module._buffers[name] = make(buffer)

    def present(self, device: torch.device) -> None:
        self._swap(lambda home: home.to(device, non_blocking=True))

    def away(self) -> None:
        self._swap(lambda home: torch.empty_like(home, device="meta"))

    def restore(self) -> None:
        self.module._parameters.update(self.params)
        self.module._buffers.update(self.buffers)


class Placement:
    """One generation's arrangement of ``model``'s weights; see the module docstring."""

    def __init__(
        self, model: Any, mode: str, device: torch.device, storage: torch.device = torch.device("cpu")
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown memory mode {mode!r}")
        self.model = model
        self.mode = mode
        self.device = torch.device(device)
        self.storage = storage
        self._weights: dict[str, list[_Weights]] = {}  # component -> its modules' weights
        self._hooks: list[Any] = []
        self._present: set[str] = set()

    # --- entering and leaving ------------------------------------------------------------

    def __enter__(self) -> Placement:
        self._arrange()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()

    def _arrange(self) -> None:
        self._set_vae_tiling(self.mode != "full")
        if self.mode in ("full", "tiled-vae"):
            self.model.to(self.device)
            return
        for name, module in self.model.modules().items():
            # every layer's weights go home to CPU memory and wait as meta placeholders
            self._weights[name] = [
                _Weights(m, self.storage)
                for m in module.modules()
                if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))
            ]
            for weights in self._weights[name]:
                weights.away()
            for m in module.modules():
                setattr(m, EXECUTION_DEVICE_ATTR, self.device)
        if self.mode == "sequential-offload":
            for group in self._weights.values():
                for weights in group:
                    self._hooks.append(weights.module.register_forward_pre_hook(self._pre_hook(weights)))
                    self._hooks.append(weights.module.register_forward_hook(self._post_hook(weights)))
        empty_cache()

    def _release(self) -> None:
        """Leave the weights in CPU memory (offload modes) with no hooks; the next
        generation's placement starts from there."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        for name, group in self._weights.items():
            for weights in group:
                weights.restore()
            for m in self.model.modules()[name].modules():
                if hasattr(m, EXECUTION_DEVICE_ATTR):
                    delattr(m, EXECUTION_DEVICE_ATTR)
        self._weights.clear()
        self._present.clear()
        empty_cache()

    def _set_vae_tiling(self, tiled: bool) -> None:
        vae = self.model.components.get("vae")
        method = "enable_tiling" if tiled else "disable_tiling"
        if vae is not None and hasattr(vae, method):
            getattr(vae, method)()

    # --- sequential offload hooks ------------------------------------------------------

    def _pre_hook(self, weights: _Weights) -> Callable[..., Any]:
        device = self.device

        def pre(module: torch.nn.Module, args: tuple) -> None:
            weights.present(device)

        return pre

    @staticmethod
    def _post_hook(weights: _Weights) -> Callable[..., None]:
        def post(module: torch.nn.Module, args: tuple, output: Any) -> None:
            weights.away()

        return post

    # --- phases -----------------------------------------------------------------------

    def _phase_components(self, phase: str) -> set[str]:
        denoiser = self.model.adapter.denoiser_name
        names = set(self.model.modules())
        if phase == "denoiser":
            return {denoiser}
        if phase == "vae":
            return {"vae"} & names
        return names - {denoiser, "vae"}

    @contextmanager
    def phase(self, phase: str) -> Iterator[None]:
        """In ``model-offload``: the phase's components on the device, the rest away."""
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}")
        if self.mode == "model-offload":
            wanted = self._phase_components(phase)
            leaving = sorted(self._present - wanted)
            for name in leaving:
                for weights in self._weights[name]:
                    weights.away()
                self._present.discard(name)
            if leaving:
                empty_cache()
            for name in sorted(wanted - self._present):
                for weights in self._weights[name]:
                    weights.present(self.device)
                self._present.add(name)
        yield

    def run(self, phase: str, work: Callable[[], T], warnings: list[str]) -> T:
        """``work()`` in ``phase``; on out-of-memory, again in the next mode until none is left."""
        while True:
            try:
                with self.phase(phase):
                    return work()
            except Exception as exc:
                if not is_oom(exc):
                    raise
                lower = next_mode(self.mode)
                if lower == "tiled-vae" and phase != "vae":
                    lower = next_mode(lower)  # tiling only makes the VAE smaller
                if lower is None:
                    raise OutOfMemory(f"out of memory in the {phase} phase even in {self.mode} mode") from exc
            # outside the except block: the failed attempt's tensors are free to go now
            message = f"out of memory in the {phase} phase in {self.mode} mode: retried in {lower} mode"
            warnings.append(message)
            log.warning(message)
            self.switch(lower)

    def switch(self, mode: str) -> None:
        """Re-arrange in another mode (after an out-of-memory error)."""
        self._release()
        self.mode = mode
        self._arrange()
