"""sd-webui-controlnet's unit semantics checked against hand-computed references:
control_mode's soft weighting and CFG-side injection, pixel-perfect resolution, and how
control_mode / guessmode / pixel_perfect are read."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from extensions.controlnet.control import _apply_control_mode
from extensions.controlnet.units import (
    BALANCED,
    CONTROL_MODE,
    PROMPT_MODE,
    ControlUnit,
    parse_control_mode,
    parse_units,
    pixel_perfect_resolution,
    resolve_image,
)
from plugin_api.errors import InvalidRequest


def unit(mode: str) -> ControlUnit:
    return ControlUnit(index=0, field="u", image=None, preprocessor="none", model="m", control_mode=mode)


def residuals() -> tuple[list[torch.Tensor], torch.Tensor]:
    # a CFG batch of 2 ([uncond, cond]) with 12 down residuals and a mid one, as SD1.5's
    return [torch.full((2, 1, 2, 2), 1.0 + i) for i in range(12)], torch.full((2, 1, 1, 1), 5.0)


def test_balanced_leaves_residuals_alone():
    down, mid = residuals()
    out_down, out_mid = _apply_control_mode(unit(BALANCED), down, mid, cfg_batch=True)
    assert all(torch.equal(a, b) for a, b in zip(out_down, down, strict=True)) and torch.equal(out_mid, mid)


def test_prompt_mode_is_the_0_825_ladder_on_both_cfg_halves():
    down, mid = residuals()
    out_down, out_mid = _apply_control_mode(unit(PROMPT_MODE), down, mid, cfg_batch=True)
    for i, tensor in enumerate(out_down):  # down block i of 13 gets 0.825 ** (12 - i)
        assert torch.allclose(tensor, torch.full_like(tensor, (1.0 + i) * 0.825 ** (12 - i)))
    assert torch.equal(out_mid, mid)


def test_controlnet_mode_also_drops_the_uncond_half():
    down, mid = residuals()
    out_down, out_mid = _apply_control_mode(unit(CONTROL_MODE), down, mid, cfg_batch=True)
    assert torch.count_nonzero(out_mid[0]) == 0 and torch.equal(out_mid[1], mid[1])
    assert torch.count_nonzero(out_down[3][0]) == 0
    assert torch.allclose(out_down[3][1], torch.full_like(out_down[3][1], 4.0 * 0.825**9))
    # without CFG there is no uncond half to drop: the ladder only
    no_cfg, _ = _apply_control_mode(unit(CONTROL_MODE), *residuals(), cfg_batch=False)
    assert torch.count_nonzero(no_cfg[0][0]) > 0


@pytest.mark.parametrize(
    ("raw", "mode"),
    [
        ({}, BALANCED),
        ({"control_mode": 1}, PROMPT_MODE),
        ({"control_mode": "2"}, CONTROL_MODE),
        ({"control_mode": "balanced"}, BALANCED),
        ({"guessmode": True}, CONTROL_MODE),
        ({"guessmode": False}, BALANCED),
        ({"guessmode": True, "control_mode": 0}, BALANCED),  # the newer field wins
    ],
)
def test_control_mode_reading(raw, mode):
    assert parse_control_mode(raw, "u") == mode


@pytest.mark.parametrize(
    ("raw", "field"), [({"control_mode": 3}, "u.control_mode"), ({"guessmode": "yes"}, "u.guessmode")]
)
def test_bad_control_mode_names_the_field(raw, field):
    with pytest.raises(InvalidRequest) as info:
        parse_control_mode(raw, "u")
    assert info.value.field == field


def test_pixel_perfect_resolution_follows_the_resize_mode():
    image = Image.new("RGB", (64, 48))  # short side 48; to 128x96 both factors are 2
    assert pixel_perfect_resolution(image, 128, 96, "crop") == 96
    image = Image.new("RGB", (100, 50))  # factors: width 1.28, height 2.56
    assert pixel_perfect_resolution(image, 128, 128, "crop") == 128  # 2.56 * 50
    assert pixel_perfect_resolution(image, 128, 128, "fill") == 64  # 1.28 * 50
    assert pixel_perfect_resolution(image, 128, 128, "just_resize") == 128


def test_unit_without_image_takes_the_init_image_or_is_refused():
    (parsed,) = parse_units({"args": [{"model": "m", "module": "canny", "pixel_perfect": True}]})
    assert parsed.from_init_image and parsed.image is None and parsed.pixel_perfect
    with pytest.raises(InvalidRequest) as info:
        resolve_image(parsed, None)
    assert info.value.field == "alwayson_scripts.controlnet.args.0.input_image"
    assert "no input image is given" in info.value.message
    init = Image.new("RGB", (40, 30), (200, 10, 10))
    resolve_image(parsed, init)
    assert parsed.image.size == (40, 30) and parsed.resize_mode == "just_resize"
    with pytest.raises(InvalidRequest, match="true or false"):
        parse_units({"args": [{"model": "m", "input_image": None, "pixel_perfect": "on"}]})
