"""The sampling loop: one for every family (the adapter supplies the model-specific steps).

Per batch:
  1. noise from one CPU generator per image (seed + index), as A1111 does, so a seed
     gives the same image on CPU and GPU;
  2. timesteps from the scheduler (cut by denoising strength for img2img);
  3. every step: scale the input, ask ``denoiser_kwargs`` hooks for extra conditioning,
     run the denoiser once on the batched [uncond, cond] input, combine with CFG (with
     the sampling-maths hooks around it: ``core.sampling.guidance``), step
     the scheduler, re-impose the unmasked area (inpainting), report (``on_step`` hook,
     progress event with a cheap preview every ``preview_every`` steps), check the
     cancel token.
Decoding and saving are the engine's job. Around the pass: ``patch_denoiser`` contexts
are entered before the noise is made and exited after the last step; ``prepare_noise``
may change the noise. A sampler with its own stepping function (``SamplerSpec.sample``)
replaces step 3's scheduler loop (``core.sampling.function_sampler``).

No host-device synchronisation inside the loop on a GPU: the timestep and sigma values
the hooks see are read from CPU copies made once before it, the scheduler starts from a
given index (not one it searches for with ``nonzero``), and the preview (which copies
latents to the CPU) is made only every ``preview_every`` steps, so the CPU can queue the
next step's kernels while the GPU still runs this one. (diffusers' schedulers compare
their sigmas in ``step``; they keep those on the CPU for this reason.)
tests/test_sampling_syncs.py checks it with the profiler.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from core.families.base import Conditioning
from core.results import CancelToken
from core.sampling.function_sampler import run_sample_function
from core.sampling.guidance import GuidedDenoiser, prediction_type
from plugin_api.types import GenerationContext, SamplingNoise, StepState

# ctx.state key holding the denoiser's conditioning during sampling (see denoise())
DENOISER_INPUTS_KEY = "easel.denoiser_inputs"
STEP_RANGE = "easel.sampling_step"  # profiler range around each step
SCHEDULER_RANGE = "easel.scheduler_step"  # ... and around the diffusers scheduler's step in it


class BatchSkipped(Exception):
    """The user asked to skip the current batch (``CancelToken.skip``)."""


class SamplingInterrupted(Exception):
    """The user interrupted the generation (``CancelToken.interrupt``).

    ``latents``: the image as far as it got, A1111's ``last_latent`` (the denoised
    estimate of the last step that ran), for the engine to decode and return; None when
    no step ran. ``images``: set by the engine once it decoded them.
    """

    def __init__(self, latents: torch.Tensor | None = None) -> None:
        super().__init__("interrupted")
        self.latents = latents
        self.images: list[Any] = []


@dataclass
class InitImage:
    """img2img/inpainting input, already in latent space."""

    latents: torch.Tensor  # (B, C, h, w), scaled
    strength: float
    mask: torch.Tensor | None = None  # (B, 1, h, w) latent-size, 1 = repaint


@dataclass(frozen=True)
class LateCfg:
    """A second CFG scale for the low-noise end of the schedule (request.late_cfg_*)."""

    scale: float
    start: float  # fraction of the full schedule (0: every step, 1: none)

    @classmethod
    def from_request(cls, request: Any) -> LateCfg | None:
        """A validated GenerationRequest's late CFG; None when it has none."""
        if request.late_cfg_scale is None:
            return None
        return cls(float(request.late_cfg_scale), float(request.late_cfg_start))


def cfg_per_step(
    full_schedule: list[float], run_schedule: list[float], cfg_scale: float, late: LateCfg | None
) -> list[float]:
    """The CFG scale of every step that runs. The late part starts at a point of the *full*
    txt2img schedule (a timestep value), so an img2img or hires pass, which runs only the
    schedule's low-noise tail, uses the late scale where that tail lies past the point."""
    if late is None:
        return [cfg_scale] * len(run_schedule)
    first_late = round(late.start * len(full_schedule))
    if first_late >= len(full_schedule):
        return [cfg_scale] * len(run_schedule)
    # timesteps fall as sampling goes on, for discrete and flow schedulers alike
    threshold = full_schedule[first_late]
    return [late.scale if t <= threshold else cfg_scale for t in run_schedule]


def make_generators(seeds: list[int]) -> list[torch.Generator]:
    return [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]


