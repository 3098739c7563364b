"""SDXL with an empty negative prompt uses zero negative embeddings, as A1111
(``force_zero_negative_prompt`` in modules/sd_models_xl.py) and diffusers
(``force_zeros_for_empty_prompt``) do; a non-empty negative is encoded as usual.

The reference is diffusers' StableDiffusionXLPipeline on the same tiny weights and seed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.builtin_settings import FORCE_ZERO_NEGATIVE_PROMPT
from plugin_api import GenerationRequest

# one 8-bit level after rounding plus float summation-order noise
TOLERANCE = 1.5 / 255.0


def as_float(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


def diffusers_sdxl(engine, negative_prompt: str | None, force_zeros: bool = True) -> np.ndarray:
    import diffusers

    components = dict(engine.models.get("tiny-sdxl").components)
    components["scheduler"] = diffusers.EulerDiscreteScheduler.from_config(components["scheduler"].config)
    pipe = diffusers.StableDiffusionXLPipeline(**components, force_zeros_for_empty_prompt=force_zeros)
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        "a red circle",
        negative_prompt=negative_prompt,
        num_inference_steps=4,
        guidance_scale=6.0,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(5),
        output_type="np",
    ).images[0]


def easel_sdxl(engine, negative_prompt: str) -> np.ndarray:
    request = GenerationRequest(
        prompt="a red circle", negative_prompt=negative_prompt, seed=5, steps=4, cfg_scale=6.0,
        width=64, height=64, model="tiny-sdxl", sampler="Euler", save_images=False,
    )  # fmt: skip
    return as_float(engine.generate(request).images[0])


def test_setting_is_registered_on_by_default(host):
    assert host.get_setting(FORCE_ZERO_NEGATIVE_PROMPT) is True
    assert host.setting_specs.owner(FORCE_ZERO_NEGATIVE_PROMPT) == "builtin.builtin_settings"


def test_empty_negative_equals_diffusers_zero_negative(engine):
    # diffusers zeroes the negative when none is given (negative_prompt=None)
    expected = diffusers_sdxl(engine, negative_prompt=None)
    ours = easel_sdxl(engine, "")
    assert np.abs(ours - expected).max() <= TOLERANCE
    # and that is not what encoding "" gives: the test can tell the two apart
    encoded_empty = diffusers_sdxl(engine, negative_prompt="")
    assert np.abs(encoded_empty - expected).max() > 10 * TOLERANCE


@pytest.mark.parametrize("negative", ["blurry", " "])
def test_non_empty_negative_equals_diffusers(engine, negative):
    expected = diffusers_sdxl(engine, negative_prompt=negative)
    assert np.abs(easel_sdxl(engine, negative) - expected).max() <= TOLERANCE


def test_setting_off_encodes_the_empty_negative(make_host):
    from core.engine import Engine

    host = make_host()
    host.set_setting(FORCE_ZERO_NEGATIVE_PROMPT, False)
    engine = Engine(host)
    expected = diffusers_sdxl(engine, negative_prompt="", force_zeros=False)
    assert np.abs(easel_sdxl(engine, "") - expected).max() <= TOLERANCE


def test_sd15_empty_negative_still_encodes_empty_text(engine):
    """A1111 and diffusers zero only SDXL's empty negative; SD1.5 encodes ""."""
    import diffusers

    c = engine.models.get("tiny-sd15").components
    pipe = diffusers.StableDiffusionPipeline(
        **{k: c[k] for k in ("vae", "text_encoder", "tokenizer", "unet")},
        scheduler=diffusers.EulerDiscreteScheduler.from_config(c["scheduler"].config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        "a red circle", num_inference_steps=4, guidance_scale=7.0, height=64, width=64,
        generator=torch.Generator("cpu").manual_seed(5), output_type="np",
    ).images[0]  # fmt: skip
    request = GenerationRequest(
        prompt="a red circle", negative_prompt="", seed=5, steps=4, cfg_scale=7.0,
        width=64, height=64, model="tiny-sd15", sampler="Euler", save_images=False,
    )  # fmt: skip
    assert np.abs(as_float(engine.generate(request).images[0]) - expected).max() <= TOLERANCE
