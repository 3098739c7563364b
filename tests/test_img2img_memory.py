"""img2img and inpainting (out-of-memory fallbacks: tests/test_memory_modes.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.saving import parse_infotext, read_infotext
from plugin_api import GenerationRequest


def init_picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))


def test_img2img_writes_to_img2img_folder(engine):
    steps_seen = []
    result = engine.generate(
        GenerationRequest(
            prompt="x",
            seed=2,
            steps=4,
            width=64,
            height=64,
            model="tiny-sd15",
            init_image=init_picture(),
            denoising_strength=0.5,
        ),
        on_progress=lambda e: e.phase == "sampling" and steps_seen.append(e.total_steps),
    )
    assert "img2img-images" in result.paths[0]
    assert set(steps_seen) == {2}  # strength 0.5 of 4 steps
    assert parse_infotext(read_infotext(result.paths[0]))["Denoising strength"] == "0.5"


@pytest.mark.parametrize("only_masked", [False, True])
def test_inpainting_keeps_unmasked_pixels(engine, only_masked):
    original = init_picture()
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 16, 56, 48))
    result = engine.generate(
        GenerationRequest(
            prompt="x",
            seed=2,
            steps=2,
            width=64,
            height=64,
            model="tiny-sd15",
            init_image=original,
            mask=mask,
            mask_blur=0,
            denoising_strength=1.0,
            inpaint_full_res=only_masked,
            inpaint_full_res_padding=4,
            save_images=False,
        )
    )
    out = np.asarray(result.images[0])
    keep = np.asarray(mask) == 0
    assert np.array_equal(out[keep], np.asarray(original)[keep])
    assert not np.array_equal(out[~keep], np.asarray(original)[~keep])


def test_zimage_img2img_uses_the_flow_schedule(engine):
    totals = []
    result = engine.generate(
        GenerationRequest(
            prompt="x",
            seed=2,
            steps=4,
            width=64,
            height=64,
            model="tiny-zimage",
            init_image=init_picture(),
            denoising_strength=0.5,
            save_images=False,
        ),
        on_progress=lambda e: e.phase == "sampling" and totals.append(e.total_steps),
    )
    assert set(totals) == {2} and result.images[0].size == (64, 64)
    kept = engine.generate(
        GenerationRequest(
            prompt="x",
            seed=2,
            steps=4,
            width=64,
            height=64,
            model="tiny-zimage",
            init_image=init_picture(),
            denoising_strength=0.0,
            save_images=False,
        )
    )
    # strength 0 runs no step: the image is the init image's VAE round trip
    from core.sampling.img2img import pil_to_tensor, tensor_to_pil

    model = engine.models.get("tiny-zimage")
    with torch.inference_mode():
        latents = model.adapter.encode_image(
            model.components, pil_to_tensor(init_picture()), torch.Generator("cpu").manual_seed(2)
        )
        expected = tensor_to_pil(model.adapter.decode(model.components, latents))[0]
    assert np.array_equal(np.asarray(kept.images[0]), np.asarray(expected))
    assert not np.array_equal(np.asarray(kept.images[0]), np.asarray(result.images[0]))
