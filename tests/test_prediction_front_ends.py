"""A user's own files, each the way A1111 users have them, through every front end: an
SD 2.x 512 base (epsilon) checkpoint with the ``v2-inference.yaml`` beside it, the same
with a 768-v yaml (``parameterization: "v"``), an SDXL v-prediction fine-tune carrying
ComfyUI's ``v_pred`` and ``ztsnr`` marker keys, and a VAE in ``models/VAE``.

Each is generated through ``easel generate`` (in-process), ``/sdapi/v1/txt2img`` and the
WebUI's own generate event (``/gradio_api/call/txt2img_generate``, what the Generate
button calls) on a real server, and compared with diffusers' own pipeline loaded from the
same file (``from_single_file``) with the scheduler configured the way A1111/ComfyUI read
the file:

- SD 2.x: the yaml's parameterization (A1111); no parameterization key is "eps", the
  LDM default. The files' config folders ship the 768-v model's v_prediction scheduler,
  so the base model's image is right only when the yaml wins.
- SDXL ``v_pred``: v_prediction; with ``ztsnr``: zero terminal SNR as diffusers
  implements it, ``rescale_betas_zero_snr=True`` with ``timestep_spacing="trailing"``
  (diffusers' documented pairing; ComfyUI rescales the same schedule, sampling from the
  last training step).

The tiny SD2 models are the shipped ``sd2`` configs with their sizes shrunk
(tests/tiny_models.py), written in the original layout (LDM UNet/VAE keys, OpenCLIP text
encoder under ``cond_stage_model.model.``).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests import tiny_models
from tests.api.conftest import write_tiny_vae

TOLERANCE = 1.5  # of 255: one 8-bit level after rounding plus summation-order noise
PROMPT, NEGATIVE, SEED, STEPS, CFG, SIZE = "a red circle", "blurry", 5, 4, 6.0, 64
# the yamls A1111 users put beside SD 2.x files (model.params as in Stability's repo)
BASE_YAML = (  # v2-inference.yaml: no parameterization key, so "eps"
    "model:\n  base_learning_rate: 1.0e-4\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n"
    "  params:\n    linear_start: 0.00085\n    linear_end: 0.0120\n    image_size: 64\n    channels: 4\n"
)
V_YAML = BASE_YAML.replace("  params:\n", '  params:\n    parameterization: "v"\n')
VAE = "tiny-vae.safetensors"
ZSNR = {"prediction_type": "v_prediction", "rescale_betas_zero_snr": True, "timestep_spacing": "trailing"}

# name: (checkpoint, VAE file or None, what the listing says, the reference's scheduler options)
CASES = {
    "sd21-base": ("sd21-base", None, "eps", {"prediction_type": "epsilon"}),
    "sd21-768-v": ("sd21-768-v", None, "v", {"prediction_type": "v_prediction"}),
    "xl-vpred": ("xl-vpred", None, "v", {"prediction_type": "v_prediction"}),
    "xl-vpred-ztsnr": ("xl-vpred-ztsnr", None, "v+ztsnr", ZSNR),
    "sd21-base+vae": ("sd21-base", VAE, "eps", {"prediction_type": "epsilon"}),
}


@pytest.fixture(scope="module")
def user_files(tmp_path_factory, tiny_sdxl_dir) -> Path:
    """An A1111 models folder with the files above; each checkpoint has a ``.config/``
    sidecar (the tiny shapes) whose scheduler says what the shipped config would."""
    root = tmp_path_factory.mktemp("user-files")
    checkpoints = root / "models" / "Stable-diffusion"
    sd2 = tiny_models.tiny_sd2_components()
    sd2_folder = tiny_models.save_sd2_folder(sd2, root / "sd2-configs")
    assert sd2["scheduler"].config.prediction_type == "v_prediction"  # the shipped 768-v config
    for name, yaml in (("sd21-base", BASE_YAML), ("sd21-768-v", V_YAML)):
        path = tiny_models.write_single_file(checkpoints / f"{name}.safetensors", tiny_models.sd2_to_ldm(sd2))
        (checkpoints / f"{name}.yaml").write_text(yaml)
        tiny_models.write_config_sidecar(sd2_folder, path)
    marker = torch.tensor([])  # ComfyUI's markers carry no data; the key is the message
    xl = tiny_models.sdxl_to_ldm(tiny_models.tiny_sdxl_components())
    for name, markers in (("xl-vpred", ("v_pred",)), ("xl-vpred-ztsnr", ("v_pred", "ztsnr"))):
        path = tiny_models.write_single_file(
            checkpoints / f"{name}.safetensors", {**xl, **dict.fromkeys(markers, marker)}
        )
        tiny_models.write_config_sidecar(tiny_sdxl_dir, path)  # its scheduler: SDXL's epsilon
    write_tiny_vae(root / "models" / "VAE" / VAE)
    return root


def diffusers_image(root: Path, model: str, vae: str | None, scheduler_options: dict) -> np.ndarray:
    """diffusers' own pipeline from the same single file (and VAE file), its scheduler
    Euler with the parameterization the file's yaml/keys ask for."""
    import diffusers

    checkpoints = root / "models" / "Stable-diffusion"
    config = checkpoints / f"{model}.config"
    xl = model.startswith("xl")
    pipeline = diffusers.StableDiffusionXLPipeline if xl else diffusers.StableDiffusionPipeline
    extra = (
        {} if xl else {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
    )
    pipe = pipeline.from_single_file(
        str(checkpoints / f"{model}.safetensors"), config=str(config), local_files_only=True, **extra
    )
    if vae is not None:
        pipe.vae = diffusers.AutoencoderKL.from_single_file(
            str(root / "models" / "VAE" / vae), config=str(config), subfolder="vae", local_files_only=True
        )
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config, **scheduler_options)
    pipe.set_progress_bar_config(disable=True)
    image = pipe(
        PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=CFG, height=SIZE,
        width=SIZE, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np",
    ).images[0]  # fmt: skip
    return np.round(image * 255.0).astype(np.float32)


