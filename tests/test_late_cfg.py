"""Late CFG (a second CFG scale for the low-noise end of sampling) and a model's recommended
settings (``easel.json``), through the engine on the tiny SD1.5 model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from core.engine import Engine
from core.errors import RequestError
from core.sampling.loop import LateCfg, cfg_per_step
from core.saving import parse_infotext
from plugin_api import GenerationRequest

TRAILING_20 = [999.0 - 50 * i for i in range(20)]  # 999, 949, ..., 49


def test_cfg_per_step_splits_the_full_schedule():
    assert cfg_per_step(TRAILING_20, TRAILING_20, 6.0, None) == [6.0] * 20
    half = cfg_per_step(TRAILING_20, TRAILING_20, 6.0, LateCfg(2.0, 0.5))
    assert half == [6.0] * 10 + [2.0] * 10
    assert cfg_per_step(TRAILING_20, TRAILING_20, 6.0, LateCfg(2.0, 0.0)) == [2.0] * 20
    assert cfg_per_step(TRAILING_20, TRAILING_20, 6.0, LateCfg(2.0, 1.0)) == [6.0] * 20
    # img2img at strength 0.3 runs the schedule's last 6 steps: all past the halfway point
    assert cfg_per_step(TRAILING_20, TRAILING_20[-6:], 6.0, LateCfg(2.0, 0.5)) == [2.0] * 6
    # ... and at strength 0.7 the first 4 of its 14 steps are still before it
    assert cfg_per_step(TRAILING_20, TRAILING_20[-14:], 6.0, LateCfg(2.0, 0.5)) == [6.0] * 4 + [2.0] * 10
    # a second-order scheduler lists inner timesteps twice; the point is a timestep value
    heun = [999.0, 749.0, 749.0, 499.0, 499.0, 249.0, 249.0]
    assert cfg_per_step(heun, heun, 6.0, LateCfg(2.0, 0.5)) == [6.0] * 3 + [2.0] * 4


def _request(**overrides) -> GenerationRequest:
    values = dict(
        prompt="a red circle", negative_prompt="blurry", seed=7, steps=6, width=64, height=64,
        model="tiny-sd15", sampler="Euler", cfg_scale=6.0, save_images=False,
    )  # fmt: skip
    values.update(overrides)
    return GenerationRequest(**values)


def _pixels(engine, **overrides) -> np.ndarray:
    return np.asarray(engine.generate(_request(**overrides)).images[0], dtype=np.int16)


def test_late_cfg_changes_only_the_late_steps(engine):
    plain = _pixels(engine)
    # the same scale late, or a late part that never starts: the plain image, bit for bit
    assert np.array_equal(_pixels(engine, late_cfg_scale=6.0, late_cfg_start=0.5), plain)
    assert np.array_equal(_pixels(engine, late_cfg_scale=1.5, late_cfg_start=1.0), plain)
    # a late part from the first step is that scale throughout
    assert np.array_equal(
        _pixels(engine, late_cfg_scale=1.5, late_cfg_start=0.0), _pixels(engine, cfg_scale=1.5)
    )
    half = _pixels(engine, late_cfg_scale=1.5, late_cfg_start=0.5)
    assert not np.array_equal(half, plain)
    assert not np.array_equal(half, _pixels(engine, cfg_scale=1.5))


def test_late_cfg_needs_the_negative_prompt_even_at_cfg_1(engine):
    # CFG 1 alone skips the negative prompt; a late scale of 3 must still use it
    at_one = _pixels(engine, cfg_scale=1.0)
    assert not np.array_equal(_pixels(engine, cfg_scale=1.0, late_cfg_scale=3.0), at_one)


def test_late_cfg_in_infotext_and_parameters(engine):
    result = engine.generate(_request(late_cfg_scale=2.0))  # start defaults to 0.5
    params = parse_infotext(result.infotexts[0])
    assert (params["Late CFG scale"], params["Late CFG start"]) == ("2", "0.5")
    assert (result.parameters["late_cfg_scale"], result.parameters["late_cfg_start"]) == (2.0, 0.5)
    assert "Late CFG" not in engine.generate(_request()).infotexts[0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"late_cfg_scale": float("nan")}, "late_cfg_scale"),
        ({"late_cfg_scale": 31.0}, "late_cfg_scale"),
        ({"late_cfg_scale": "2"}, "late_cfg_scale"),
        ({"late_cfg_scale": 2.0, "late_cfg_start": 1.5}, "late_cfg_start"),
        ({"late_cfg_scale": 2.0, "late_cfg_start": -0.1}, "late_cfg_start"),
    ],
)
def test_bad_late_cfg_names_the_field(engine, overrides, field):
    with pytest.raises(RequestError) as caught:
        engine.validate(_request(**overrides))
    assert caught.value.field == field


@pytest.fixture
def recommending_engine(make_host, tiny_sd15_dir, tmp_path):
    """A models folder with one model that carries an easel.json."""
    folder = tmp_path / "models" / "Stable-diffusion" / "recommends"
    shutil.copytree(tiny_sd15_dir, folder)
    recommended = {"steps": 4, "cfg_scale": 5.0, "late_cfg_scale": 2.0, "late_cfg_start": 0.25}
    (folder / "easel.json").write_text(json.dumps({"recommended": recommended}))
    return Engine(make_host(models_dir=tmp_path / "models"))


def test_model_recommendation_fills_empty_fields(recommending_engine):
    filled = recommending_engine.validate(GenerationRequest(prompt="x", model="recommends"))
    assert (filled.steps, filled.cfg_scale, filled.late_cfg_scale, filled.late_cfg_start) == (
        4,
        5.0,
        2.0,
        0.25,
    )
    assert filled.sampler == "Euler a"  # not recommended: the family's default
    mine = recommending_engine.validate(
        GenerationRequest(prompt="x", model="recommends", steps=9, cfg_scale=7.0, late_cfg_scale=3.0)
    )
    # the user's values win; a late scale without a start keeps the model's start
    assert (mine.steps, mine.cfg_scale, mine.late_cfg_scale, mine.late_cfg_start) == (9, 7.0, 3.0, 0.25)


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ('{"recommended": {"cfg": 6}}', "'cfg'"),
        ('{"recommended": {"steps": 2.5}}', "'steps'"),
        ('{"recommended": {"late_cfg_scale": "high"}}', "'late_cfg_scale'"),
        ('{"recommended": [1]}', "recommended"),
        ("{not json", "unreadable"),
    ],
)
def test_bad_easel_json_names_the_file_and_key(recommending_engine, content, named):
    path = recommending_engine.models.info("recommends").path / "easel.json"
    path.write_text(content)
    recommending_engine.models.refresh()
    with pytest.raises(RequestError) as caught:
        recommending_engine.validate(GenerationRequest(prompt="x", model="recommends"))
    assert caught.value.field == "model"
    assert "easel.json" in str(caught.value) and named in str(caught.value)


def test_matches_diffusers_with_the_scale_switched_by_callback(shipped_engine):
    """Easel's late CFG is diffusers' pipeline with guidance_scale switched half way (the
    way tools/demo_model/evaluate.py runs the demo model's recommendation)."""
    import torch

    from tools.demo_model.evaluate import load_pipeline, pipeline_batch_fn

    pipe = load_pipeline()
    prompt = "a large green triangle at the top, orange background"

    def ours(**overrides) -> np.ndarray:
        request = GenerationRequest(
            prompt=prompt, seed=1011, steps=20, cfg_scale=6.0, model="easel-demo", sampler="Euler",
            save_images=False, **overrides,
        )  # fmt: skip
        return np.asarray(shipped_engine.generate(request).images[0], dtype=np.int16)

    for late in (2.0, 1.0):
        generate = pipeline_batch_fn(pipe, cfg=6.0, steps=20, late_cfg=late, late_cfg_start=0.5)
        with torch.no_grad():
            expected = np.asarray(generate([prompt], [1011])[0], dtype=np.int16)
        assert np.abs(ours(late_cfg_scale=late, late_cfg_start=0.5) - expected).max() <= 2, late
    # and the switch matters: with one scale throughout the triangle's outline moves
    changed = (np.abs(ours(late_cfg_scale=6.0) - expected) > 16).any(axis=2).sum()
    assert changed > 50, changed
