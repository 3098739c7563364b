"""FP8 linear layers for the denoiser: a lossy opt-in (``EASEL_FP8=1``) for Ada/Hopper GPUs.

Each large ``nn.Linear`` of the denoiser (attention projections, feed-forwards: both
dimensions multiples of 16, as FP8 matrix multiplies need) keeps its weight in
``float8_e4m3fn`` with one scale per output row; its input is quantised per row on the fly
(scales computed on the device: no host sync) and the product runs in ``torch._scaled_mm``,
which uses the FP8 tensor cores on compute capability 8.9+ (H100: twice the bf16 FLOP rate)
and has a reference implementation on the CPU, where the tests check the numerics.

Lossy on purpose: e4m3 keeps 3 mantissa bits. ``tests/test_fp8.py`` states the tolerance
(relative error of the denoiser's output vs bf16/fp32). It halves the denoiser's weight
memory too. LoRA adapters cannot wrap these layers (the LoRA extension refuses with that
reason), and other layers (convolutions, norms, embeddings) stay as they are.
"""

from __future__ import annotations

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)  # 448
MIN_FEATURES = 64  # smaller layers gain nothing and lose precision
MIN_CAPABILITY = (8, 9)  # Ada (sm_89) and Hopper (sm_90) have FP8 tensor cores


def fp8_support(device: torch.device) -> str | None:
    """None when FP8 matmuls run on ``device``; else why not."""
    if not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no _scaled_mm"
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        if capability < MIN_CAPABILITY:
            return f"needs compute capability 8.9+ (Ada/Hopper), this GPU has {capability[0]}.{capability[1]}"
        return None
    if device.type == "cpu":
        return None  # the reference kernels: slow, but the same numerics
    return f"no FP8 matmul on {device.type}"


class Fp8Linear(torch.nn.Module):
    """``nn.Linear`` with an FP8 weight (per-row scales) and per-row dynamic input scales."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / FP8_MAX  # (out, 1)
        self.register_buffer("weight_fp8", (weight / scale).to(FP8))
        self.register_buffer("weight_scale", scale.t().contiguous())  # (1, out) for scale_b
        self.bias = None if linear.bias is None else torch.nn.Parameter(linear.bias.detach(), requires_grad=False)
        self.compute_dtype = linear.weight.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features)
        scale = rows.abs().amax(dim=1, keepdim=True).float().clamp(min=1e-12) / FP8_MAX  # (M, 1)
        quantised = (rows.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8)
        out = torch._scaled_mm(
            quantised,
            self.weight_fp8.t(),  # column-major, as the FP8 GEMM wants its second operand
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=None if self.bias is None else self.bias.to(x.dtype),
            out_dtype=x.dtype,
        )
        return out.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8=e4m3fn"


def convert_to_fp8(denoiser: torch.nn.Module) -> int:
    """Replace the denoiser's eligible Linear layers in place; returns how many."""
    count = 0
    for parent in list(denoiser.modules()):
        for name, child in list(parent.named_children()):
            if (
                type(child) is torch.nn.Linear
                and min(child.in_features, child.out_features) >= MIN_FEATURES
                and child.in_features % 16 == 0
                and child.out_features % 16 == 0
            ):
                setattr(parent, name, Fp8Linear(child))
                count += 1
    return count
