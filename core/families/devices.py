"""Where a component computes, for code that makes its input tensors.

A module's weights normally sit on the device it computes on. Under the offload memory
modes (``core.models.offload``) an offloaded component's weights are placeholders on the
``meta`` device between uses, and the placement marks each module with the device the
weights are streamed to. Code that creates inputs for a component asks ``execution_device``
instead of ``module.device``.
"""

from __future__ import annotations

import torch

EXECUTION_DEVICE_ATTR = "_easel_execution_device"


def execution_device(module: torch.nn.Module) -> torch.device:
    device = getattr(module, EXECUTION_DEVICE_ATTR, None)
    if device is not None:
        return device
    first = next(module.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
