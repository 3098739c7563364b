"""Bad requests fail with the field named, before any model is loaded."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from core.engine import Engine
from core.errors import RequestError
from core.sampling.memory import check_fits
from plugin_api import GenerationRequest

GREY = Image.new("RGB", (64, 64), (128, 128, 128))


@pytest.fixture
def fresh_engine(host):
    return Engine(host)  # its own model manager: nothing loaded yet


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"width": 0}, "width"),
        ({"width": 100000}, "width"),
        ({"height": 65}, "height"),
        ({"steps": -1}, "steps"),
        ({"steps": 151}, "steps"),
        ({"cfg_scale": math.nan}, "cfg_scale"),
        ({"cfg_scale": math.inf}, "cfg_scale"),
        ({"cfg_scale": 31}, "cfg_scale"),
        ({"seed": -2}, "seed"),
        ({"seed": "12"}, "seed"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 9}, "batch_size"),
        ({"batch_count": 101}, "batch_count"),
        ({"clip_skip": 13}, "clip_skip"),
        ({"sampler": "Not A Sampler"}, "sampler"),
        ({"model": "no-such-model"}, "model"),
        ({"output_format": "gif"}, "output_format"),
        ({"steps": True}, "steps"),
        ({"init_image": "not an image"}, "init_image"),
        ({"model": "tiny-zimage", "width": 72}, "width"),  # Z-Image needs multiples of 16
        ({"scheduler": "Karras-ish"}, "scheduler"),  # refused, never silently ignored
        ({"scheduler": 3}, "scheduler"),
        ({"model": "tiny-zimage", "shift": 0}, "shift"),
        ({"init_image": GREY, "mask": GREY, "inpainting_fill": 4}, "inpainting_fill"),
        ({"init_image": GREY, "mask": GREY, "inpainting_fill": "fill"}, "inpainting_fill"),
    ],
)
def test_invalid_field_is_named_before_loading(fresh_engine, overrides, field):
    values = {"prompt": "x", "model": "tiny-sd15", "width": 64, "height": 64, "steps": 2, **overrides}
    # validate() alone first: a bound that lets the value through fails here at once, not
    # after generating 101 batches (what made this test time out under `make mutation`)
    with pytest.raises(RequestError) as error:
        fresh_engine.validate(GenerationRequest(**values))
    assert error.value.field == field
    with pytest.raises(RequestError) as error:
        fresh_engine.generate(GenerationRequest(**values))
    assert error.value.field == field
    assert field in str(error.value)
    assert fresh_engine.models.load_count == 0


def test_unknown_sampler_lists_choices(fresh_engine):
    with pytest.raises(RequestError, match="Euler a"):
        fresh_engine.validate(GenerationRequest(model="tiny-sd15", sampler="eulr"))


def test_sampler_names_are_case_insensitive_with_aliases(fresh_engine):
    assert fresh_engine.validate(GenerationRequest(model="tiny-sd15", sampler="euler A")).sampler == "Euler a"
    checked = fresh_engine._validate(GenerationRequest(model="tiny-sd15", sampler="k_dpmpp_2m"))
    assert checked.sampler_name == "DPM++ 2M"


def test_schedule_suffix_and_flow_fallback(fresh_engine):
    # A1111 < 1.9 folded the schedule into the name; 1.10 splits it off
    checked = fresh_engine._validate(GenerationRequest(model="tiny-sd15", sampler="DPM++ 2M SDE Karras"))
    assert (checked.sampler_name, checked.request.scheduler) == ("DPM++ 2M SDE", "Karras")
    checked = fresh_engine._validate(
        GenerationRequest(model="tiny-sd15", sampler="Euler", scheduler="sgmuniform")
    )
    assert checked.request.scheduler == "SGM Uniform"
    # a name with no flow form runs Euler on a flow model, and says so
    checked = fresh_engine._validate(
        GenerationRequest(model="tiny-zimage", sampler="DPM++ 2M", width=64, height=64)
    )
    assert checked.sampler_name == "Euler"
    assert any("'DPM++ 2M' has no flow-matching form" in w for w in checked.warnings)
    # an approximated sampler always says what ran
    checked = fresh_engine._validate(GenerationRequest(model="tiny-sd15", sampler="DPM adaptive"))
    assert any("adaptive" in w and "nearest" in w for w in checked.warnings)


def test_hopeless_request_is_refused_up_front():
    with pytest.raises(RequestError) as error:
        check_fits(2048, 2048, 8, torch.float32, torch.device("cuda"), True, available=2 * 1024**3)
    assert error.value.field == "batch_size" and "GiB" in str(error.value)
    check_fits(512, 512, 1, torch.float16, torch.device("cuda"), True, available=8 * 1024**3)
