"""A sampler with its own stepping function (``SamplerSpec.sample``, k-diffusion's form),
registered by an extension through ``register_samplers`` and run by the real engine:
plain Euler written by hand gives the built-in Euler's image (a diffusers scheduler),
on every schedule type, in img2img, and with the sampling-maths hooks around it."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from PIL import Image

from core.config import BUNDLED_EXTENSION_NAMES
from core.engine import Engine
from core.saving import parse_infotext
from plugin_api import GenerationRequest

HAND_SAMPLERS = textwrap.dedent(
    """
    import torch
    from diffusers import EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler
    from plugin_api import SamplerSpec, hookimpl

    CALLBACKS = []

    def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
        # Karras et al. (2022), Algorithm 2 without churn: one Euler step per sigma
        extra_args = extra_args or {}
        s_in = x.new_ones([x.shape[0]])
        for i in range(len(sigmas) - 1):
            denoised = model(x, sigmas[i] * s_in, **extra_args)
            d = (x - denoised) / sigmas[i]
            if callback is not None:
                callback({"x": x, "i": i, "sigma": sigmas[i], "denoised": denoised})
            x = x + d * (sigmas[i + 1] - sigmas[i])
        return x

    def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, noise_sampler=None):
        s_in = x.new_ones([x.shape[0]])
        for i in range(len(sigmas) - 1):
            denoised = model(x, sigmas[i] * s_in)
            sigma, sigma_next = sigmas[i], sigmas[i + 1]
            sigma_up = min(sigma_next, (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2) ** 0.5)
            sigma_down = (sigma_next**2 - sigma_up**2) ** 0.5
            x = x + (x - denoised) / sigma * (sigma_down - sigma)
            if sigma_next > 0:
                x = x + noise_sampler(sigma, sigma_next) * sigma_up
            CALLBACKS.append(i)
        return x

    def euler_schedule(config):
        return EulerDiscreteScheduler.from_config(config)

    def flow_schedule(config):
        return FlowMatchEulerDiscreteScheduler.from_config(config)

    @hookimpl
    def register_samplers(register):
        register(SamplerSpec("Hand Euler", euler_schedule, sample=sample_euler))
        # the same function on flow-matching models: the host hands it x0 estimates there too
        register(SamplerSpec("Hand Euler (flow)", flow_schedule, flow=True, sample=sample_euler))
        register(SamplerSpec("Hand Euler a", euler_schedule, sample=sample_euler_ancestral))
    """
)

COUNTER = textwrap.dedent(
    """
    from plugin_api import hookimpl

    CALLS = []
    DENOISED = []

    @hookimpl
    def after_cfg(ctx, call):
        CALLS.append((call.step, round(call.sigma, 4)))

    @hookimpl
    def on_step(ctx, step):
        DENOISED.append(step.denoised.clone() if step.denoised is not None else None)
    """
)


@pytest.fixture(scope="module")
def engine(make_host, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sampler-extensions")
    (folder / "hand_samplers.py").write_text(HAND_SAMPLERS)
    (folder / "counter.py").write_text(COUNTER)
    host = make_host(
        extension_dirs=[folder], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    assert host.extensions.records["hand_samplers"].state == "loaded", host.extensions.records[
        "hand_samplers"
    ].error
    return Engine(host)


def _request(**overrides) -> GenerationRequest:
    values = dict(
        prompt="a red circle", negative_prompt="blurry", seed=11, steps=6, width=64, height=64,
        model="tiny-sd15", sampler="Euler", cfg_scale=7.0, save_images=False, batch_size=2,
    )  # fmt: skip
    values.update(overrides)
    return GenerationRequest(**values)


def _images(result) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in result.images])


def _denoised(engine, request) -> tuple[list, np.ndarray]:
    """The x0 estimate after every step (on_step's ``denoised``) and the images."""
    recorded = engine.host.extensions.records["counter"].module.DENOISED
    recorded.clear()
    result = engine.generate(request)
    return list(recorded), result


@pytest.mark.parametrize("schedule", ["Automatic", "Karras", "Exponential"])
def test_hand_written_euler_is_the_builtin_euler(engine, schedule):
    builtin_steps, builtin = _denoised(engine, _request(scheduler=schedule))
    hand_steps, hand = _denoised(engine, _request(sampler="Hand Euler", scheduler=schedule))
    assert hand.warnings == []
    # the same maths with floats rounded in another order (the input scale in float64
    # here, float32 in diffusers): every step's x0 estimate agrees to 1e-5 of its scale
    # (measured: 4e-7) ...
    assert len(hand_steps) == len(builtin_steps) == 6
    for ours, theirs in zip(hand_steps, builtin_steps, strict=True):
        assert (ours - theirs).abs().max().item() <= 1e-5 * theirs.abs().max().item()
    # ... and so the images (8-bit rounding can still flip a pixel by one step)
    assert np.abs(_images(hand) - _images(builtin)).max() <= 1 / 255
    assert parse_infotext(hand.infotexts[0])["Sampler"] == "Hand Euler"


def test_hand_written_euler_in_img2img(engine):
    start = Image.new("RGB", (64, 64), (200, 40, 40))
    builtin = engine.generate(_request(init_image=start, denoising_strength=0.6))
    hand = engine.generate(_request(sampler="Hand Euler", init_image=start, denoising_strength=0.6))
    assert np.abs(_images(hand) - _images(builtin)).max() <= 1 / 255


def test_the_sampling_hooks_and_progress_ride_on_the_function(engine):
    counter = engine.host.extensions.records["counter"].module
    counter.CALLS.clear()
    events = []
    engine.generate(_request(sampler="Hand Euler", batch_size=1), on_progress=events.append)
    assert [step for step, _ in counter.CALLS] == list(range(6))
    assert [e.step for e in events if e.phase == "sampling"] == list(range(1, 7))
    # sigmas fall from the schedule's first to its last non-zero one
    sigmas = [sigma for _, sigma in counter.CALLS]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[-1] > 0


def test_noise_sampler_draws_from_the_seed(engine):
    a = _images(engine.generate(_request(sampler="Hand Euler a")))
    b = _images(engine.generate(_request(sampler="Hand Euler a")))
    other = _images(engine.generate(_request(sampler="Hand Euler a", seed=12)))
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], other[0])
    # seed 12 is the second image of the seed-11 batch: each image has its own generator
    assert np.abs(a[1] - other[0]).max() <= 2 / 255


def test_the_same_function_on_a_flow_matching_model(engine):
    counter = engine.host.extensions.records["counter"].module
    request = dict(model="tiny-zimage", negative_prompt="", cfg_scale=1.0, batch_size=1)
    counter.CALLS.clear()
    builtin = engine.generate(_request(sampler="Euler", **request))
    builtin_calls = list(counter.CALLS)
    counter.CALLS.clear()
    hand = engine.generate(_request(sampler="Hand Euler", **request))
    assert hand.warnings == [] and parse_infotext(hand.infotexts[0])["Sampler"] == "Hand Euler"
    # the same sigmas (0-1) at the same steps, and the same image
    hand_calls = list(counter.CALLS)
    assert hand_calls == builtin_calls and builtin_calls[0][1] <= 1.0
    assert np.abs(_images(hand) - _images(builtin)).max() <= 1 / 255
