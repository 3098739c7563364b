"""LoRA on a compiled denoiser without recompiling: one fixed adapter slot per model.

``torch.compile`` guards on what the PEFT layers look like: which adapters exist, which
are active, their scalings (Python floats) and their shapes. Injecting or switching
adapters the usual way (``adapters.AdapterPool``) changes those, so every new LoRA or
combination recompiles the blocks (and past ``cache_size_limit`` they fall back to eager).

Instead, a compiled denoiser gets ONE adapter, ``easel_compiled``, with a fixed rank and
scaling 1.0 on a fixed set of layers; a request only rewrites its weights in place:

    slot.A[offset:offset + r_i] = A_i
    slot.B[:, offset:offset + r_i] = B_i * scale_i * weight_i

for each chosen LoRA ``i`` (their ranks side by side, so the sum of their deltas is exact),
zeros everywhere else, and all zeros for a request without LoRA (adding zero changes no
bit). The compiled graphs read the same tensors every time and never see a change. Only a
LoRA that touches a layer outside the slot, or needs more rank than it has, rebuilds the
slot (one recompilation, logged); the slot then keeps the larger size.

Each LoRA file's per-layer (A, B, scale) comes from the same conversion diffusers uses
(``split_for_model``, then diffusers' own LoRA config for ranks and network alphas).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

log = logging.getLogger("easel.lora")

SLOT = "easel_compiled"
MIN_RANK = 16  # rounded up to powers of two from here: few rebuilds


class SlotError(Exception):
    """A LoRA whose layers the slot cannot hold (the message says which and why)."""


@dataclass(frozen=True)
class LayerDelta:
    down: torch.Tensor  # A: (r, in) or (r, in, kh, kw)
    up: torch.Tensor  # B: (out, r) or (out, r, 1, 1)
    scale: float  # alpha / r, as PEFT would apply it


def layer_deltas(
    part: dict[str, torch.Tensor], alphas: dict[str, float] | None, prefix: str
) -> dict[str, LayerDelta]:
    """A denoiser's PEFT-format LoRA tensors (keys ``<layer>.lora_A.weight``...) -> one
    ``LayerDelta`` per layer, with the scale diffusers' ``load_lora_adapter`` gives it."""
    from diffusers.utils.peft_utils import _create_lora_config
    from peft.utils.other import get_pattern_key

    unsupported = [k for k in part if (".lora_A." not in k and ".lora_B." not in k) or k.endswith(".bias")]
    if unsupported:
        raise SlotError(f"layers other than plain LoRA A/B weights ({unsupported[0]}, ...)")
    rank = {f"^{k}": v.shape[1] for k, v in part.items() if ".lora_B." in k and v.ndim > 1}
    network_alphas = {
        k.removeprefix(f"{prefix}."): v for k, v in (alphas or {}).items() if k.startswith(f"{prefix}.")
    }
    config = _create_lora_config(part, network_alphas or None, None, rank)
    deltas = {}
    for key, down in part.items():
        if ".lora_A." not in key:
            continue
        layer = key.split(".lora_A.")[0]
        up = part[key.replace(".lora_A.", ".lora_B.")]
        r_key = get_pattern_key(config.rank_pattern.keys(), layer)
        a_key = get_pattern_key(config.alpha_pattern.keys(), layer)
        r = config.rank_pattern.get(r_key, config.r)
        alpha = config.alpha_pattern.get(a_key, config.lora_alpha)
        scale = alpha / math.sqrt(r) if config.use_rslora else alpha / r
        deltas[layer] = LayerDelta(down, up, float(scale))
    return deltas


class CompiledSlot:
    """The one adapter of a compiled denoiser (see the module docstring)."""

    def __init__(self, denoiser: torch.nn.Module) -> None:
        self.denoiser = denoiser
        self.targets: frozenset[str] = frozenset()
        self.layers: dict[str, torch.nn.Module] = {}  # the targets' PEFT layers, found once per build
        self.rank = 0
        self.rebuilds = 0

    def write(self, chosen: list[tuple[dict[str, LayerDelta], float]]) -> None:
        """Hold exactly the sum of these LoRAs (deltas, user weight); none: all zeros."""
        wanted = frozenset().union(*(deltas.keys() for deltas, _ in chosen))
        need = max((sum(d[name].down.shape[0] for d, _ in chosen if name in d) for name in wanted), default=0)
        if not wanted <= self.targets or need > self.rank:
            self._rebuild(self.targets | wanted, need)
        if not self.targets:
            return
        layers = self.layers
        with torch.no_grad():
            for name in self.targets:
                layers[name].lora_A[SLOT].weight.zero_()
                layers[name].lora_B[SLOT].weight.zero_()
            for name in wanted:
                down_slot = layers[name].lora_A[SLOT].weight
                up_slot = layers[name].lora_B[SLOT].weight
                offset = 0
                for deltas, weight in chosen:
                    delta = deltas.get(name)
                    if delta is None:
                        continue
                    r = delta.down.shape[0]
                    if delta.down.shape[1:] != down_slot.shape[1:] or delta.up.shape[0] != up_slot.shape[0]:
                        raise SlotError(
                            f"{name}: LoRA shapes {list(delta.down.shape)}/{list(delta.up.shape)} do not fit "
                            f"the layer ({list(down_slot.shape[1:])} in, {up_slot.shape[0]} out)"
                        )
                    down_slot[offset : offset + r].copy_(delta.down)
                    up = delta.up.to(torch.float32) * (delta.scale * weight)
                    up_slot[:, offset : offset + r].copy_(up.reshape(up_slot[:, offset : offset + r].shape))
                    offset += r

    def _rebuild(self, targets: frozenset[str], need: int) -> None:
        from peft import LoraConfig

        rank = max(MIN_RANK, self.rank, 2 ** math.ceil(math.log2(max(need, 1))))
        if self.targets:
            self.denoiser.delete_adapters(SLOT)
        first = next(self.denoiser.parameters())
        config = LoraConfig(r=rank, lora_alpha=rank, target_modules=sorted(targets), init_lora_weights=False)
        self.denoiser.add_adapter(config, adapter_name=SLOT)
        self.denoiser.to(first.device)
        for module in self.denoiser.modules():  # the new layers in the denoiser's dtype
            for attr in ("lora_A", "lora_B"):
                holder = getattr(module, attr, None)
                if isinstance(holder, torch.nn.ModuleDict) and SLOT in holder:
                    holder[SLOT].to(first.dtype)
        self.targets, self.rank = targets, rank
        self.layers = {name: m for name, m in self.denoiser.named_modules() if name in targets}
        self.rebuilds += 1
        if self.rebuilds > 1:
            log.warning(
                "LoRA slot of the compiled denoiser rebuilt (%d layers, rank %d): one recompilation",
                len(targets),
                rank,
            )
