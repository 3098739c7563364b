"""The sampling-maths hooks (patch_denoiser, prepare_noise, before_denoiser,
after_denoiser, after_cfg) through the real host: their order and frequency, that each
changes exactly what its contract says (checked against the same image made another
way), and their isolation."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from core.config import BUNDLED_EXTENSION_NAMES
from core.engine import Engine
from plugin_api import GenerationRequest

PROBE = textwrap.dedent(
    """
    import torch
    from contextlib import contextmanager
    from plugin_api import hookimpl

    CALLS = []

    def mode(ctx):
        return ctx.request.extension_args.get("probe", {}).get("mode", "record")

    @contextmanager
    def _patch(denoiser):
        handle = denoiser.register_forward_pre_hook(lambda module, args: None)
        CALLS.append(("patch_enter", None))
        try:
            yield
        finally:
            handle.remove()
            CALLS.append(("patch_exit", None))

    @hookimpl
    def patch_denoiser(ctx, denoiser):
        if mode(ctx) == "broken_patch":
            raise RuntimeError("patch exploded")
        return _patch(denoiser)

    @hookimpl
    def prepare_noise(ctx, noise):
        CALLS.append(("prepare_noise", (noise.hires, tuple(noise.noise.shape), noise.init_latents is not None)))
        if mode(ctx) == "seed_99_noise":
            g = torch.Generator("cpu").manual_seed(99)
            noise.noise = torch.randn(tuple(noise.noise.shape), generator=g)

    @hookimpl
    def denoiser_kwargs(ctx, step):
        CALLS.append(("denoiser_kwargs", step.step))

    @hookimpl
    def before_denoiser(ctx, call):
        CALLS.append(("before_denoiser", call.step))
        m = mode(ctx)
        if m == "cfg_3":
            call.cfg_scale = 3.0
        elif m == "late_cfg" and call.step >= 3:
            call.cfg_scale = 1.5
        elif m == "swap_text":
            uncond, cond = call.encoder_hidden_states.chunk(2)
            call.encoder_hidden_states = torch.cat([cond, uncond])
        elif m == "raise_before":
            call.x = call.x * 0  # half-done: must be undone
            raise ValueError("before exploded")
        elif m == "wrong_shape":
            call.x = call.x[:, :2]

    @hookimpl
    def after_denoiser(ctx, call):
        CALLS.append(("after_denoiser", call.step))
        if mode(ctx) == "swap_preds":
            call.uncond_pred, call.cond_pred = call.cond_pred, call.uncond_pred

    @hookimpl
    def after_cfg(ctx, call):
        CALLS.append(("after_cfg", call.step))
        if mode(ctx) == "cond_only":
            call.prediction = call.cond_pred

    @hookimpl
    def on_step(ctx, step):
        CALLS.append(("on_step", step.step))
    """
)


@pytest.fixture(scope="module")
def probe(make_host, tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe-extensions")
    (folder / "probe.py").write_text(PROBE)
    off = set(BUNDLED_EXTENSION_NAMES)
    host = make_host(extension_dirs=[folder], safe_mode=False, disabled_extensions=off)
    return Engine(host), host.extensions.records["probe"].module


@pytest.fixture(scope="module")
def plain(make_host):
    """No extension at all: the loop's hook-free path."""
    return Engine(make_host(safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)))


def _request(mode: str = "record", **overrides) -> GenerationRequest:
    values = dict(
        prompt="a red circle", negative_prompt="blurry", seed=7, steps=6, width=64, height=64,
        model="tiny-sd15", sampler="Euler", cfg_scale=6.0, save_images=False,
        extension_args={"probe": {"mode": mode}},
    )  # fmt: skip
    values.update(overrides)
    return GenerationRequest(**values)


def _image(engine, mode: str = "record", **overrides) -> np.ndarray:
    return np.asarray(engine.generate(_request(mode, **overrides)).images[0], dtype=np.int16)


def test_order_and_frequency(probe):
    engine, module = probe
    module.CALLS.clear()
    result = engine.generate(_request(steps=3))
    assert result.warnings == []
    per_step = ["denoiser_kwargs", "before_denoiser", "after_denoiser", "after_cfg", "on_step"]
    expected = [("patch_enter", None), ("prepare_noise", (False, (1, 4, 8, 8), False))]
    expected += [(hook, step) for step in range(3) for hook in per_step]
    expected += [("patch_exit", None)]
    calls = list(module.CALLS)
    assert calls == expected


