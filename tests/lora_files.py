"""Real LoRA files for the tiny SD1.5 model, written the way trainers write them.

``make_peft_lora`` builds adapters with peft's ``LoraConfig`` on the tiny UNet and text
encoder, fills them with seeded random weights (a fresh LoRA's B matrices are zero, so it
would change nothing) and saves the diffusers/PEFT layout (``unet.<module>.lora_A.weight``,
``text_encoder.<module>.lora_B.weight``). ``to_kohya`` converts that to the kohya/A1111
layout (``lora_unet_<module_with_underscores>.lora_down.weight`` + ``.alpha``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def _adapter_state(module: torch.nn.Module, targets: list[str], rank: int, seed: int, scale: float) -> dict:
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    module.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    return {k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(module).items()}


def make_peft_lora(model_dir: Path, path: Path, seed: int, rank: int = 4, scale: float = 0.5) -> Path:
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet")
    text_encoder = CLIPTextModel.from_pretrained(model_dir / "text_encoder")
    state = {f"unet.{k}": v for k, v in _adapter_state(unet, UNET_TARGETS, rank, seed, scale).items()}
    for key, value in _adapter_state(text_encoder, TEXT_TARGETS, rank, seed + 1, scale).items():
        key = key if key.startswith("text_model.") else f"text_model.{key}"  # the saved layout
        state[f"text_encoder.{key}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def to_kohya(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers/PEFT keys -> kohya keys. alpha = rank keeps the scale (alpha/rank) at 1,
    the same as the PEFT file's lora_alpha = r."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".lora_A.weight"):
            module, kohya_part = key.removesuffix(".lora_A.weight"), "lora_down"
        elif key.endswith(".lora_B.weight"):
            module, kohya_part = key.removesuffix(".lora_B.weight"), "lora_up"
        else:
            raise ValueError(f"unexpected key {key}")
        component, _, path = module.partition(".")
        prefix = {"unet": "lora_unet", "text_encoder": "lora_te"}[component]
        kohya = f"{prefix}_{path.replace('.', '_')}"
        out[f"{kohya}.{kohya_part}.weight"] = value
        if kohya_part == "lora_down":
            out[f"{kohya}.alpha"] = torch.tensor(float(value.shape[0]))
    return out


def make_component_lora(
    parts: list[tuple[torch.nn.Module, str, list[str]]],
    path: Path,
    seed: int,
    rank: int = 4,
    scale: float = 0.5,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A PEFT-layout LoRA over several components: ``(module, key prefix, targets)`` each,
    e.g. ``(transformer, "transformer", ["to_q", "to_k"])``. The modules get the adapter
    added (pass fresh copies)."""
    state = {}
    for index, (module, prefix, targets) in enumerate(parts):
        for key, value in _adapter_state(module, targets, rank, seed + index, scale).items():
            if prefix.startswith("text_encoder") and not key.startswith("text_model."):
                key = f"text_model.{key}"  # the saved layout of CLIP text encoders
            state[f"{prefix}.{key}"] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path
