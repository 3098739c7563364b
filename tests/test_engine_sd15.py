"""SD1.5 through the engine: folder and single file, determinism, equality with diffusers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.saving import parse_infotext, read_infotext
from plugin_api import GenerationRequest


def tiny_request(**overrides) -> GenerationRequest:
    values = dict(prompt="a red circle", negative_prompt="blurry", seed=42, steps=3, width=64, height=64)
    values.update(overrides)
    return GenerationRequest(**values)


def test_folder_model_generates_and_writes_infotext(engine):
    result = engine.generate(tiny_request(model="tiny-sd15", sampler="Euler a"))
    assert len(result.images) == 1 and len(result.paths) == 1
    assert result.images[0].size == (64, 64)
    params = parse_infotext(read_infotext(result.paths[0]))
    assert params["Prompt"] == "a red circle"
    assert params["Negative prompt"] == "blurry"
    assert params["Steps"] == "3" and params["Sampler"] == "Euler a" and params["Seed"] == "42"
    assert params["Size-1"] == "64" and params["Size-2"] == "64"
    assert params["Model"] == "tiny-sd15"
    assert params["Model hash"] == engine.models.info("tiny-sd15").hash


def test_single_file_detected_and_weights_equal_folder(engine, tiny_sd15_file):
    info = engine.models.info("tiny-sd15-file")
    assert (info.family, info.format) == ("sd15", "safetensors")
    from_file = engine.models.get("tiny-sd15-file")
    from_folder = engine.models.get("tiny-sd15")
    for name in ("unet", "vae", "text_encoder"):
        a = from_file.components[name].state_dict()
        b = from_folder.components[name].state_dict()
        assert a.keys() == b.keys(), name
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key}"
    image_file = engine.generate(tiny_request(model="tiny-sd15-file", save_images=False)).images[0]
    image_folder = engine.generate(tiny_request(model="tiny-sd15", save_images=False)).images[0]
    assert np.array_equal(np.asarray(image_file), np.asarray(image_folder))


def test_same_seed_same_image_other_seed_differs(engine):
    a = engine.generate(tiny_request(model="tiny-sd15", save_images=False)).images[0]
    b = engine.generate(tiny_request(model="tiny-sd15", save_images=False)).images[0]
    c = engine.generate(tiny_request(model="tiny-sd15", seed=43, save_images=False)).images[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.parametrize(
    ("sampler", "scheduler_class", "options"),
    [
        ("Euler", "EulerDiscreteScheduler", {}),
        # A1111 1.10's "Automatic" schedule for DPM++ 2M is Karras (its sampler options)
        (
            "DPM++ 2M",
            "DPMSolverMultistepScheduler",
            {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
        ),
    ],
)
def test_matches_diffusers_pipeline(engine, sampler, scheduler_class, options):
    import diffusers

    model = engine.models.get("tiny-sd15")
    c = model.components
    scheduler = getattr(diffusers, scheduler_class).from_config(c["scheduler"].config, **options)
    pipe = diffusers.StableDiffusionPipeline(
        vae=c["vae"],
        text_encoder=c["text_encoder"],
        tokenizer=c["tokenizer"],
        unet=c["unet"],
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    request = tiny_request(model="tiny-sd15", sampler=sampler, batch_size=2, save_images=False, steps=4)
    ours = engine.generate(request)
    expected = pipe(
        "a red circle",
        negative_prompt="blurry",
        num_inference_steps=4,
        guidance_scale=7.0,
        height=64,
        width=64,
        num_images_per_prompt=2,
        generator=[torch.Generator("cpu").manual_seed(42 + i) for i in range(2)],
        output_type="np",
    ).images
    assert ours.seeds == [42, 43]
    for index in range(2):
        got = np.asarray(ours.images[index], dtype=np.float32) / 255.0
        assert np.abs(got - expected[index]).max() <= 1.5 / 255.0


def test_clip_skip_changes_the_image_and_is_recorded(engine):
    plain = engine.generate(tiny_request(model="tiny-sd15", save_images=False))
    skipped = engine.generate(tiny_request(model="tiny-sd15", clip_skip=2, save_images=False))
    assert not np.array_equal(np.asarray(plain.images[0]), np.asarray(skipped.images[0]))
    assert "Clip skip: 2" in skipped.infotexts[0] and "Clip skip" not in plain.infotexts[0]


def test_model_cache_is_lru_bounded(host):
    from core.models.manager import ModelManager

    manager = ModelManager(host.settings, cache_budget_bytes=1)  # room for one model only
    first, fresh = manager.acquire("tiny-sd15")
    assert fresh and manager.acquire("tiny-sd15") == (first, False)
    manager.acquire("tiny-sd15-file")
    assert manager.is_loaded("tiny-sd15-file") and not manager.is_loaded("tiny-sd15")
    assert manager.load_count == 2


def test_a_folder_model_defaults_to_the_size_its_unet_was_made_for(engine):
    # tiny-sd15's UNet has sample_size 8 and its VAE downsamples 8x: 64x64, not SD1.5's 512
    assert engine.models.info("tiny-sd15").native_size == 64
    checked = engine.validate(GenerationRequest(prompt="x", model="tiny-sd15"))
    assert (checked.width, checked.height) == (64, 64)
    assert engine.validate(GenerationRequest(prompt="x", model="tiny-sd15", width=128)).width == 128
