"""Run a sampler's own stepping function (``SamplerSpec.sample``), k-diffusion's form:

    sample(model, x, sigmas, extra_args=None, callback=None, disable=None) -> x

The host gives it a ``model(x, sigma) -> denoised`` that does what a k-diffusion
``CFGDenoiser`` around a ``CompVisDenoiser`` does: scale the input for the noise level,
find the denoiser's timestep for ``sigma``, run the guided call (extensions' inputs, every
sampling-maths hook, CFG) and turn the prediction into the x0 estimate; and a callback
that reports each step (progress, previews, ``on_step``). Cancellation is checked before
every denoiser call.

Sigmas and timesteps come from the spec's scheduler after ``set_timesteps`` (so the
request's schedule type applies); a sigma that is not in the schedule (a second-order
sampler's midpoint) gets its timestep by log-sigma interpolation over the training
sigmas (flow models: sigma * num_train_timesteps), as k-diffusion's ``sigma_to_t``.

Inpainting without an inpainting UNet keeps the unmasked area as A1111 does for its
k-diffusion samplers: the denoised estimate is blended with the original image's latents
there, and the result once more at the end.

Reading a sigma the function passes as a device tensor is one host sync per denoiser
call (k-diffusion passes ``sigmas[i] * s_in`` on ``x``'s device); the scheduler path
has none.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from core.results import CancelToken
from core.sampling.guidance import GuidedDenoiser
from plugin_api.types import GenerationContext, StepState


class SigmaTimesteps:
    """The denoiser's timestep for a noise level."""

    def __init__(self, scheduler: Any, sigmas: list[float], timesteps: torch.Tensor, flow: bool) -> None:
        self._exact = {sigma: timesteps[i] for i, sigma in enumerate(sigmas[: len(timesteps)])}
        self._device = timesteps.device
        self._flow = flow
        self._train = int(getattr(scheduler.config, "num_train_timesteps", 1000))
        alphas = getattr(scheduler, "alphas_cumprod", None)
        self._log_sigmas = None
        if alphas is not None and not flow:
            alphas = np.asarray(alphas.detach().cpu(), dtype=np.float64)
            self._log_sigmas = np.log(((1 - alphas) / alphas) ** 0.5)

    def __call__(self, sigma: float) -> torch.Tensor:
        if sigma in self._exact:
            return self._exact[sigma]
        if self._flow or self._log_sigmas is None:
            value = sigma * self._train
        else:
            value = float(
                np.interp(math.log(max(sigma, 1e-10)), self._log_sigmas, np.arange(len(self._log_sigmas)))
            )
        return torch.tensor(value, dtype=torch.float32, device=self._device)


def _to_denoised(prediction: torch.Tensor, x: torch.Tensor, sigma: float, kind: str) -> torch.Tensor:
    """The x0 estimate from the denoiser's prediction (diffusers' schedulers' formulas)."""
    if kind == "v_prediction":
        return prediction * (-sigma / (sigma**2 + 1) ** 0.5) + x / (sigma**2 + 1)
    return x - sigma * prediction  # epsilon, and flow's velocity (x - x0) / sigma


def run_sample_function(
    sample: Callable[..., Any],
    *,
    guided: GuidedDenoiser,
    scheduler: Any,
    timesteps: torch.Tensor,
    sigmas: list[float],
    x: torch.Tensor,
    step_cfg: list[float],
    generators: list[torch.Generator],
    ctx: GenerationContext,
    cancel: CancelToken | None,
    on_step: Callable[[int, int, float, Any], None] | None,
    preview_every: int,
    preview: Callable[[torch.Tensor], Any],
    keep: tuple[torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:
    """Run ``sample`` over ``sigmas`` (``len(timesteps) + 1`` values ending in 0) from
    ``x``; ``keep`` = (original latents, mask with 1 = repaint) for inpainting."""
    from core.sampling.loop import BatchSkipped, SamplingInterrupted

    flow, kind = guided.adapter.flow, guided.prediction_type
    total = len(sigmas) - 1
    timestep_for = SigmaTimesteps(scheduler, sigmas, timesteps, flow)
    progress: dict[str, Any] = {"step": 0, "estimate": None}
    started = time.perf_counter()

    def model(x_in: torch.Tensor, sigma: Any, **_: Any) -> torch.Tensor:
        if cancel is not None:
            if cancel.interrupted:
                # the last denoised estimate, as A1111's last_latent
                raise SamplingInterrupted(progress["estimate"])
            if cancel.take_skip():
                raise BatchSkipped()
        value = float(sigma.reshape(-1)[0]) if isinstance(sigma, torch.Tensor) else float(sigma)
        step = min(progress["step"], total - 1)
        t = timestep_for(value)
        scaled = x_in if flow else x_in / (value**2 + 1) ** 0.5
        model_input = torch.cat([scaled, scaled]) if guided.use_cfg else scaled
        state = StepState(
            step=step, total_steps=total, timestep=float(t), sigma=value, latents=model_input,
            elapsed_s=time.perf_counter() - started,
        )  # fmt: skip
        prediction = guided.predict(model_input, t, state, step_cfg[step])
        denoised = _to_denoised(prediction.to(x_in.dtype), x_in, value, kind)
        if keep is not None:
            original, mask = keep
            denoised = (1 - mask) * original + mask * denoised
        progress["estimate"] = denoised
        return denoised

    def callback(info: dict[str, Any]) -> None:
        index = int(info.get("i", progress["step"]))
        progress["step"] = index + 1
        state = StepState(
            step=index, total_steps=total, timestep=float(timestep_for(float(sigmas[index]))),
            sigma=float(sigmas[index]), latents=info.get("x"), denoised=info.get("denoised"),
            elapsed_s=time.perf_counter() - started,
        )  # fmt: skip
        if preview_every > 0 and ((index + 1) % preview_every == 0 or index == 0):
            shown = state.denoised if state.denoised is not None else state.latents
            state.preview = preview(shown) if shown is not None else None
        guided.hooks.on_step(ctx, state)
        if on_step is not None:
            on_step(index + 1, total, state.elapsed_s, state.preview)

    def noise_sampler(sigma: Any = None, sigma_next: Any = None) -> torch.Tensor:
        # fresh noise from each image's own generator: a seed repeats its image
        shape = (1, *x.shape[1:])
        drawn = [torch.randn(shape, generator=g, dtype=torch.float32) for g in generators]
        return torch.cat(drawn).to(x.device, x.dtype)

    kwargs: dict[str, Any] = {"extra_args": {}, "callback": callback, "disable": True}
    if "noise_sampler" in inspect.signature(sample).parameters:
        kwargs["noise_sampler"] = noise_sampler
    sigma_tensor = torch.tensor(sigmas, dtype=torch.float32)
    result = sample(model, x, sigma_tensor, **kwargs)
    if not isinstance(result, torch.Tensor) or result.shape != x.shape:
        got = tuple(result.shape) if isinstance(result, torch.Tensor) else type(result).__name__
        name = getattr(sample, "__qualname__", repr(sample))
        # an extension's bug: say whose, rather than fail later in the VAE
        raise ValueError(
            f"sampler function {name} returned {got}, expected latents of shape {tuple(x.shape)}"
        )
    if keep is not None:
        original, mask = keep
        result = (1 - mask) * original + mask * result
    return result
