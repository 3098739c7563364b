"""A float16 SDXL VAE that overflows: upcast where its config says ``force_upcast`` (as
diffusers' StableDiffusionXLPipeline), else a NaN check that decodes again in float32 and
says so in the result's warnings (A1111's automatic VAE precision).

Easel loads models in float32 on a CPU, so the test loads the whole tiny SDXL model in
float16 (as on a GPU without bfloat16; slow on a CPU but tiny here). Its VAE's decoder
input convolution is scaled by 1e5: the following GroupNorms cancel the scale in float32,
while float16 overflows to inf and NaN, the failure the real SDXL VAE shows in float16.
The reference is diffusers' pipeline on the same float16 components and seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import Settings
from core.sampling.vae_precision import NAN_RETRY_WARNING
from plugin_api import GenerationRequest
from tests import tiny_models

# one 8-bit level after rounding plus summation-order noise
TOLERANCE = 1.5 / 255.0


def overflowing_sdxl(folder: Path, force_upcast: bool) -> Path:
    from diffusers import StableDiffusionXLPipeline

    components = tiny_models.tiny_sdxl_components()
    vae = components["vae"]
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(1e5)
        vae.decoder.conv_in.bias.mul_(1e5)
    vae.register_to_config(force_upcast=force_upcast)
    StableDiffusionXLPipeline(**components).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def fp16_engine(tmp_path_factory):
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("vae-fp16")
    overflowing_sdxl(root / "models" / "Stable-diffusion" / "xl-upcast", force_upcast=True)
    overflowing_sdxl(root / "models" / "Stable-diffusion" / "xl-nan", force_upcast=False)
    host = Host(
        Settings(data_dir=root / "data", models_dir=root / "models", safe_mode=True, device="cpu")
    ).start()
    engine = Engine(host)
    engine.models.dtype = torch.float16  # what pick_dtype gives a GPU without bfloat16
    yield engine
    host.stop()


def generate(engine, model: str):
    request = GenerationRequest(
        prompt="a red circle", negative_prompt="blurry", seed=4, steps=3, cfg_scale=6.0,
        width=64, height=64, model=model, sampler="Euler", save_images=False,
    )  # fmt: skip
    result = engine.generate(request)
    return np.asarray(result.images[0], dtype=np.float32) / 255.0, result


def diffusers_reference(engine) -> np.ndarray:
    import diffusers

    components = dict(engine.models.get("xl-upcast").components)
    assert components["vae"].dtype == torch.float16 and components["vae"].config.force_upcast
    components["scheduler"] = diffusers.EulerDiscreteScheduler.from_config(components["scheduler"].config)
    pipe = diffusers.StableDiffusionXLPipeline(**components)
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        "a red circle", negative_prompt="blurry", num_inference_steps=3, guidance_scale=6.0,
        height=64, width=64, generator=torch.Generator("cpu").manual_seed(4), output_type="np",
    ).images[0]  # fmt: skip


def test_the_vae_really_overflows_in_float16(fp16_engine):
    vae = fp16_engine.models.get("xl-upcast").components["vae"]
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)).half()
    with torch.inference_mode():
        assert not torch.isfinite(vae.decode(latents / vae.config.scaling_factor).sample).all()


def test_force_upcast_decodes_in_float32_as_diffusers(fp16_engine):
    ours, result = generate(fp16_engine, "xl-upcast")
    assert result.warnings == []
    assert fp16_engine.models.get("xl-upcast").components["vae"].dtype == torch.float16  # back after decoding
    expected = diffusers_reference(fp16_engine)
    assert np.isfinite(expected).all() and expected.std() > 0.01
    assert np.abs(ours - expected).max() <= TOLERANCE


def test_nan_in_float16_is_decoded_again_in_float32_and_reported(fp16_engine):
    ours, result = generate(fp16_engine, "xl-nan")
    assert result.warnings == [NAN_RETRY_WARNING.format(dtype="float16")]
    assert fp16_engine.models.get("xl-nan").components["vae"].dtype == torch.float32  # stays, as A1111
    # same weights as xl-upcast: the retried image is diffusers' upcast image
    assert np.abs(ours - diffusers_reference(fp16_engine)).max() <= TOLERANCE
    again, second = generate(fp16_engine, "xl-nan")
    assert second.warnings == [] and np.array_equal(again, ours)