@pytest.fixture(scope="module")
def references(user_files) -> dict[str, np.ndarray]:
    return {
        case: diffusers_image(user_files, m, vae, options) for case, (m, vae, _, options) in CASES.items()
    }


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def max_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max())


@pytest.mark.slow
def test_the_references_tell_the_files_apart(references):
    """Same SD2 weights, only the yaml differs; the same model with another VAE: if the
    parameterization or the VAE were ignored, the comparisons below would fail."""
    assert max_diff(references["sd21-base"], references["sd21-768-v"]) > 10 * TOLERANCE
    assert max_diff(references["sd21-base"], references["sd21-base+vae"]) > 10 * TOLERANCE
    assert max_diff(references["xl-vpred"], references["xl-vpred-ztsnr"]) > 10 * TOLERANCE


def test_easel_models_and_the_apis_report_the_parameterization(user_files, capsys):
    from core.cli.main import main

    root = user_files
    argv = ["models", "--models-dir", str(root / "models"), "--data-dir", str(root / "cli-list")]
    assert main(argv) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert rows["sd21-base"].split()[1] == rows["sd21-768-v"].split()[1] == "sd15/sd2"
    assert "eps (sd21-base.yaml: parameterization eps)" in rows["sd21-base"]
    assert "v (sd21-768-v.yaml: parameterization v)" in rows["sd21-768-v"]
    assert "v (v_pred key (ComfyUI))" in rows["xl-vpred"]
    assert "v+ztsnr (v_pred key (ComfyUI))" in rows["xl-vpred-ztsnr"]


