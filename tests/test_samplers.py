"""Every built-in sampler runs on its family and is deterministic for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from core.samplers import builtin_sampler_specs
from plugin_api import GenerationRequest

SD15_SAMPLERS = [s.name for s in builtin_sampler_specs() if not s.flow]


@pytest.mark.parametrize("sampler", SD15_SAMPLERS)
def test_sampler_runs_and_repeats(engine, sampler):
    request = dict(
        prompt="x",
        seed=3,
        steps=2,
        width=64,
        height=64,
        model="tiny-sd15",
        sampler=sampler,
        save_images=False,
    )
    first = engine.generate(GenerationRequest(**request))
    image = np.asarray(first.images[0])
    assert image.shape == (64, 64, 3) and image.std() > 0
    if sampler in (
        "Euler a",
        "DPM++ 2M SDE",
        "DPM++ SDE",
        "DPM++ 2S a",
        "DPM2 a",
    ):  # noise each step: still seeded per image
        second = engine.generate(GenerationRequest(**request))
        assert np.array_equal(image, np.asarray(second.images[0]))
    assert f"Sampler: {sampler}," in first.infotexts[0]


def test_sde_sampler_listed_only_with_torchsde(engine):
    import importlib.util

    listed = "DPM++ SDE" in engine.sampler_names("sd15")
    assert listed == (importlib.util.find_spec("torchsde") is not None)


def test_extension_samplers_register_through_the_hook(host):
    spec = host.samplers.get("k_euler_a")
    assert spec is not None and spec.name == "Euler a"
    assert host.samplers.owner("Euler a") == "builtin.samplers"
