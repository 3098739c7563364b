"""Hires fix in txt2img: first pass, upscale (latent or a registered upscaler), second
img2img pass at the new size; A1111's infotext fields."""

from __future__ import annotations

import pytest

from core.errors import RequestError
from core.sampling.hires import schedule_length
from core.saving import parse_infotext, read_infotext
from plugin_api import GenerationRequest


def hires_request(**overrides) -> GenerationRequest:
    values = dict(
        prompt="a red circle",
        seed=7,
        steps=2,
        width=64,
        height=64,
        model="tiny-sd15",
        sampler="Euler",
        enable_hr=True,
        hr_scale=2.0,
        hr_second_pass_steps=2,
        denoising_strength=0.5,
    )
    values.update(overrides)
    return GenerationRequest(**values)


def test_latent_hires_reaches_the_target_size_with_a1111_infotext(engine):
    steps_seen = []
    result = engine.generate(
        hires_request(),
        on_progress=lambda e: e.phase == "sampling" and steps_seen.append((e.step, e.total_steps)),
    )
    assert result.images[0].size == (128, 128)
    params = parse_infotext(read_infotext(result.paths[0]))
    # A1111 writes the first pass size; its parser gives it as Size-1/Size-2 only
    assert (params["Size-1"], params["Size-2"]) == ("64", "64") and "Size" not in params
    assert params["Hires upscale"] == "2"
    assert params["Hires steps"] == "2"
    assert params["Hires upscaler"] == "Latent"
    assert params["Denoising strength"] == "0.5"
    # one progress bar over both passes: 2 first-pass steps, then exactly 2 hires steps
    assert steps_seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_hires_with_a_registered_upscaler_and_a_target_size(engine):
    result = engine.generate(hires_request(hr_upscaler="lanczos", hr_resize_x=96, hr_resize_y=0))
    assert result.images[0].size == (96, 96)
    params = parse_infotext(read_infotext(result.paths[0]))
    assert (params["Hires resize-1"], params["Hires resize-2"]) == ("96", "96")  # written "96x96"
    assert "Hires upscale" not in params
    assert params["Hires upscaler"] == "Lanczos"


def test_hires_changes_the_image_beyond_plain_upscaling(engine):
    """The second pass really denoises: the result is not the first pass upscaled."""
    import numpy as np

    plain = engine.generate(hires_request(enable_hr=False)).images[0]
    hires = engine.generate(hires_request(hr_upscaler="Lanczos", denoising_strength=0.9)).images[0]
    upscaled = np.asarray(plain.resize(hires.size), dtype=np.float32)
    assert np.abs(np.asarray(hires, dtype=np.float32) - upscaled).mean() > 2.0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hr_upscaler": "ESRGAN_9x"}, "hr_upscaler"),
        ({"hr_scale": 9.0}, "hr_scale"),
        ({"hr_resize_x": 4096}, "hr_resize_x"),
        ({"denoising_strength": 1.5}, "denoising_strength"),
    ],
)
def test_bad_hires_settings_name_the_field(engine, overrides, field):
    with pytest.raises(RequestError) as caught:
        engine.validate(hires_request(**overrides))
    assert caught.value.field == field


def test_second_pass_runs_exactly_the_hires_steps():
    for steps in range(1, 40):
        for strength in (0.05, 0.1, 0.3, 0.35, 0.5, 0.7, 0.75, 0.99, 1.0):
            length = schedule_length(steps, strength)
            assert int(length * strength) == steps, (steps, strength, length)