def initial_noise(shape: tuple, generators: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """One noise tensor per image from its own CPU generator (float32, then moved)."""
    noise = [torch.randn((1, *shape[1:]), generator=g, dtype=torch.float32) for g in generators]
    return torch.cat(noise).to(device)


def _step_kwargs(scheduler: Any, generators: list[torch.Generator]) -> dict[str, Any]:
    accepted = set(inspect.signature(scheduler.step).parameters)
    kwargs: dict[str, Any] = {}
    if "generator" in accepted:
        kwargs["generator"] = generators
    if "eta" in accepted:
        kwargs["eta"] = 0.0
    return kwargs


def _strength_timesteps(scheduler: Any, steps: int, strength: float) -> torch.Tensor:
    """The tail of the schedule img2img runs (diffusers' get_timesteps)."""
    order = getattr(scheduler, "order", 1)
    init_steps = min(int(steps * strength), steps)
    start = max(steps - init_steps, 0)
    timesteps = scheduler.timesteps[start * order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * order)
    return timesteps


def _noised(
    scheduler: Any, flow: bool, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    t = t.reshape(1).to(clean.device)
    if flow:
        return scheduler.scale_noise(clean, t, noise)
    return scheduler.add_noise(clean, noise, t.repeat(clean.shape[0]))


def denoise(
    *,
    model: Any,
    scheduler: Any,
    cond: Conditioning,
    uncond: Conditioning | None,
    cfg_scale: float,
    steps: int,
    seeds: list[int],
    width: int,
    height: int,
    ctx: GenerationContext,
    hooks: Any,
    cancel: CancelToken | None = None,
    on_step: Callable[[int, int, float, Any], None] | None = None,
    init: InitImage | None = None,
    preview_every: int = 1,
    preview: Callable[[torch.Tensor], Any] | None = None,
    late_cfg: LateCfg | None = None,
    set_timesteps: Callable[[int, Any], None] | None = None,
    image_conditioning: torch.Tensor | None = None,
    sample_fn: Callable[..., Any] | None = None,
    hires: bool = False,
    step_cache: Any = None,
) -> torch.Tensor:
    """Run the denoising loop for one batch and return the final latents.

    ``image_conditioning`` (B, C, h, w) is concatenated to the latents on the channel axis
    at every step: the mask and masked-image latents of an inpainting UNet
    (``core.sampling.inpaint_model``).

    ``on_step(step, total, elapsed_s, preview)`` reports progress (step 1-based);
    ``preview(latents)`` makes the preview image every ``preview_every`` steps (the
    family's shipped factors when None; ``core.previews`` has the others).
    ``set_timesteps(steps, device)``: the schedule type's own (core.schedules), used
    instead of the family's ``set_timesteps`` when set.
    ``sample_fn``: the sampler's own stepping function (``SamplerSpec.sample``), run
    instead of ``scheduler.step``; ``hires``: this is the hires fix's second pass.
    ``step_cache`` (``core.sampling.step_cache.StepCache``): started with the number of
    denoiser calls once the schedule is known; the caller closes it.
    Raises ``SamplingInterrupted`` or ``BatchSkipped`` when the token says so.
    """
    sampling = hooks.sampling(ctx)
    # patch_denoiser's patches hold for the whole pass (removed on errors and interrupts too)
    with sampling.patches(model.components[model.adapter.denoiser_name]):
        adapter, components = model.adapter, model.components
        make_preview = preview or adapter.preview
        device = model.device
        denoiser = components[adapter.denoiser_name]
        dtype = denoiser.dtype
        batch = len(seeds)
        generators = make_generators(seeds)
        shape = adapter.latent_shape(components, batch, width, height)
        noise = initial_noise(shape, generators, device)
        if sampling.has("prepare_noise"):
            given = SamplingNoise(
                noise=noise, seeds=list(seeds), init_latents=init.latents if init is not None else None,
                strength=init.strength if init is not None else 1.0, hires=hires,
            )  # fmt: skip
            sampling.prepare_noise(given)
            noise = given.noise.to(device, torch.float32)

        if set_timesteps is not None:
            set_timesteps(steps, device)
        else:
            adapter.set_timesteps(scheduler, steps, shape, device)
        timesteps = scheduler.timesteps
        full_schedule = [float(v) for v in timesteps.detach().cpu()]
        # an inpainting UNet at full strength starts from pure noise, as diffusers' inpaint
        # pipeline does (is_strength_max): the image reaches it through image_conditioning
        if init is not None and image_conditioning is not None and init.strength >= 1.0:
            init = None
        if init is not None:
            timesteps = _strength_timesteps(scheduler, steps, init.strength)
            if len(timesteps) == 0:
                return init.latents.to(device)
            latents = _noised(
                scheduler, adapter.flow, init.latents.to(device, torch.float32), noise, timesteps[:1]
            )
        else:
            if hasattr(scheduler, "set_begin_index"):
                # else the scheduler finds its first index with nonzero().item(): a host sync
                scheduler.set_begin_index(0)
            latents = noise * getattr(scheduler, "init_noise_sigma", 1.0)

        use_cfg = uncond is not None
        model_cond = uncond.concat(cond) if use_cfg else cond
        # what the denoiser receives besides the latents, for extensions that run a model of
        # their own beside it (a ControlNet needs the same text conditioning)
        ctx.state[DENOISER_INPUTS_KEY] = {
            "encoder_hidden_states": model_cond.embeds,
            "added_cond_kwargs": dict(model_cond.extra),
            "cfg_batch": use_cfg,  # True: the batch is [uncond..., cond...]
        }
        extra_channels = None
        if image_conditioning is not None:
            extra_channels = image_conditioning.to(device, dtype)
            if use_cfg:
                extra_channels = torch.cat([extra_channels, extra_channels])
        step_kwargs = _step_kwargs(scheduler, generators)
        if hasattr(scheduler, "noise_sampler_seed"):
            # DPM++ SDE draws its noise from a Brownian tree that ignores ``generator`` and is
            # seeded at random unless told: seed it per image, as A1111 does (its seeds)
            scheduler.noise_sampler_seed = [int(seed) for seed in seeds]
        # CPU copies, taken once (reading a CUDA tensor's value inside the loop would sync)
        timestep_values = [float(v) for v in timesteps.detach().cpu()]
        step_cfg = cfg_per_step(full_schedule, timestep_values, cfg_scale, late_cfg)
        sigmas = getattr(scheduler, "sigmas", None)
        sigma_values = [float(v) for v in sigmas.detach().cpu()] if isinstance(sigmas, torch.Tensor) else None
        total = len(timesteps)
        ctx.total_steps = total
        if step_cache is not None:
            step_cache.start(total)
        guided = GuidedDenoiser(
            adapter=adapter, components=components, cond=model_cond, use_cfg=use_cfg,
            extra_channels=extra_channels, dtype=dtype, ctx=ctx, hooks=hooks, sampling=sampling,
            prediction_type=prediction_type(adapter, scheduler),
        )  # fmt: skip
        if sample_fn is not None:
            if sigma_values is None:
                raise ValueError(f"{type(scheduler).__name__} has no sigmas for a sampler function")
            first = len(sigma_values) - 1 - total  # img2img runs the schedule's tail
            keep = None
            if init is not None and init.mask is not None and extra_channels is None:
                keep = (init.latents.to(device, torch.float32), init.mask)
            return run_sample_function(
                sample_fn, guided=guided, scheduler=scheduler, timesteps=timesteps,
                sigmas=sigma_values[first:], x=latents,
                step_cfg=step_cfg, generators=generators, ctx=ctx, cancel=cancel, on_step=on_step,
                preview_every=preview_every, preview=make_preview, keep=keep,
            )  # fmt: skip
        started = time.perf_counter()
        scale_input = getattr(scheduler, "scale_model_input", None)
        last_estimate = None  # the denoised estimate of the last step (A1111's last_latent)

        for index, t in enumerate(timesteps):
            # a named range for profilers (tests/test_sampling_syncs.py looks inside it)
            with torch.profiler.record_function(STEP_RANGE):
                if cancel is not None:
                    if cancel.interrupted:
                        raise SamplingInterrupted(last_estimate)
                    if cancel.take_skip():
                        raise BatchSkipped()
                model_input = torch.cat([latents, latents]) if use_cfg else latents
                if scale_input is not None:
                    model_input = scale_input(model_input, t)
                sigma = _current_sigma(scheduler, sigma_values)
                state = StepState(
                    step=index,
                    total_steps=total,
                    timestep=timestep_values[index],
                    sigma=sigma,
                    latents=model_input,
                    elapsed_s=time.perf_counter() - started,
                )
                prediction = guided.predict(model_input, t, state, step_cfg[index])
                with torch.profiler.record_function(SCHEDULER_RANGE):
                    output = scheduler.step(
                        prediction.to(latents.dtype), t, latents, **step_kwargs, return_dict=True
                    )
                latents = output.prev_sample
                denoised = getattr(output, "pred_original_sample", None)
                last_estimate = _partial_estimate(denoised, latents, init, extra_channels)

                if init is not None and init.mask is not None and extra_channels is None:
                    # keep the unmasked area on the original image's noise schedule (not for an
                    # inpainting UNet, which sees that area itself: as diffusers)
                    keep = init.latents.to(device, latents.dtype)
                    if index < total - 1:
                        keep = _noised(scheduler, adapter.flow, keep, noise, timesteps[index + 1])
                    latents = (1 - init.mask) * keep + init.mask * latents

                state.latents = latents
                state.denoised = denoised
                if preview_every > 0 and ((index + 1) % preview_every == 0 or index == 0):
                    state.preview = make_preview(denoised if denoised is not None else latents)
                state.elapsed_s = time.perf_counter() - started
                hooks.on_step(ctx, state)
                if on_step is not None:
                    on_step(index + 1, total, state.elapsed_s, state.preview)
        return latents


def _partial_estimate(
    denoised: torch.Tensor | None, latents: torch.Tensor, init: InitImage | None, extra_channels: Any
) -> torch.Tensor:
    """What an interrupt now would decode: the step's denoised estimate (the latents when
    the scheduler gives none), with the unmasked area of an inpainting its original."""
    estimate = denoised if denoised is not None else latents
    if init is not None and init.mask is not None and extra_channels is None:
        estimate = (1 - init.mask) * init.latents.to(estimate.device, estimate.dtype) + init.mask * estimate
    return estimate


def _current_sigma(scheduler: Any, sigma_values: list[float] | None) -> float | None:
    index = getattr(scheduler, "step_index", None)
    if index is None:  # before the first step of a scheduler without scale_model_input (flow)
        index = getattr(scheduler, "begin_index", None)
    if sigma_values is None or index is None or index >= len(sigma_values):
        return None
    return sigma_values[index]
