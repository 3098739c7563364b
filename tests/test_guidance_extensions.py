"""The bundled CFG rescale and FreeU extensions (built on after_cfg and patch_denoiser)
against diffusers' own implementations, on the tiny SD1.5 model: the same components,
seeds, prompts and Euler scheduler, run by ``StableDiffusionPipeline(guidance_rescale=)``
and ``pipe.enable_freeu(...)``.

Tolerance: 1.5/255 per pixel, as tests/test_engine_sd15.py's plain comparison (the two
loops order a few float operations differently)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.errors import RequestError
from core.saving import parse_infotext
from plugin_api import GenerationRequest

TOLERANCE = 1.5 / 255.0
FREEU = {"b1": 1.5, "b2": 1.6, "s1": 0.9, "s2": 0.2}  # diffusers' suggested SD1.5 values


@pytest.fixture(scope="module")
def pipe(engine):
    import diffusers

    c = engine.models.get("tiny-sd15").components
    pipe = diffusers.StableDiffusionPipeline(
        vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
        scheduler=diffusers.EulerDiscreteScheduler.from_config(c["scheduler"].config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _diffusers(pipe, cfg: float = 9.0, **kwargs) -> np.ndarray:
    with torch.inference_mode():
        return pipe(
            "a red circle", negative_prompt="blurry", num_inference_steps=6, guidance_scale=cfg,
            height=64, width=64, num_images_per_prompt=2,
            generator=[torch.Generator("cpu").manual_seed(42 + i) for i in range(2)],
            output_type="np", **kwargs,
        ).images  # fmt: skip


def _easel(engine, cfg: float = 9.0, **extension_args):
    request = GenerationRequest(
        prompt="a red circle", negative_prompt="blurry", seed=42, steps=6, cfg_scale=cfg, width=64,
        height=64, batch_size=2, model="tiny-sd15", sampler="Euler", save_images=False,
        extension_args=extension_args,
    )  # fmt: skip
    result = engine.generate(request)
    return result, np.stack([np.asarray(image, dtype=np.float32) / 255.0 for image in result.images])


def test_extensions_are_loaded(engine):
    records = engine.host.extensions.records
    assert records["cfg_rescale"].state == "loaded", records["cfg_rescale"].error
    assert records["freeu"].state == "loaded", records["freeu"].error


def test_cfg_rescale_matches_diffusers_guidance_rescale(engine, pipe):
    # at CFG 30 (the most the host takes) the rescale shows on this random tiny model: at
    # 9 its cond and uncond predictions are too alike for the spread to change much
    expected = _diffusers(pipe, 30.0, guidance_rescale=0.7)
    # the rescale must matter here, or the comparison would prove nothing
    assert np.abs(expected - _diffusers(pipe, 30.0)).max() > 10 / 255.0
    result, ours = _easel(engine, 30.0, cfg_rescale={"multiplier": 0.7})
    assert np.abs(ours - expected).max() <= TOLERANCE
    assert parse_infotext(result.infotexts[0])["CFG Rescale"] == "0.7"
    # A1111's alwayson_scripts shape gives the same image
    _, again = _easel(engine, 30.0, cfg_rescale={"args": [0.7]})
    assert np.array_equal(again, ours)


def test_freeu_matches_diffusers_enable_freeu(engine, pipe):
    plain = _diffusers(pipe)
    pipe.enable_freeu(**FREEU)
    try:
        expected = _diffusers(pipe)
    finally:
        pipe.disable_freeu()
    assert np.abs(expected - plain).max() > 10 / 255.0
    result, ours = _easel(engine, freeu=FREEU)
    assert np.abs(ours - expected).max() <= TOLERANCE
    assert parse_infotext(result.infotexts[0])["FreeU"] == "b1=1.5, b2=1.6, s1=0.9, s2=0.2"
    # the patch lived for that request only: the next one is the plain image
    _, after = _easel(engine)
    assert np.abs(after - plain).max() <= TOLERANCE
    unet = engine.models.get("tiny-sd15").components["unet"]
    assert not any(m._forward_pre_hooks for m in unet.modules())


def test_both_together_and_with_hires(engine):
    result, _ = _easel(engine, freeu=FREEU, cfg_rescale=0.5)
    params = parse_infotext(result.infotexts[0])
    assert params["CFG Rescale"] == "0.5" and params["FreeU"].startswith("b1=1.5")
    assert result.warnings == []


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"cfg_rescale": {"multiplier": 1.5}}, "extension_args.cfg_rescale.multiplier"),
        ({"cfg_rescale": {"multiplier": "high"}}, "extension_args.cfg_rescale.multiplier"),
        ({"cfg_rescale": {"args": [float("nan")]}}, "extension_args.cfg_rescale.args.0"),
        ({"cfg_rescale": {"strength": 0.5}}, "extension_args.cfg_rescale"),
        ({"freeu": {"b1": 1.5}}, "extension_args.freeu"),
        ({"freeu": {"args": [1.5, 1.6, 0.9, -1]}}, "extension_args.freeu.args.3"),
        ({"freeu": {**FREEU, "s2": True}}, "extension_args.freeu.s2"),
        ({"freeu": "on"}, "extension_args.freeu"),
    ],
)
def test_bad_arguments_name_the_field(engine, args, field):
    with pytest.raises(RequestError) as caught:
        engine.validate(GenerationRequest(prompt="x", model="tiny-sd15", extension_args=args))
    assert caught.value.field == field


def test_freeu_refuses_a_model_without_a_unet(engine):
    with pytest.raises(RequestError) as caught:
        engine.validate(GenerationRequest(prompt="x", model="tiny-zimage", extension_args={"freeu": FREEU}))
    assert caught.value.field == "extension_args.freeu" and "UNet" in str(caught.value)