def test_once_per_pass_hooks_run_again_for_the_hires_pass(probe):
    engine, module = probe
    module.CALLS.clear()
    engine.generate(_request(steps=2, enable_hr=True, hr_scale=1.5, hr_second_pass_steps=2, batch_count=2))
    once = [
        (name, arg) for name, arg in module.CALLS if name in ("patch_enter", "prepare_noise", "patch_exit")
    ]
    first, hires = (
        ("prepare_noise", (False, (1, 4, 8, 8), False)),
        ("prepare_noise", (True, (1, 4, 12, 12), True)),
    )
    one_batch = [
        ("patch_enter", None),
        first,
        ("patch_exit", None),
        ("patch_enter", None),
        hires,
        ("patch_exit", None),
    ]
    assert once == one_batch * 2


def test_hooks_that_change_nothing_leave_the_image_bit_for_bit(probe, plain):
    assert np.array_equal(_image(probe[0]), _image(plain))


def test_cfg_scale_per_step(probe, plain):
    engine = probe[0]
    assert np.array_equal(_image(engine, "cfg_3"), _image(plain, cfg_scale=3.0))
    # switching to 1.5 from step 3 of 6 is the host's own late CFG
    assert np.array_equal(_image(engine, "late_cfg"), _image(plain, late_cfg_scale=1.5, late_cfg_start=0.5))


def test_before_denoiser_conditioning_and_after_denoiser_halves(probe, plain):
    """Swapping the text halves before the denoiser, or its two predictions after it, is
    the request with prompt and negative prompt swapped."""
    engine = probe[0]
    swapped = _image(plain, prompt="blurry", negative_prompt="a red circle")
    assert not np.array_equal(swapped, _image(plain))
    assert np.abs(_image(engine, "swap_text") - swapped).max() <= 1
    assert np.abs(_image(engine, "swap_preds") - swapped).max() <= 1


def test_after_cfg_replaces_the_guided_prediction(probe, plain):
    # the conditional prediction alone is CFG scale 1 (computed in a batch of one there)
    assert np.abs(_image(probe[0], "cond_only") - _image(plain, cfg_scale=1.0)).max() <= 2


def test_prepare_noise_replaces_the_start_noise(probe, plain):
    other_seed = _image(plain, seed=99)
    assert not np.array_equal(other_seed, _image(plain))
    assert np.array_equal(_image(probe[0], "seed_99_noise"), other_seed)


@pytest.mark.parametrize(
    ("mode", "hook"),
    [
        ("raise_before", "before_denoiser"),
        ("wrong_shape", "before_denoiser"),
        ("broken_patch", "patch_denoiser"),
    ],
)
def test_a_failing_implementation_is_undone_reported_and_disabled(probe, plain, mode, hook):
    engine, module = probe
    module.CALLS.clear()
    result = engine.generate(_request(mode))
    assert f"extension 'probe' failed in {hook}" in result.warnings
    # its changes are undone, so the image is the plain one ...
    assert np.array_equal(np.asarray(result.images[0], dtype=np.int16), _image(plain))
    # ... it was called once, and the host recorded the failure under its name
    if hook == "before_denoiser":
        assert [c for c in module.CALLS if c[0] == hook] == [(hook, 0)]
        assert [c for c in module.CALLS if c[0] == "after_cfg"] == [("after_cfg", s) for s in range(6)]
    failures = engine.host.extensions.records["probe"].failures
    assert failures[-1].hook == hook
    # and the next generation calls it again (disabled for one generation only)
    module.CALLS.clear()
    engine.generate(_request(steps=1))
    assert ("before_denoiser", 0) in module.CALLS


def test_patches_are_removed_when_the_pass_is_interrupted(probe):
    from core.results import CancelToken

    engine, module = probe
    unet = engine.models.get("tiny-sd15").components["unet"]
    token = CancelToken()
    module.CALLS.clear()
    # interrupted after the first step (the phases before sampling report progress too)
    result = engine.generate(
        _request(), cancel=token, on_progress=lambda event: event.phase == "sampling" and token.interrupt()
    )
    assert result.interrupted and len(result.images) == 1  # as far as it got (A1111)
    assert module.CALLS[-1] == ("patch_exit", None)
    assert [c for c in module.CALLS if c[0] == "on_step"] == [("on_step", 0)]
    assert len(unet._forward_pre_hooks) == 0
