"""VAE selection as A1111's "SD VAE": files in models/VAE and <checkpoint>.vae.safetensors
beside a checkpoint; "Automatic", "None" or a file per request (and the ``sd_vae``
setting); swapped without reloading the model; infotext ``VAE hash`` and ``VAE``.

VAE files are written in A1111's layout (LDM keys without ``first_stage_model.``) from a
differently seeded tiny VAE; the reference image is diffusers' StableDiffusionPipeline
with that VAE module (the one the file was written from) and the model's other weights.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import RequestError
from core.saving import parse_infotext
from plugin_api import GenerationRequest
from tests import tiny_models

TOLERANCE = 1.5 / 255.0  # one 8-bit level after rounding plus summation-order noise


def a1111_vae_file(path: Path, vae: torch.nn.Module) -> Path:
    """An A1111 VAE file: LDM VAE keys, no ``first_stage_model.`` prefix."""
    state = tiny_models.vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    return tiny_models.write_single_file(
        path, {k.removeprefix("first_stage_model."): v for k, v in state.items()}
    )


@pytest.fixture(scope="module")
def vae_setup(tmp_path_factory, tiny_sd15_dir):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("vae-models")
    checkpoints = root / "models" / "Stable-diffusion"
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    single = tiny_models.write_single_file(
        checkpoints / "sd15-file.safetensors", tiny_models.sd15_to_ldm(tiny_models.tiny_sd15_components())
    )
    tiny_models.write_config_sidecar(tiny_sd15_dir, single)
    vaes = {
        "beside": tiny_models.tiny_sd15_components(seed=5)["vae"],
        "other": tiny_models.tiny_sd15_components(seed=9)["vae"],
    }
    a1111_vae_file(checkpoints / "sd15-file.vae.safetensors", vaes["beside"])
    a1111_vae_file(root / "models" / "VAE" / "other-vae.safetensors", vaes["other"])
    host = Host(
        Settings(data_dir=root / "data", models_dir=root / "models", safe_mode=True, device="cpu")
    ).start()
    yield Engine(host), vaes, root
    host.stop()


def generate(engine, model: str, vae: str | None = None, save: bool = False):
    request = GenerationRequest(
        prompt="a red circle", negative_prompt="blurry", seed=8, steps=3, width=64, height=64,
        model=model, sampler="Euler", vae=vae, save_images=save,
    )  # fmt: skip
    result = engine.generate(request)
    return np.asarray(result.images[0], dtype=np.float32) / 255.0, result


def diffusers_image(engine, model: str, vae: torch.nn.Module) -> np.ndarray:
    import diffusers

    c = engine.models.get(model).components
    pipe = diffusers.StableDiffusionPipeline(
        vae=vae, text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
        scheduler=diffusers.EulerDiscreteScheduler.from_config(c["scheduler"].config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        "a red circle", negative_prompt="blurry", num_inference_steps=3, guidance_scale=7.0,
        height=64, width=64, generator=torch.Generator("cpu").manual_seed(8), output_type="np",
    ).images[0]  # fmt: skip


def test_listing_vae_files_and_not_as_checkpoints(vae_setup):
    engine, _, _ = vae_setup
    names = [i.name for i in engine.models.list()]
    assert "sd15-file" in names and "sd15-file.vae" not in names
    assert "sd15-file.vae" not in engine.models.problems
    assert sorted(v.name for v in engine.models.vaes.list()) == [
        "other-vae.safetensors",
        "sd15-file.vae.safetensors",
    ]


def test_a_vae_file_gives_diffusers_image_with_that_vae(vae_setup):
    engine, vaes, root = vae_setup
    ours, result = generate(engine, "tiny-sd15", vae="other-vae.safetensors", save=True)
    assert np.abs(ours - diffusers_image(engine, "tiny-sd15", vaes["other"])).max() <= TOLERANCE
    params = parse_infotext(result.infotexts[0])
    path = root / "models" / "VAE" / "other-vae.safetensors"
    assert params["VAE"] == "other-vae.safetensors"
    assert params["VAE hash"] == hashlib.sha256(path.read_bytes()).hexdigest()[:10]  # A1111's VAE hash
    # A1111's order: ..., Model hash, Model, VAE hash, VAE, ...
    text = result.infotexts[0]
    assert text.index("Model: ") < text.index("VAE hash: ") < text.index("VAE: ")


def test_none_is_the_checkpoints_own_vae_without_reloading(vae_setup):
    engine, _, _ = vae_setup
    base, plain = generate(engine, "tiny-sd15", vae="None")
    loads = engine.models.load_count
    generate(engine, "tiny-sd15", vae="other-vae.safetensors")
    again, _ = generate(engine, "tiny-sd15", vae="None")
    assert np.array_equal(base, again) and engine.models.load_count == loads
    assert "VAE" not in parse_infotext(plain.infotexts[0])
    own = engine.models.get("tiny-sd15").base_vae
    assert np.abs(base - diffusers_image(engine, "tiny-sd15", own)).max() <= TOLERANCE


def test_automatic_takes_the_vae_beside_the_checkpoint(vae_setup):
    engine, vaes, _ = vae_setup
    ours, result = generate(engine, "sd15-file")  # vae None: the sd_vae setting, Automatic
    assert parse_infotext(result.infotexts[0])["VAE"] == "sd15-file.vae.safetensors"
    assert np.abs(ours - diffusers_image(engine, "sd15-file", vaes["beside"])).max() <= TOLERANCE
    own, _ = generate(engine, "sd15-file", vae="None")
    assert np.abs(own - ours).max() > 10 * TOLERANCE  # the VAE matters: the test can tell
    # a diffusers folder carries its own VAE: Automatic keeps it
    _, folder = generate(engine, "tiny-sd15", vae="Automatic")
    assert "VAE" not in parse_infotext(folder.infotexts[0])


def test_the_setting_chooses_when_the_request_does_not(vae_setup):
    engine, _, _ = vae_setup
    engine.host.set_setting("sd_vae", "other-vae.safetensors")
    try:
        _, result = generate(engine, "tiny-sd15")
    finally:
        engine.host.set_setting("sd_vae", "Automatic")
    assert parse_infotext(result.infotexts[0])["VAE"] == "other-vae.safetensors"


def test_unknown_vae_is_a_request_error_naming_the_field(vae_setup):
    engine, _, _ = vae_setup
    loads = engine.models.load_count
    with pytest.raises(RequestError) as error:
        generate(engine, "tiny-sd15", vae="missing.safetensors")
    assert error.value.field == "vae" and "other-vae.safetensors" in str(error.value)
    assert engine.models.load_count == loads


def test_cli_vae_flag(vae_setup, capsys):
    from core.cli.main import main
    from core.saving import read_infotext

    _, _, root = vae_setup
    argv = [
        "generate", "a red circle", "--model", "tiny-sd15", "--vae", "other-vae.safetensors", "--steps", "2",
        "--seed", "1", "--data-dir", str(root / "cli-data"), "--models-dir", str(root / "models"),
    ]  # fmt: skip
    assert main(argv) == 0
    png = capsys.readouterr().out.strip().splitlines()[-1]
    assert parse_infotext(read_infotext(png))["VAE"] == "other-vae.safetensors"


def test_webui_offers_the_vae_files_and_sends_the_choice(vae_setup):
    from types import SimpleNamespace

    from ui import choices
    from ui.generation_run import build_request

    engine, _, _ = vae_setup
    service = SimpleNamespace(engine=engine)
    assert choices.vae_names(service) == [
        "Automatic",
        "None",
        "other-vae.safetensors",
        "sd15-file.vae.safetensors",
    ]
    assert choices.default_vae(engine.host) == "Automatic"
    request = build_request(
        "a red circle",
        "",
        "tiny-sd15",
        "Euler",
        2,
        7,
        "",
        "",
        64,
        64,
        1,
        1,
        1,
        None,
        None,
        "other-vae.safetensors",
    )
    request.save_images = False
    assert parse_infotext(engine.generate(request).infotexts[0])["VAE"] == "other-vae.safetensors"


def test_png_info_brings_the_vae_back(vae_setup):
    from ui.png_info import form_fields, parse

    engine, _, _ = vae_setup
    first, result = generate(engine, "tiny-sd15", vae="other-vae.safetensors")
    fields = form_fields(parse(result.infotexts[0]))
    assert fields["vae"] == "other-vae.safetensors"
    again = engine.generate(GenerationRequest(**fields, save_images=False))
    assert np.array_equal(np.asarray(again.images[0], dtype=np.float32) / 255.0, first)
