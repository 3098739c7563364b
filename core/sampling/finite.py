"""The NaN guard: latents after sampling and images after decoding must be finite.

A NaN or inf anywhere in the latents becomes a black (or partly black) image after the
VAE, which used to be saved and reported "done". The usual causes are weights that an
extension added (a LoRA file with NaN/inf tensors), a model file with such weights, or a
float16 VAE overflowing (``vae_precision`` retries that in float32 first; only a result
still non-finite after the retry reaches here). The job fails with a message naming what
this job changed, so the user can tell which file to blame.
"""

from __future__ import annotations

from typing import Any

import torch

from core.errors import EaselError

# Infotext keys extensions write when they change the model's weights for a job: their
# values name the files (A1111's "Lora hashes: name: hash"). Any other extra parameter is
# listed too, as a less likely cause.
WEIGHT_KEYS = ("Lora hashes", "Lyco hashes", "TI hashes", "ControlNet")


class NonFiniteResult(EaselError):
    """Sampling or decoding produced NaN/inf: the image would be black."""


def is_finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor).all())  # one host sync per batch


def likely_causes(ctx: Any, model_name: str | None) -> str:
    """What this job changed that could put NaN/inf in the numbers, most likely first."""
    extra = dict(getattr(ctx, "extra_params", {}) or {})
    causes = []
    for key in WEIGHT_KEYS:
        for found in [k for k in extra if k == key or k.startswith(f"{key} ")]:
            causes.append(
                f"{found}: {extra.pop(found)} (weights added for this job: check these files for NaN/inf)"
            )
    if model_name:
        causes.append(f"the model {model_name!r} (a checkpoint with NaN/inf weights)")
    causes.append("a float16 VAE or too high a CFG scale")
    return "; ".join(causes)


def check_latents(latents: torch.Tensor, ctx: Any, model_name: str | None) -> None:
    """Raise NonFiniteResult when the sampled latents hold NaN/inf."""
    if is_finite(latents):
        return
    raise NonFiniteResult(
        "the sampled latents contain NaN/inf, so the image would be black; the job failed "
        f"instead. Likely causes: {likely_causes(ctx, model_name)}"
    )


def check_decoded(images: torch.Tensor, ctx: Any, model_name: str | None) -> None:
    """Raise NonFiniteResult when the decoded image (after the float32 retry) holds NaN/inf."""
    if is_finite(images):
        return
    raise NonFiniteResult(
        "the VAE produced NaN/inf even in float32, so the image would be black; the job failed "
        f"instead. Likely causes: a broken VAE file; {likely_causes(ctx, model_name)}"
    )
