"""img2img and inpainting with an ordinary (4-channel) SD1.5 model against diffusers'
``StableDiffusionImg2ImgPipeline`` and ``StableDiffusionInpaintPipeline`` on the same
weights, seed, prompt and Euler schedule.

Inside the sampling loop diffusers' inpaint pipeline does what A1111 does for a 4-channel
model: after every step the unmasked area is put back on the init image's noise schedule,
``(1 - mask) * noised_init + mask * latents``. The final paste-back of the original pixels
hides a reversed mask outside the mask, so the test compares the repainted area too.

What makes the comparison exact (as in tests/test_inpaint_models.py):
- the tiny VAE's posterior is a point (log-variance -30): diffusers draws the VAE sample
  from the noise generator, Easel (as A1111) from its own;
- the reference is given the starting noise Easel draws for the seed (patched
  ``randn_tensor``: diffusers draws it after the VAE sample, from the same generator);
- the latent mask: Easel (as A1111) scales the mask to latent size with a smooth filter,
  diffusers with nearest-neighbour after binarising it. The reference gets Easel's latent
  mask values, one per 8x8 block, with binarising off; the blending itself is diffusers'.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from PIL import Image

from plugin_api import GenerationRequest
from tests import tiny_models

PROMPT, NEGATIVE, SEED, STEPS, CFG, SIZE, STRENGTH = "a red circle", "blurry", 11, 4, 7.0, 64, 0.75
TOLERANCE = 2  # of 255: one 8-bit level after rounding plus float summation order


@pytest.fixture(scope="module")
def point_vae_model(tmp_path_factory):
    """A tiny 4-channel SD1.5 diffusers folder whose VAE posterior is a point, and an
    engine on a models folder that holds it."""
    from diffusers import StableDiffusionPipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("img2img-reference")
    components = tiny_models.tiny_sd15_components(0)
    quant = components["vae"].quant_conv  # rows 4..7 give the log-variance
    with torch.no_grad():
        quant.weight[4:] = 0.0
        quant.bias[4:] = -30.0
    folder = root / "models" / "Stable-diffusion" / "tiny-point-vae"
    StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).save_pretrained(str(folder))
    host = Host(
        Settings(data_dir=root / "data", models_dir=root / "models", safe_mode=True, device="cpu")
    ).start()
    yield Engine(host), folder
    host.stop()


def image_and_mask() -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (16, 8, 48, 40))
    return image, mask


def easel_noise(shape: tuple) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(SEED), dtype=torch.float32)


def reference(folder, pipeline_class: str, monkeypatch, **inputs) -> np.ndarray:
    import diffusers
    from diffusers.image_processor import VaeImageProcessor

    module = importlib.import_module(getattr(diffusers, pipeline_class).__module__)
    monkeypatch.setattr(module, "randn_tensor", lambda shape, **_: easel_noise(tuple(shape)))
    loaded = diffusers.StableDiffusionPipeline.from_pretrained(
        str(folder), local_files_only=True, safety_checker=None, feature_extractor=None
    )
    pipe = getattr(diffusers, pipeline_class)(**loaded.components)
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    if hasattr(pipe, "mask_processor"):
        pipe.mask_processor = VaeImageProcessor(
            vae_scale_factor=pipe.vae_scale_factor, do_normalize=False, do_binarize=False
        )
    out = pipe(
        PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=CFG,
        strength=STRENGTH, generator=torch.Generator("cpu").manual_seed(SEED), output_type="pil", **inputs,
    ).images[0]  # fmt: skip
    return np.asarray(out, dtype=np.int16)


def easel_latent_mask_blocks(mask: Image.Image) -> torch.Tensor:
    """The latent mask Easel samples with (core/sampling/img2img.py), one value per 8x8
    pixel block, as a (1, 1, H, W) float mask diffusers' nearest-neighbour resize keeps."""
    small = mask.resize((SIZE // 8, SIZE // 8), Image.Resampling.BILINEAR)
    values = torch.from_numpy(np.asarray(small, dtype=np.float32) / 255.0)
    return values.repeat_interleave(8, 0).repeat_interleave(8, 1).reshape(1, 1, SIZE, SIZE)


def easel_image(engine, **extra) -> np.ndarray:
    request = GenerationRequest(
        prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, cfg_scale=CFG, width=SIZE,
        height=SIZE, sampler="Euler", model="tiny-point-vae", denoising_strength=STRENGTH,
        save_images=False, **extra,
    )  # fmt: skip
    return np.asarray(engine.generate(request).images[0], dtype=np.int16)


def test_img2img_equals_diffusers_img2img_pipeline(point_vae_model, monkeypatch):
    engine, folder = point_vae_model
    image, _ = image_and_mask()
    ours = easel_image(engine, init_image=image)
    expected = reference(folder, "StableDiffusionImg2ImgPipeline", monkeypatch, image=image)
    assert np.abs(ours - expected).max() <= TOLERANCE


def test_inpaint_equals_diffusers_inpaint_pipeline_inside_and_outside_the_mask(point_vae_model, monkeypatch):
    engine, folder = point_vae_model
    image, mask = image_and_mask()
    ours = easel_image(engine, init_image=image, mask=mask, mask_blur=0, inpainting_fill=1)
    generated = reference(
        folder, "StableDiffusionInpaintPipeline", monkeypatch,
        image=image, mask_image=easel_latent_mask_blocks(mask), height=SIZE, width=SIZE,
    )  # fmt: skip
    inside = np.asarray(mask) > 127
    # the repainted area: diffusers' loop with the same latent mask
    assert np.abs(ours[inside] - generated[inside]).max() <= TOLERANCE
    # outside: the original pixels, exactly (A1111's and diffusers' apply_overlay)
    assert np.array_equal(ours[~inside], np.asarray(image, dtype=np.int16)[~inside])
    # and the repainted area is not the original's (a test image far from the model's)
    assert np.abs(ours[inside] - np.asarray(image, dtype=np.int16)[inside]).mean() > 20


# --- A1111's "Masked content" (inpainting_fill) -----------------------------------------


def test_fill_paints_the_masked_area_with_the_colours_around_it():
    from core.sampling.img2img import fill_masked_area

    image = Image.new("RGB", (SIZE, SIZE), (200, 30, 10))
    image.paste((0, 0, 255), (16, 16, 48, 48))  # blue only under the mask
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (16, 16, 48, 48))
    filled = np.asarray(fill_masked_area(image, mask), dtype=np.int16)
    inside = np.asarray(mask) > 127
    assert np.array_equal(filled[~inside], np.asarray(image, dtype=np.int16)[~inside])
    # no blue left: every masked pixel is the surrounding red, up to the rounding of
    # 8-bit premultiplied alpha where the blurred alpha is small (measured: 5 levels)
    assert np.abs(filled[inside] - np.array([200, 30, 10])).max() <= 6


def image_latents(folder, image: Image.Image) -> torch.Tensor:
    """The init image's latents as diffusers' VAE makes them (the point posterior's mean)."""
    import diffusers
    from diffusers.image_processor import VaeImageProcessor

    vae = diffusers.AutoencoderKL.from_pretrained(str(folder), subfolder="vae")
    pixels = VaeImageProcessor(vae_scale_factor=8).preprocess(image)
    with torch.no_grad():
        return vae.encode(pixels).latent_dist.mean * vae.config.scaling_factor


@pytest.mark.parametrize("fill", [0, 2, 3], ids=["fill", "latent-noise", "latent-nothing"])
def test_masked_content_modes_are_a1111s(point_vae_model, monkeypatch, fill):
    """Each mode against diffusers' inpaint pipeline started from A1111's definition of it:
    fill -> the filled image; latent noise -> init latents * (1 - m) + seed noise * m;
    latent nothing -> init latents * (1 - m) (m: the latent mask)."""
    from core.sampling.img2img import fill_masked_area

    engine, folder = point_vae_model
    image, mask = image_and_mask()
    ours = easel_image(engine, init_image=image, mask=mask, mask_blur=0, inpainting_fill=fill)
    blocks = easel_latent_mask_blocks(mask)
    extra = {}
    if fill == 0:
        start = fill_masked_area(image, mask)
    else:
        latents = image_latents(folder, image)
        m = blocks[:, :, ::8, ::8]
        start = latents * (1 - m) + (easel_noise(tuple(latents.shape)) * m if fill == 2 else 0)
        # given latents, diffusers cannot mask them at pixel size; a 4-channel UNet never
        # reads the masked image anyway (only a 9-channel inpainting UNet does)
        extra["masked_image_latents"] = start
    generated = reference(
        folder, "StableDiffusionInpaintPipeline", monkeypatch,
        image=start, mask_image=blocks, height=SIZE, width=SIZE, **extra,
    )  # fmt: skip
    inside = np.asarray(mask) > 127
    assert np.abs(ours[inside] - generated[inside]).max() <= TOLERANCE
    assert np.array_equal(ours[~inside], np.asarray(image, dtype=np.int16)[~inside])
    # and the mode is applied, not accepted and ignored: "original" paints something else
    original = easel_image(engine, init_image=image, mask=mask, mask_blur=0, inpainting_fill=1)
    assert np.abs(original[inside] - generated[inside]).max() > 8 * TOLERANCE
