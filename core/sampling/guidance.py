"""One guided denoiser call: extensions' extra inputs, the denoiser, classifier-free
guidance, and the sampling-maths hooks around them (``before_denoiser`` ->
denoiser -> ``after_denoiser`` -> CFG -> ``after_cfg``).

Both ways of stepping use it: the sampling loop with a diffusers scheduler, and a
sampler's own stepping function (``core.sampling.function_sampler``). Without any
sampling-maths hook the call is exactly the plain one (no DenoiserCall is built), so
results stay bit for bit what they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from core.families.base import Conditioning
from core.plugins.sampling_hooks import SamplingHooks
from plugin_api.types import DenoiserCall, GenerationContext, StepState


def prediction_type(adapter: Any, scheduler: Any) -> str:
    """What the denoiser predicts: "flow" (a velocity), "v_prediction" or "epsilon"."""
    if adapter.flow:
        return "flow"
    config = getattr(scheduler, "config", None)
    return str(getattr(config, "prediction_type", None) or "epsilon")


@dataclass
class GuidedDenoiser:
    adapter: Any
    components: dict[str, Any]
    cond: Conditioning  # the model's conditioning: [uncond..., cond...] when use_cfg
    use_cfg: bool
    extra_channels: torch.Tensor | None  # an inpainting UNet's mask channels (CFG batch)
    dtype: torch.dtype
    ctx: GenerationContext
    hooks: Any  # GenerationHooks (denoiser_kwargs)
    sampling: SamplingHooks
    prediction_type: str

    def predict(
        self, model_input: torch.Tensor, t: torch.Tensor, state: StepState, cfg_scale: float
    ) -> torch.Tensor:
        """The guided prediction for ``model_input`` (scaled, CFG batch) at timestep ``t``."""
        extra = self.hooks.denoiser_kwargs(self.ctx, state)
        if not self.sampling.on_calls:
            prediction = self._denoise(model_input, t, self.cond, extra)
            if not self.use_cfg:
                return prediction
            negative_pred, positive_pred = prediction.chunk(2)
            return self.adapter.combine_cfg(negative_pred, positive_pred, cfg_scale)
        return self._predict_with_hooks(model_input, t, state, cfg_scale, extra)

    def _predict_with_hooks(
        self, model_input: torch.Tensor, t: torch.Tensor, state: StepState, cfg_scale: float, extra: dict
    ) -> torch.Tensor:
        call = DenoiserCall(
            step=state.step,
            total_steps=state.total_steps,
            timestep=state.timestep,
            sigma=state.sigma,
            x=model_input,
            encoder_hidden_states=self.cond.embeds,
            added_cond_kwargs=dict(self.cond.extra),
            denoiser_kwargs=extra,
            cfg_scale=float(cfg_scale),
            cfg_batch=self.use_cfg,
            prediction_type=self.prediction_type,
        )
        self.sampling.call("before_denoiser", call)
        cond = Conditioning(call.encoder_hidden_states, call.added_cond_kwargs)
        prediction = self._denoise(call.x, t, cond, call.denoiser_kwargs)
        if self.use_cfg:
            call.uncond_pred, call.cond_pred = prediction.chunk(2)
        else:
            call.cond_pred = prediction
        self.sampling.call("after_denoiser", call)
        if self.use_cfg:
            call.prediction = self.adapter.combine_cfg(call.uncond_pred, call.cond_pred, call.cfg_scale)
        else:
            call.prediction = call.cond_pred
        self.sampling.call("after_cfg", call)
        return call.prediction

    def _denoise(
        self, model_input: torch.Tensor, t: torch.Tensor, cond: Conditioning, extra: dict
    ) -> torch.Tensor:
        denoiser_input = model_input
        if self.extra_channels is not None:
            denoiser_input = torch.cat([model_input, self.extra_channels], dim=1)
        return self.adapter.denoise(self.components, denoiser_input.to(self.dtype), t, cond, extra)
