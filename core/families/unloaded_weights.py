"""The check every single-file and split-file loader ends with: a weight the file did not
provide is still a placeholder on torch's "meta" device, and using it would fail far from
the cause (or, with some loaders, silently compute with garbage). Its own module because
the Z-Image, FLUX.1 and Qwen-Image loaders all use it and import one another's readers."""

from __future__ import annotations

from typing import Any

import torch

from core.errors import ModelError


def refuse_meta(module: Any, where: str) -> None:
    """ModelError naming ``where`` when a weight was never loaded (left on the meta device)."""
    if not isinstance(module, torch.nn.Module):
        return
    empty = [name for name, tensor in [*module.named_parameters(), *module.named_buffers()] if tensor.is_meta]
    if empty:
        more = f" and {len(empty) - 1} more" if len(empty) > 1 else ""
        raise ModelError(
            f"{where}: weights missing ({empty[0]}{more} left unloaded): the weight file does not "
            "match the layout it was loaded as (e.g. a ComfyUI text encoder or ae.safetensors inside "
            "a diffusers folder: put them in text_encoders/ and vae/, or name them in a "
            "<model>.easel.json sidecar)"
        )
