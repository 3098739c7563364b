"""Qwen-Image through the engine: detection, listing, equality with diffusers' pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from plugin_api import GenerationRequest
from tests.qwen_image_files import make_tiny_qwen_image

# the smallest size requests allow (the tiny VAE downsamples 4x, the transformer packs 2x2)
SIZE = 64


@pytest.fixture(scope="module")
def qwen_engine(tmp_path_factory):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("qwen-models")
    make_tiny_qwen_image(root / "Stable-diffusion" / "tiny-qwen-image")
    settings = Settings(
        models_dir=root, data_dir=tmp_path_factory.mktemp("data"), safe_mode=True, device="cpu"
    )
    host = Host(settings).start()
    yield Engine(host)
    host.stop()


def request(**overrides) -> GenerationRequest:
    values = dict(prompt="a red circle", negative_prompt="blurry", seed=7, steps=3, width=SIZE, height=SIZE)
    values.update(overrides)
    return GenerationRequest(**values)


def test_listing_names_the_family(qwen_engine):
    infos = {i.name: i for i in qwen_engine.models.list()}
    info = infos["tiny-qwen-image"]
    assert (info.family, info.format) == ("qwen_image", "diffusers")
    assert info.size > 0


@pytest.mark.slow
@pytest.mark.parametrize("cfg_scale", [1.0, 4.0])
def test_qwen_image_matches_diffusers_pipeline(qwen_engine, cfg_scale):
    import diffusers

    model = qwen_engine.models.get("tiny-qwen-image")
    components = dict(model.components)
    components["scheduler"] = diffusers.FlowMatchEulerDiscreteScheduler.from_config(
        components["scheduler"].config
    )
    pipe = diffusers.QwenImagePipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        "a red circle",
        negative_prompt="blurry",
        true_cfg_scale=cfg_scale,
        num_inference_steps=3,
        height=SIZE,
        width=SIZE,
        generator=torch.Generator("cpu").manual_seed(7),
        output_type="np",
    ).images[0]
    ours = qwen_engine.generate(request(model="tiny-qwen-image", cfg_scale=cfg_scale, save_images=False))
    assert ours.parameters["sampler"] == "Euler"
    got = np.asarray(ours.images[0], dtype=np.float32) / 255.0
    # 8-bit rounding of the same floats: at most one level apart
    assert np.abs(got - expected).max() <= 1.5 / 255.0
