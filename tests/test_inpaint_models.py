"""Inpainting checkpoints (9-channel UNet, e.g. sd-v1-5-inpainting) as one single file in
the original LDM key layout: detected from ``model.diffusion_model.input_blocks.0.0.weight``,
listed as inpainting models, and sampled as diffusers' StableDiffusionInpaintPipeline does.

The reference is diffusers' ``StableDiffusionInpaintPipeline`` on the same weights (a
diffusers folder written from the modules the single file was written from), seed, mask,
prompt and Euler schedule, with its own ``apply_overlay`` (the original pixels pasted back
outside the mask, as Easel and A1111 do).

Two things of the tiny model make the comparison exact rather than statistical:
- its VAE posterior is made (nearly) deterministic (log-variance -30, std 3e-7): diffusers
  draws the VAE samples from the same generator as the starting noise, in its own order,
  while Easel (as A1111) gives each image its own noise generator; with a point posterior
  the VAE samples are the same in both, whichever generator draws them;
- at strength < 1 diffusers draws the init image's VAE sample *before* the noise, so the
  reference is given the noise Easel draws for the seed (patched ``randn_tensor`` of the
  inpaint pipeline module: the same starting noise in both, nothing else changed).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from plugin_api import GenerationRequest
from tests import tiny_models

# one 8-bit level after rounding plus float summation-order noise (measured: <= 1/255)
TOLERANCE = 1.5 / 255.0
PROMPT, NEGATIVE, SEED, STEPS, CFG, SIZE = "a red circle", "blurry", 11, 4, 7.0, 64


def tiny_inpaint_components(seed: int = 0) -> dict:
    """The tiny SD1.5 components with a 9-channel UNet and a point VAE posterior."""
    from diffusers import UNet2DConditionModel

    components = tiny_models.tiny_sd15_components(seed)
    torch.manual_seed(seed + 100)
    config = {**components["unet"].config, "in_channels": 9}
    components["unet"] = UNet2DConditionModel.from_config(config).eval()
    return with_point_posterior(components)


def with_point_posterior(components: dict) -> dict:
    quant = components["vae"].quant_conv  # rows 4..7 give the log-variance
    with torch.no_grad():
        quant.weight[4:] = 0.0
        quant.bias[4:] = -30.0
    return components


# SD 2 inpainting (512-inpainting-ema): the shipped sd2-inpaint configs, sizes shrunk, an
# OpenCLIP text encoder; no yaml beside it, epsilon from its 9-channel UNet
SD2_INPAINTING = "tiny-sd2-inpainting"


@pytest.fixture(scope="module")
def inpaint_setup(tmp_path_factory):
    from diffusers import StableDiffusionInpaintPipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("inpaint-models")
    components = tiny_inpaint_components()
    reference_dir = root / "reference"
    StableDiffusionInpaintPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    ).save_pretrained(str(reference_dir))
    checkpoint = tiny_models.write_single_file(
        root / "models" / "Stable-diffusion" / "tiny-inpainting.safetensors",
        tiny_models.sd15_to_ldm(components),
    )
    tiny_models.write_config_sidecar(reference_dir, checkpoint)  # configs only: the tiny shapes
    sd2 = with_point_posterior(tiny_models.tiny_sd2_components(seed=1, inpaint=True))
    sd2_reference = tiny_models.save_sd2_folder(sd2, root / "reference-sd2")
    sd2_file = tiny_models.write_single_file(
        root / "models" / "Stable-diffusion" / f"{SD2_INPAINTING}.safetensors", tiny_models.sd2_to_ldm(sd2)
    )
    tiny_models.write_config_sidecar(sd2_reference, sd2_file)
    host = Host(
        Settings(data_dir=root / "data", models_dir=root / "models", safe_mode=True, device="cpu")
    ).start()
    yield Engine(host), reference_dir, root
    host.stop()


def reference_pipeline(reference_dir):
    import diffusers

    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(
        str(reference_dir), local_files_only=True, safety_checker=None, feature_extractor=None
    )
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def easel_noise(shape: tuple) -> torch.Tensor:
    """The starting noise Easel draws for SEED (one CPU generator per image, as A1111)."""
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(SEED), dtype=torch.float32)


def diffusers_inpaint(reference_dir, image, mask, strength, monkeypatch, grey_latents=False) -> Image.Image:
    from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_inpaint as module

    monkeypatch.setattr(module, "randn_tensor", lambda shape, **_: easel_noise(tuple(shape)))
    pipe = reference_pipeline(reference_dir)
    extra = {}
    if grey_latents:
        # The zero (grey) image is a degenerate VAE input: every feature map is constant, so
        # each GroupNorm divides float rounding noise by sqrt(eps) and the latents depend on
        # the summation order of the kernels in use (measured: up to 0.1 apart between two
        # calls of the same VAE in one process). The reference gets them from a plain call
        # of its VAE, as Easel makes them; the encoding itself is compared in the mask tests.
        with torch.inference_mode():
            dist = pipe.vae.encode(torch.zeros(1, 3, SIZE, SIZE)).latent_dist
        extra["masked_image_latents"] = dist.mean * pipe.vae.config.scaling_factor
    out = pipe(
        PROMPT, image=image, mask_image=mask, negative_prompt=NEGATIVE, height=SIZE, width=SIZE,
        num_inference_steps=STEPS, guidance_scale=CFG, strength=strength,
        generator=torch.Generator("cpu").manual_seed(SEED), **extra,
    ).images[0]  # fmt: skip
    return pipe.image_processor.apply_overlay(mask, image, out)


def test_detected_from_the_keys_and_listed_as_inpainting(inpaint_setup, capsys):
    from core.cli.main import main as cli_main
    from core.models.manager import detect_family

    engine, _, root = inpaint_setup
    info = engine.models.info("tiny-inpainting")
    assert (info.family, info.variant, info.inpainting) == ("sd15", "sd15-inpaint", True)
    assert info.as_dict()["inpainting"] is True
    # real-size shapes: the shipped inpainting config is chosen
    family, variant = detect_family(
        root,
        {
            "model.diffusion_model.input_blocks.0.0.weight": [320, 9, 3, 3],
            "cond_stage_model.transformer.x": [1],
        },
    )
    assert family.config_dir_for(variant) == "sd15-inpaint"
    assert cli_main(["models", "--models-dir", str(root / "models"), "--data-dir", str(root / "cli")]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["tiny-inpainting"][1] == "sd15/inpainting"


def image_and_mask() -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(3)
    image = Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    mask = Image.new("L", (SIZE, SIZE), 0)
    mask.paste(255, (16, 8, 48, 40))
    return image, mask


@pytest.mark.parametrize("strength", [1.0, 0.75])
def test_inpaint_equals_diffusers_inpaint_pipeline(inpaint_setup, strength, monkeypatch):
    engine, reference_dir, _ = inpaint_setup
    image, mask = image_and_mask()
    request = GenerationRequest(
        prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, cfg_scale=CFG, width=SIZE,
        height=SIZE, sampler="Euler", model="tiny-inpainting", init_image=image, mask=mask,
        mask_blur=0, denoising_strength=strength,
    )  # fmt: skip
    ours = np.asarray(engine.generate(request).images[0], dtype=np.float32) / 255.0
    expected = np.asarray(
        diffusers_inpaint(reference_dir, image, mask, strength, monkeypatch), dtype=np.float32
    )
    diff = np.abs(ours - expected / 255.0)
    assert diff.max() <= TOLERANCE, diff.max() * 255
    inside = np.asarray(mask) > 127
    # the repainted area is new, the rest the original pixels
    assert np.abs(ours[inside] - np.asarray(image, dtype=np.float32)[inside] / 255.0).mean() > 0.05
    assert np.array_equal((ours[~inside] * 255).round(), np.asarray(image, dtype=np.float32)[~inside])


def test_txt2img_is_inpainting_under_a_full_mask(inpaint_setup, monkeypatch):
    """A1111's txt2img_image_conditioning for inpainting models: an all-ones mask over an
    encoded 0.5-grey image; diffusers' inpaint pipeline with a white mask sees the same
    (its masked image is 0 in [-1, 1], i.e. grey), whatever the init image."""
    engine, reference_dir, _ = inpaint_setup
    request = GenerationRequest(
        prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, cfg_scale=CFG, width=SIZE,
        height=SIZE, sampler="Euler", model="tiny-inpainting",
    )  # fmt: skip
    ours = np.asarray(engine.generate(request).images[0], dtype=np.float32) / 255.0
    white = Image.new("L", (SIZE, SIZE), 255)
    black = Image.new("RGB", (SIZE, SIZE), 0)
    reference = diffusers_inpaint(reference_dir, black, white, 1.0, monkeypatch, grey_latents=True)
    expected = np.asarray(reference, dtype=np.float32)
    assert np.abs(ours - expected / 255.0).max() <= TOLERANCE


REFERENCES = {"tiny-inpainting": "reference", SD2_INPAINTING: "reference-sd2"}


def test_sd2_inpainting_is_detected_as_epsilon_inpainting(inpaint_setup, capsys):
    from core.cli.main import main as cli_main
    from core.models.manager import detect_family

    engine, _, root = inpaint_setup
    info = engine.models.info(SD2_INPAINTING)
    assert (info.family, info.variant, info.inpainting) == ("sd15", "sd2-inpaint", True)
    # epsilon, as the shipped sd2-inpaint config in its sidecar says (without a sidecar the
    # 9-channel UNet decides: tests/test_prediction.py); never the 768 v-prediction default
    assert info.prediction.label == "eps"
    family, variant = detect_family(
        root,
        {
            "model.diffusion_model.input_blocks.0.0.weight": [320, 9, 3, 3],
            "cond_stage_model.model.token_embedding.weight": [49408, 1024],
        },
    )
    assert family.config_dir_for(variant) == "sd2-inpaint"  # real-size shapes: the shipped config
    assert cli_main(["models", "--models-dir", str(root / "models"), "--data-dir", str(root / "cli")]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows[SD2_INPAINTING].split()[1] == "sd15/sd2-inpainting" and "eps" in rows[SD2_INPAINTING]


def test_sd2_inpaint_equals_diffusers_inpaint_pipeline(inpaint_setup, monkeypatch):
    engine, _, root = inpaint_setup
    image, mask = image_and_mask()
    request = GenerationRequest(
        prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, cfg_scale=CFG, width=SIZE,
        height=SIZE, sampler="Euler", model=SD2_INPAINTING, init_image=image, mask=mask, mask_blur=0,
        denoising_strength=1.0,
    )  # fmt: skip
    ours = np.asarray(engine.generate(request).images[0], dtype=np.float32)
    expected = np.asarray(
        diffusers_inpaint(root / "reference-sd2", image, mask, 1.0, monkeypatch), dtype=np.float32
    )
    assert np.abs(ours - expected).max() <= TOLERANCE * 255
    inside = np.asarray(mask) > 127
    assert np.abs(ours[inside] - np.asarray(image, dtype=np.float32)[inside]).mean() > 0.05 * 255


@pytest.fixture(scope="module")
def inpaint_server(inpaint_setup):
    """A real server on these models with the WebUI mounted at "/", as ``easel serve``."""
    from tests.api.conftest import serving

    _, _, root = inpaint_setup
    with serving(root / "api-data", root / "models", webui=True) as running:
        yield running


def png_b64(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("model", list(REFERENCES))
def test_sdapi_img2img_with_a_mask(inpaint_setup, inpaint_server, monkeypatch, model):
    """/sdapi/v1/img2img (A1111's field names) gives diffusers' inpainting image."""
    _, _, root = inpaint_setup
    image, mask = image_and_mask()
    payload = {
        "init_images": [png_b64(image)], "mask": png_b64(mask), "mask_blur": 0, "denoising_strength": 1.0,
        "prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": SEED, "steps": STEPS, "cfg_scale": CFG,
        "width": SIZE, "height": SIZE, "sampler_name": "Euler",
        "override_settings": {"sd_model_checkpoint": model},
    }  # fmt: skip
    with inpaint_server.client() as client:
        response = client.post("/sdapi/v1/img2img", json=payload)
    assert response.status_code == 200, response.text
    ours = np.asarray(Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0]))).convert("RGB"))
    expected = np.asarray(diffusers_inpaint(root / REFERENCES[model], image, mask, 1.0, monkeypatch))
    assert np.abs(ours.astype(np.float32) - expected).max() <= TOLERANCE * 255


def uploaded(client, picture: Image.Image) -> dict:
    """A picture as the browser gives it to a Gradio event: uploaded, then referenced."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    response = client.post(
        "/gradio_api/upload", files=[("files", ("picture.png", buffer.getvalue(), "image/png"))]
    )
    assert response.status_code == 200, response.text
    return {"path": response.json()[0], "meta": {"_type": "gradio.FileData"}}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(REFERENCES))
