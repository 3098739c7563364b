"""v-prediction detection for single files (core/models/prediction.py): an A1111 ``.yaml``
beside the file, SDXL's ``v_pred``/``ztsnr`` keys (ComfyUI), the SD2 512-vs-768 rule; shown
by ``easel models``; and the detected parameterization is what sampling uses, checked
against diffusers' pipelines with that parameterization on the same tiny weights.

Detection tests use tiny files in the real key layouts (LDM UNet/VAE keys, OpenCLIP text
encoder under ``cond_stage_model.model.``), read only at listing time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import Settings
from core.models.manager import ModelManager
from core.models.prediction import SD2_V_PROBE
from plugin_api import GenerationRequest
from tests import tiny_models

V_YAML = 'model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    parameterization: "v"\n'
# SD 2.x base's v2-inference.yaml names no parameterization: the LDM default, "eps"
EPS_YAML = "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    image_size: 64\n"
TOLERANCE = 1.5 / 255.0  # one 8-bit level after rounding plus summation-order noise


@pytest.fixture(scope="module")
def sd2_state() -> dict[str, torch.Tensor]:
    """An SD2-layout state dict: LDM UNet/VAE keys and an OpenCLIP text encoder."""
    sd15 = tiny_models.tiny_sd15_components()
    state = tiny_models.sd15_to_ldm(sd15)
    state = {k: v for k, v in state.items() if not k.startswith("cond_stage_model.")}
    sdxl = tiny_models.tiny_sdxl_components()
    state.update(tiny_models.openclip_to_ldm(sdxl["text_encoder_2"].state_dict(), "cond_stage_model.model."))
    return state


@pytest.fixture(scope="module")
def sdxl_state() -> dict[str, torch.Tensor]:
    return tiny_models.sdxl_to_ldm(tiny_models.tiny_sdxl_components())


def probe(std: float) -> torch.Tensor:
    """A 1280-value norm bias (SD2's real size) with the given population std."""
    values = torch.randn(1280, generator=torch.Generator().manual_seed(0))
    return (values - values.mean()) / values.std(unbiased=False) * std


def listing(tmp_path: Path, files: dict[str, dict[str, torch.Tensor]], yamls: dict[str, str] | None = None):
    folder = tmp_path / "models" / "Stable-diffusion"
    for name, state in files.items():
        tiny_models.write_single_file(folder / f"{name}.safetensors", state)
    for name, text in (yamls or {}).items():
        (folder / f"{name}.yaml").write_text(text)
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models", device="cpu")
    manager = ModelManager(settings)
    return {i.name: i for i in manager.list()}, manager


def test_sd2_yaml_beside_the_file_decides(tmp_path, sd2_state):
    infos, _ = listing(
        tmp_path,
        {"sd21-768": sd2_state, "sd21-base": sd2_state, "sd21-plain": sd2_state},
        {"sd21-768": V_YAML, "sd21-base": EPS_YAML},
    )
    assert (
        infos["sd21-768"].prediction.label == "v" and "sd21-768.yaml" in infos["sd21-768"].prediction.source
    )
    assert infos["sd21-768"].variant == "sd2"
    assert infos["sd21-base"].prediction.label == "eps" and infos["sd21-base"].variant == "sd2-512"
    # no yaml, no probe tensor (a non-standard UNet): the shipped SD2 config, 768 v
    assert infos["sd21-plain"].prediction.label == "v" and "shipped" in infos["sd21-plain"].prediction.source


def test_sd2_defaults_follow_the_detected_parameterization(tmp_path, sd2_state):
    from core.families import get_family

    infos, _ = listing(tmp_path, {"v": sd2_state, "base": sd2_state}, {"v": V_YAML, "base": EPS_YAML})
    family = get_family("sd15")
    assert family.defaults_for(infos["v"].variant).width == 768
    assert family.defaults_for(infos["base"].variant).width == 512
    assert family.config_dir_for(infos["base"].variant) == "sd2"


def test_sd2_without_yaml_uses_the_weight_statistic(tmp_path, sd2_state):
    infos, _ = listing(
        tmp_path,
        {
            "v-model": {**sd2_state, SD2_V_PROBE: probe(0.15)},
            "eps-model": {**sd2_state, SD2_V_PROBE: probe(0.03)},
        },
    )
    assert infos["v-model"].prediction.label == "v" and "0.150" in infos["v-model"].prediction.source
    assert infos["eps-model"].prediction.label == "eps" and infos["eps-model"].variant == "sd2-512"


def test_sd2_inpainting_unet_is_epsilon(tmp_path, sd2_state):
    key = "model.diffusion_model.input_blocks.0.0.weight"
    conv = sd2_state[key]
    nine = torch.cat([conv, torch.zeros(conv.shape[0], 5, *conv.shape[2:])], dim=1)
    infos, _ = listing(tmp_path, {"inpaint": {**sd2_state, key: nine, SD2_V_PROBE: probe(0.15)}})
    assert (
        infos["inpaint"].prediction.label == "eps"
        and "9 input channels" in infos["inpaint"].prediction.source
    )


def test_sdxl_v_pred_and_ztsnr_keys(tmp_path, sdxl_state):
    marker = torch.tensor([])  # ComfyUI's marker tensors carry no data; only the key counts
    infos, _ = listing(
        tmp_path,
        {
            "xl": sdxl_state,
            "xl-v": {**sdxl_state, "v_pred": marker},
            "xl-v-zsnr": {**sdxl_state, "v_pred": marker, "ztsnr": marker},
            "xl-ztsnr-only": {**sdxl_state, "ztsnr": marker},  # ComfyUI reads ztsnr only with v_pred
        },
    )
    assert [infos[n].prediction.label for n in ("xl", "xl-v", "xl-v-zsnr", "xl-ztsnr-only")] == [
        "eps", "v", "v+ztsnr", "eps",
    ]  # fmt: skip


def test_broken_yaml_is_reported_naming_the_file_and_field(tmp_path, sd2_state):
    _, manager = listing(
        tmp_path, {"odd": sd2_state}, {"odd": 'model:\n  params:\n    parameterization: "x0"\n'}
    )
    assert "odd" in manager.problems
    assert "odd.yaml" in manager.problems["odd"] and "parameterization" in manager.problems["odd"]


def test_easel_models_shows_the_prediction(tmp_path, sd2_state, sdxl_state, capsys):
    from core.cli.main import main

    listing(
        tmp_path, {"sd21": sd2_state, "xl-v": {**sdxl_state, "v_pred": torch.tensor([])}}, {"sd21": V_YAML}
    )
    assert (
        main(["models", "--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "models")]) == 0
    )
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "PREDICTION" in lines["NAME"]
    assert "v (sd21.yaml: parameterization v)" in lines["sd21"]
    assert "v (v_pred key (ComfyUI))" in lines["xl-v"]
    assert "v (scheduler config)" in lines["easel-demo"]  # the demo model folder says v_prediction


# --- the detected parameterization drives sampling: compared with diffusers -------------


def sdxl_image_diffusers(components: dict, scheduler_options: dict) -> np.ndarray:
    import diffusers

    parts = dict(components)
    parts["scheduler"] = diffusers.EulerDiscreteScheduler.from_config(
        parts["scheduler"].config, **scheduler_options
    )
    pipe = diffusers.StableDiffusionXLPipeline(**parts)
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        "a red circle", negative_prompt="blurry", num_inference_steps=4, guidance_scale=6.0,
        height=64, width=64, generator=torch.Generator("cpu").manual_seed(3), output_type="np",
    ).images[0]  # fmt: skip


@pytest.fixture(scope="module")
def vpred_engine(tmp_path_factory, sdxl_state, tiny_sdxl_dir, tiny_sd15_dir):
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("vpred")
    folder = root / "models" / "Stable-diffusion"
    marker = torch.tensor([])
    for name, extra in {
        "xl-eps": {},
        "xl-v": {"v_pred": marker},
        "xl-vz": {"v_pred": marker, "ztsnr": marker},
    }.items():
        path = tiny_models.write_single_file(folder / f"{name}.safetensors", {**sdxl_state, **extra})
        tiny_models.write_config_sidecar(tiny_sdxl_dir, path)
    sd15 = tiny_models.write_single_file(
        folder / "sd15-v.safetensors", tiny_models.sd15_to_ldm(tiny_models.tiny_sd15_components())
    )
    tiny_models.write_config_sidecar(tiny_sd15_dir, sd15)
    (folder / "sd15-v.yaml").write_text(V_YAML)
    host = Host(
        Settings(data_dir=root / "data", models_dir=root / "models", safe_mode=True, device="cpu")
    ).start()
    yield Engine(host), folder
    host.stop()


def easel_image(engine, model: str, cfg: float = 6.0) -> np.ndarray:
    request = GenerationRequest(
        prompt="a red circle", negative_prompt="blurry", seed=3, steps=4, cfg_scale=cfg,
        width=64, height=64, model=model, sampler="Euler", save_images=False,
    )  # fmt: skip
    return np.asarray(engine.generate(request).images[0], dtype=np.float32) / 255.0


@pytest.mark.parametrize(
    ("model", "options"),
    [
        ("xl-eps", {}),
        ("xl-v", {"prediction_type": "v_prediction"}),
        (
            "xl-vz",
            {
                "prediction_type": "v_prediction",
                "rescale_betas_zero_snr": True,
                "timestep_spacing": "trailing",
            },
        ),
    ],
)
def test_sdxl_markers_sample_as_diffusers_with_that_parameterization(vpred_engine, model, options):
    engine, _ = vpred_engine
    loaded = engine.models.get(model)
    assert loaded.components["scheduler"].config.prediction_type == options.get("prediction_type", "epsilon")
    ours = easel_image(engine, model)
    # the components Easel loaded, in diffusers' own pipeline with the parameterization set
    # there; its scheduler config is rebuilt from the sidecar's epsilon one
    components = dict(loaded.components)
    import diffusers

    components["scheduler"] = diffusers.EulerDiscreteScheduler.from_pretrained(
        str(vpred_engine[1] / f"{model}.config"), subfolder="scheduler"
    )
    expected = sdxl_image_diffusers(components, options)
    assert np.abs(ours - expected).max() <= TOLERANCE
    if options:  # the parameterization changes the image: the test can tell
        assert np.abs(ours - easel_image(engine, "xl-eps")).max() > 10 * TOLERANCE


def test_sd15_yaml_v_samples_as_diffusers_v_prediction(vpred_engine):
    import diffusers

    engine, folder = vpred_engine
    assert engine.models.info("sd15-v").prediction.label == "v"
    pipe = diffusers.StableDiffusionPipeline.from_single_file(
        str(folder / "sd15-v.safetensors"), config=str(folder / "sd15-v.config"), local_files_only=True,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    assert pipe.scheduler.config.prediction_type == "epsilon"  # diffusers alone does not read the yaml
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(
        pipe.scheduler.config, prediction_type="v_prediction"
    )
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        "a red circle", negative_prompt="blurry", num_inference_steps=4, guidance_scale=7.0,
        height=64, width=64, generator=torch.Generator("cpu").manual_seed(3), output_type="np",
    ).images[0]  # fmt: skip
    assert np.abs(easel_image(engine, "sd15-v", cfg=7.0) - expected).max() <= TOLERANCE
