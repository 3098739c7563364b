"""SDXL and Z-Image through the engine: detection, single files, equality with diffusers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.saving import parse_infotext, read_infotext
from plugin_api import GenerationRequest


def request(**overrides) -> GenerationRequest:
    values = dict(prompt="a red circle", negative_prompt="blurry", seed=7, steps=3, width=64, height=64)
    values.update(overrides)
    return GenerationRequest(**values)


def as_float(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


def test_listing_detects_every_family_and_format(engine):
    infos = {i.name: i for i in engine.models.list()}
    expected = {
        "tiny-sd15": ("sd15", "diffusers"),
        "tiny-sd15-file": ("sd15", "safetensors"),
        "tiny-sdxl": ("sdxl", "diffusers"),
        "tiny-sdxl-file": ("sdxl", "safetensors"),
        "tiny-zimage": ("zimage", "diffusers"),
        "tiny-zimage-file": ("zimage", "safetensors"),
    }
    for name, (family, fmt) in expected.items():
        assert (infos[name].family, infos[name].format) == (family, fmt), name
        assert len(infos[name].hash) == 10 and infos[name].size > 0


def test_sdxl_single_file_equals_folder_and_matches_diffusers(engine):
    import diffusers

    folder = engine.generate(request(model="tiny-sdxl", sampler="Euler", save_images=False))
    single = engine.generate(request(model="tiny-sdxl-file", sampler="Euler", save_images=False))
    # equal weights; the pooled projection may differ in the last float bit (the single
    # file stores it transposed, so the matmul sums in another order)
    assert np.abs(as_float(folder.images[0]) - as_float(single.images[0])).max() <= 1.5 / 255.0

    model = engine.models.get("tiny-sdxl")
    components = dict(model.components)
    components["scheduler"] = diffusers.EulerDiscreteScheduler.from_config(components["scheduler"].config)
    pipe = diffusers.StableDiffusionXLPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        "a red circle",
        negative_prompt="blurry",
        num_inference_steps=3,
        guidance_scale=6.0,
        height=64,
        width=64,
        generator=[torch.Generator("cpu").manual_seed(7)],
        output_type="np",
    ).images[0]
    ours = engine.generate(request(model="tiny-sdxl", sampler="Euler", cfg_scale=6.0, save_images=False))
    assert np.abs(as_float(ours.images[0]) - expected).max() <= 1.5 / 255.0


@pytest.mark.parametrize(("cfg_scale", "guidance_scale"), [(1.0, 0.0), (3.0, 2.0)])
def test_zimage_matches_diffusers_pipeline(engine, cfg_scale, guidance_scale):
    import diffusers

    model = engine.models.get("tiny-zimage")
    components = dict(model.components)
    components["scheduler"] = diffusers.FlowMatchEulerDiscreteScheduler.from_config(
        components["scheduler"].config
    )
    pipe = diffusers.ZImagePipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        "a red circle",
        negative_prompt="blurry",
        num_inference_steps=3,
        guidance_scale=guidance_scale,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(7),
        output_type="np",
    ).images[0]
    ours = engine.generate(request(model="tiny-zimage", cfg_scale=cfg_scale, save_images=False))
    assert ours.parameters["sampler"] == "Euler"
    assert np.abs(as_float(ours.images[0]) - expected).max() <= 1.5 / 255.0


def test_zimage_single_file_equals_folder_and_writes_metadata(engine):
    folder = engine.generate(request(model="tiny-zimage", save_images=False))
    single = engine.generate(request(model="tiny-zimage-file"))
    assert np.array_equal(np.asarray(folder.images[0]), np.asarray(single.images[0]))
    params = parse_infotext(read_infotext(single.paths[0]))
    assert params["Model"] == "tiny-zimage-file" and params["Sampler"] == "Euler"
    assert params["CFG scale"] == "1"


def test_family_defaults_fill_the_request(engine):
    zimage = engine.validate(GenerationRequest(prompt="x", model="tiny-zimage"))
    assert (zimage.steps, zimage.cfg_scale, zimage.sampler, zimage.width) == (8, 1.0, "Euler", 1024)
    # folders with a UNet default to the size it was made for (tiny: 64), not the family's
    sdxl = engine.validate(GenerationRequest(prompt="x", model="tiny-sdxl"))
    assert (sdxl.width, sdxl.height) == (64, 64) == (engine.models.info("tiny-sdxl").native_size,) * 2
    # the family's "DPM++ 2M Karras" is read as A1111 1.10 reads it: sampler + schedule type
    assert (sdxl.steps, sdxl.cfg_scale, sdxl.sampler, sdxl.scheduler) == (25, 6.0, "DPM++ 2M", "Karras")
    sd15 = engine.validate(GenerationRequest(prompt="x", model="tiny-sd15"))
    assert (sd15.width, sd15.steps, sd15.sampler) == (64, 20, "Euler a")
    # single files carry no UNet config: the family's real size
    sd15_file = engine.validate(GenerationRequest(prompt="x", model="tiny-sd15-file"))
    assert (sd15_file.width, sd15_file.height) == (512, 512)
    assert "Euler" in engine.sampler_names("zimage") and "DPM++ 2M" not in engine.sampler_names("zimage")
    assert "DPM++ 2M" in engine.sampler_names("sd15")