def cli_image(root: Path, model: str, vae: str | None, capsys) -> np.ndarray:
    from core.cli.main import main

    argv = [
        "generate", PROMPT, "--negative", NEGATIVE, "--model", model, "--seed", str(SEED), "--steps", str(STEPS),
        "--cfg", str(CFG), "--width", str(SIZE), "--height", str(SIZE), "--sampler", "Euler", "--local",
        "--models-dir", str(root / "models"), "--data-dir", str(root / "cli-data"),
    ]  # fmt: skip
    if vae is not None:
        argv += ["--vae", vae]
    assert main(argv) == 0
    return pixels(Image.open(capsys.readouterr().out.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_cli_gives_diffusers_image(user_files, references, case, capsys):
    model, vae, _, _ = CASES[case]
    assert max_diff(cli_image(user_files, model, vae, capsys), references[case]) <= TOLERANCE


@pytest.fixture(scope="module")
def server(user_files):
    """A real server with the WebUI mounted at "/", as ``easel serve``."""
    from tests.api.conftest import serving

    with serving(user_files / "server-data", user_files / "models", webui=True) as running:
        yield running


def test_sdapi_lists_the_yaml_and_the_parameterization(server, user_files):
    checkpoints = user_files / "models" / "Stable-diffusion"
    with server.client() as client:
        listed = {m["model_name"]: m for m in client.get("/sdapi/v1/sd-models").json()}
        native = {m["name"]: m for m in client.get("/api/v1/models").json()}
    # A1111's "config": the yaml beside the checkpoint, None without one
    assert listed["sd21-base"]["config"] == str(checkpoints / "sd21-base.yaml")
    assert listed["sd21-768-v"]["config"] == str(checkpoints / "sd21-768-v.yaml")
    assert listed["xl-vpred-ztsnr"]["config"] is None
    assert [listed[m]["easel_prediction"] for m in ("sd21-base", "sd21-768-v", "xl-vpred-ztsnr")] == [
        "eps", "v", "v+ztsnr",
    ]  # fmt: skip
    assert native["sd21-768-v"]["prediction"] == "v" and "yaml" in native["sd21-768-v"]["prediction_source"]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_sdapi_txt2img_gives_diffusers_image(server, references, case):
    model, vae, _, _ = CASES[case]
    payload = {
        "prompt": PROMPT, "negative_prompt": NEGATIVE, "seed": SEED, "steps": STEPS, "cfg_scale": CFG,
        "width": SIZE, "height": SIZE, "sampler_name": "Euler",
        "override_settings": {"sd_model_checkpoint": model, "sd_vae": vae or "None"},
    }  # fmt: skip
    with server.client() as client:
        response = client.post("/sdapi/v1/txt2img", json=payload)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    assert max_diff(pixels(image), references[case]) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_webui_generate_gives_diffusers_image(server, references, case):
    from tests.api.conftest import gradio_call
    from tests.webui_events import event_inputs, output_value

    model, vae, _, _ = CASES[case]
    values = {  # by elem_id; every other input as the page first shows it
        "txt2img_prompt": PROMPT, "txt2img_neg_prompt": NEGATIVE, "txt2img_model": model,
        "txt2img_sampler": "Euler", "txt2img_steps": STEPS, "txt2img_cfg": CFG, "txt2img_width": SIZE,
        "txt2img_height": SIZE, "txt2img_seed": SEED, "txt2img_batch_size": 1, "txt2img_batch_count": 1,
        "txt2img_vae": vae or "None",
    }  # fmt: skip
    with server.client() as client:
        outputs = gradio_call(client, "txt2img_generate", event_inputs(client, "txt2img_generate", values))
        assert "error" not in outputs, outputs
        gallery = output_value(client, "txt2img_generate", outputs, "txt2img_gallery")
        assert gallery, outputs
        png = client.get(gallery[0]["image"]["url"])
    assert png.status_code == 200
    assert max_diff(pixels(Image.open(io.BytesIO(png.content))), references[case]) <= TOLERANCE