def test_webui_inpaint_event_gives_diffusers_image(inpaint_setup, inpaint_server, monkeypatch, model):
    """The img2img tab's Generate event (``/gradio_api/call/img2img_generate``) in the
    "Inpaint upload" mode with an image and a mask. The mask blur is left at its default,
    A1111's 4 pixels; the reference is given the same blur by diffusers' own mask processor."""
    from diffusers.image_processor import VaeImageProcessor

    from tests.api.conftest import gradio_call
    from tests.webui_events import event_inputs, output_value, select_tab

    _, _, root = inpaint_setup
    image, mask = image_and_mask()
    session = f"inpaint-upload-{model}"
    with inpaint_server.client() as client:
        # as a user: the "Inpaint upload" mode tab, then its image and mask, then Generate
        select_tab(client, "img2img_mode_inpaint_upload", session)
        values = {  # by elem_id; every other input as the page first shows it
            "img2img_prompt": PROMPT, "img2img_neg_prompt": NEGATIVE, "img2img_model": model,
            "img2img_sampler": "Euler", "img2img_steps": STEPS, "img2img_cfg": CFG, "img2img_width": SIZE,
            "img2img_height": SIZE, "img2img_seed": SEED, "img2img_batch_size": 1, "img2img_batch_count": 1,
            "img2img_inpaint_upload_image": uploaded(client, image), "img2img_mask": uploaded(client, mask),
            "img2img_denoising": 1.0, "img2img_vae": "None",
        }  # fmt: skip
        data = event_inputs(client, "img2img_generate", values)
        outputs = gradio_call(client, "img2img_generate", data, session_hash=session)
        assert "error" not in outputs, outputs
        gallery = output_value(client, "img2img_generate", outputs, "img2img_gallery")
        assert gallery, outputs
        png = client.get(gallery[0]["image"]["url"])
    ours = np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB"), dtype=np.float32)
    blurred = VaeImageProcessor.blur(mask, 4)
    expected = np.asarray(diffusers_inpaint(root / REFERENCES[model], image, blurred, 1.0, monkeypatch))
    assert np.abs(ours - expected).max() <= TOLERANCE * 255


def test_cli_inpaints_with_a_mask_file(inpaint_setup, monkeypatch, tmp_path, capsys):
    from core.cli.main import main as cli_main

    _, reference_dir, root = inpaint_setup
    image, mask = image_and_mask()
    image.save(tmp_path / "init.png")
    mask.save(tmp_path / "mask.png")
    args = [
        "generate", PROMPT, "--negative", NEGATIVE, "--model", "tiny-inpainting", "--seed", str(SEED),
        "--steps", str(STEPS), "--cfg", str(CFG), "--width", str(SIZE), "--height", str(SIZE),
        "--sampler", "Euler", "--init-image", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
        "--denoise", "1", "--mask-blur", "0", "--models-dir", str(root / "models"),
        "--data-dir", str(tmp_path / "data"), "--local",
    ]  # fmt: skip
    assert cli_main(args) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    ours = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    expected = np.asarray(diffusers_inpaint(reference_dir, image, mask, 1.0, monkeypatch), dtype=np.float32)
    assert np.abs(ours - expected).max() <= TOLERANCE * 255
    assert "Mask blur: 0" in Image.open(path).info["parameters"]
