"""FLUX.2 Klein in every layout users have, against diffusers' Flux2KleinPipeline.

One tiny Klein (hidden 64, one double and one single block, a 28-layer Qwen3 with Easel's
Qwen3 tokenizer, a FLUX.2 VAE with random BatchNorm statistics) is written as: a diffusers
folder; BFL's original single file with a full ``<name>.config/`` beside it; ComfyUI's split
files (``diffusion_models/`` + ``text_encoders/`` Qwen3 + ``vae/flux2-vae``); GGUF files
(Q8_0, Q4_K) and a ComfyUI scaled-FP8 file with the same companions. Each is generated
through the engine (the path ``easel generate --model`` takes) and compared with diffusers'
``Flux2KleinPipeline`` on what the files mean (GGUF/FP8: their dequantised weights), same
seed, same prompt.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from plugin_api import GenerationRequest
from tests import flux2_files, flux_files, tiny_models

# one 8-bit level after rounding plus summation-order noise
TOLERANCE = 1.5 / 255.0
PROMPT = "a red fox in the snow, watercolor"
SIZE, STEPS, SEED = 64, 3, 21
pytestmark = pytest.mark.slow  # builds and loads six tiny models


def reference(components: dict, cfg_scale: float = 1.0) -> np.ndarray:
    """diffusers' pipeline; CFG scale > 1 runs Klein Base's real CFG (negative "")."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline

    pipe = Flux2KleinPipeline(
        **{
            **components,
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config),
        },
        is_distilled=cfg_scale == 1.0,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        prompt=PROMPT, guidance_scale=cfg_scale, num_inference_steps=STEPS, height=SIZE, width=SIZE,
        output_type="np", generator=torch.Generator("cpu").manual_seed(SEED),
    ).images[0]  # fmt: skip


def with_transformer_weights(components: dict, bfl_meant: dict[str, torch.Tensor]) -> dict:
    """The components with a transformer holding ``bfl_meant`` (BFL names, converted by
    diffusers' own converter; the names are checked by test_bfl_names_round_trip)."""
    from diffusers import Flux2Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    transformer = Flux2Transformer2DModel.from_config(components["transformer"].config)
    converted = convert_flux2_transformer_checkpoint_to_diffusers(dict(bfl_meant))
    transformer.load_state_dict(converted, strict=True)
    return {**components, "transformer": transformer.eval()}


def flux1_vae_file() -> dict[str, torch.Tensor]:
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(
        block_out_channels=(16, 16), down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=16, norm_num_groups=8,
        use_quant_conv=False, use_post_quant_conv=False,
    )  # fmt: skip
    ldm = tiny_models.vae_to_ldm(vae.state_dict(), 2)
    return {k.removeprefix("first_stage_model."): v for k, v in ldm.items()}


@pytest.fixture(scope="module")
def klein(tmp_path_factory):
    from diffusers import Flux2KleinPipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("klein")
    components = flux2_files.tiny_klein_components(root / "tokenizer-cache", seed=6)
    models = root / "models"
    folder = models / "Stable-diffusion" / "tiny-klein-folder"
    Flux2KleinPipeline(**components, is_distilled=True).save_pretrained(str(folder))
    bfl = flux2_files.klein_to_bfl(components["transformer"])
    single = tiny_models.write_single_file(models / "Stable-diffusion" / "tiny-klein-bfl.safetensors", bfl)
    shutil.copytree(folder, single.with_name("tiny-klein-bfl.config"))
    # ComfyUI: transformer (prefixed), Qwen3 ("model." prefixed, no lm_head), flux2-vae
    prefixed = {"model.diffusion_model." + k: v for k, v in bfl.items()}
    tiny_models.write_single_file(models / "diffusion_models" / "tiny-klein-split.safetensors", prefixed)
    text_state = {
        k: v for k, v in components["text_encoder"].state_dict().items() if not k.startswith("lm_head.")
    }
    tiny_models.write_single_file(models / "text_encoders" / "qwen_3_tiny.safetensors", text_state)
    tiny_models.write_single_file(
        models / "vae" / "flux2-vae.safetensors", flux2_files.vae_to_bfl(components["vae"])
    )
    # a FLUX.1 / Z-Image VAE beside it (16 channels, sorted first): never taken for Klein's
    tiny_models.write_single_file(models / "vae" / "ae.safetensors", flux1_vae_file())
    meant = {"split": bfl}
    meant["q8"] = flux_files.write_gguf(models / "unet" / "tiny-klein-Q8_0.gguf", bfl, "Q8_0")
    meant["q4k"] = flux_files.write_gguf(models / "unet" / "tiny-klein-Q4_K.gguf", bfl, "Q4_K")
    fp8_file, fp8_meant = flux_files.to_fp8_scaled(prefixed)
    tiny_models.write_single_file(models / "diffusion_models" / "tiny-klein-fp8.safetensors", fp8_file)
    meant["fp8"] = {k.removeprefix("model.diffusion_model."): v for k, v in fp8_meant.items()}
    # the tiny shapes for every split file: configs only, no weights, no tokenizer (Easel's own)
    configs = root / "configs"
    shutil.copytree(folder, configs)
    for weights in configs.rglob("*.safetensors"):
        weights.unlink()
    shutil.rmtree(configs / "tokenizer")
    # the companions named in a sidecar rather than found by their tensors
    tiny_models.write_single_file(models / "diffusion_models" / "tiny-klein-named.safetensors", prefixed)
    (models / "diffusion_models" / "tiny-klein-named.easel.json").write_text(
        '{"text_encoder": "qwen_3_tiny.safetensors", "vae": "flux2-vae.safetensors"}'
    )
    for place in (
        "diffusion_models/tiny-klein-split",
        "diffusion_models/tiny-klein-fp8",
        "diffusion_models/tiny-klein-named",
    ):
        shutil.copytree(configs, models / f"{place}.config")
    for place in ("unet/tiny-klein-Q8_0", "unet/tiny-klein-Q4_K"):
        shutil.copytree(configs, models / f"{place}.config")
    flux2_files.write_lora(models / "Lora" / "klein-diffusers.safetensors", "diffusers", seed=2)
    flux2_files.write_lora(models / "Lora" / "klein-comfyui.safetensors", "comfyui", seed=3)
    flux2_files.write_lora(models / "Lora" / "klein-kohya.safetensors", "kohya", seed=4)
    host = Host(Settings(data_dir=root / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    engine = Engine(host)
    yield engine, components, meant
    host.stop()


def generate(
    engine, model: str, cfg_scale: float = 1.0, prompt: str = PROMPT
) -> tuple[np.ndarray, list[str]]:
    request = GenerationRequest(
        prompt=prompt, seed=SEED, steps=STEPS, width=SIZE, height=SIZE, model=model, sampler="Euler",
        cfg_scale=cfg_scale,
    )  # fmt: skip
    result = engine.generate(request)
    return np.asarray(result.images[0], dtype=np.float32) / 255.0, list(result.warnings)


def test_listing_names_family_variant_precision_and_format(klein):
    engine, _, _ = klein
    infos = {i.name: i for i in engine.models.list()}
    expected = {
        "tiny-klein-folder": ("diffusers", "fp32"),
        "tiny-klein-bfl": ("safetensors", "fp32"),
        "tiny-klein-split": ("safetensors", "fp32"),
        "tiny-klein-fp8": ("safetensors", "fp8"),
        "tiny-klein-Q8_0": ("gguf", "Q8_0"),
        "tiny-klein-Q4_K": ("gguf", "Q4_K"),
    }
    for name, (fmt, precision) in expected.items():
        info = infos[name]
        assert (info.family, info.variant, info.format, info.precision) == (
            "flux2",
            "flux2-klein-4b",
            fmt,
            precision,
        ), name
    assert not {"qwen_3_tiny", "flux2-vae"} & set(infos)  # companions are not checkpoints


@pytest.mark.parametrize(
    "model", ["tiny-klein-folder", "tiny-klein-bfl", "tiny-klein-split", "tiny-klein-named"]
)
def test_layouts_equal_diffusers_klein_pipeline(klein, model):
    engine, components, _ = klein
    ours, warnings = generate(engine, model)
    assert np.abs(ours - reference(components)).max() <= TOLERANCE
    assert not any("Distilled CFG" in w for w in warnings)


@pytest.mark.parametrize(
    ("model", "key"), [("tiny-klein-Q8_0", "q8"), ("tiny-klein-Q4_K", "q4k"), ("tiny-klein-fp8", "fp8")]
)
def test_quantized_files_equal_diffusers_on_their_dequantized_weights(klein, model, key):
    engine, components, meant = klein
    ours, _ = generate(engine, model)
    assert np.abs(ours - reference(with_transformer_weights(components, meant[key]))).max() <= TOLERANCE
    original = flux2_files.klein_to_bfl(components["transformer"])
    assert any(not torch.equal(meant[key][k], original[k]) for k in original)  # really quantised


def test_real_cfg_equals_klein_base_pipeline(klein):
    engine, components, _ = klein
    ours, _ = generate(engine, "tiny-klein-folder", cfg_scale=4.0)
    assert np.abs(ours - reference(components, cfg_scale=4.0)).max() <= TOLERANCE


def test_bfl_names_round_trip():
    """diffusers' FLUX.2 converter inverts the tests' diffusers -> BFL writer exactly."""
    from diffusers import Flux2Transformer2DModel
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    torch.manual_seed(1)
    model = Flux2Transformer2DModel(
        patch_size=1, in_channels=32, num_layers=2, num_single_layers=2, attention_head_dim=32,
        num_attention_heads=2, joint_attention_dim=96, axes_dims_rope=(8, 8, 8, 8), guidance_embeds=False,
    )  # fmt: skip
    back = convert_flux2_transformer_checkpoint_to_diffusers(flux2_files.klein_to_bfl(model))
    reference = model.state_dict()
    assert set(back) == set(reference)
    assert all(torch.equal(back[k], reference[k]) for k in reference)


def test_detection_tells_klein_from_flux1_by_tensors():
    from core.errors import ModelError
    from core.families.flux import FAMILY as FLUX
    from core.families.flux2 import FAMILY as FLUX2

    klein4 = {"double_blocks.0.img_attn.norm.key_norm.scale": [128], "single_stream_modulation.lin.weight": [9216, 3072], "txt_in.weight": [3072, 7680]}  # fmt: skip
    klein9 = {**klein4, "txt_in.weight": [4096, 12288]}
    prefixed = {"model.diffusion_model." + k: v for k, v in klein9.items()}
    dev2 = {**klein4, "guidance_in.in_layer.weight": [6144, 256]}  # FLUX.2 [dev]: not Klein
    flux1 = {"double_blocks.0.img_attn.norm.key_norm.scale": [128], "guidance_in.in_layer.bias": [3072]}
    assert FLUX2.detect_keys(klein4) == "flux2-klein-4b"
    assert FLUX2.detect_keys(klein9) == FLUX2.detect_keys(prefixed) == "flux2-klein-9b"
    assert FLUX2.detect_keys(flux1) is None
    with pytest.raises(ModelError, match=r"FLUX\.2 \[dev\].*Klein"):
        FLUX2.detect_keys(dev2)
    assert FLUX.detect_keys(klein4) is None and FLUX.detect_keys(dev2) is None
    assert FLUX.detect_keys(flux1) == "flux-dev"


@pytest.mark.parametrize(
    ("lora", "family"), [("klein-diffusers", "flux2"), ("klein-comfyui", "flux"), ("klein-kohya", "flux")]
)
def test_lora_equals_diffusers_and_switches_off_exactly(klein, lora, family):
    """The common Klein LoRA layouts, hot-swapped: on equals diffusers' load_lora_weights,
    off restores the base image exactly. The ComfyUI and kohya files' names are FLUX.1's
    (they read as "flux"); they go onto Klein because their layers fit."""
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline

    from extensions.lora import STATE

    engine, components, _ = klein
    info = {i.name: i for i in STATE.library.scan()}[lora]
    assert info.family == family
    base, _ = generate(engine, "tiny-klein-folder")
    styled, warnings = generate(engine, "tiny-klein-folder", prompt=f"{PROMPT} <lora:{lora}:1>")
    off, _ = generate(engine, "tiny-klein-folder")
    assert not any("not applied" in w for w in warnings), warnings
    assert np.array_equal(off, base)  # switching it off restores the base image exactly
    assert np.abs(styled - base).max() > 0.05  # it changes the image
    pipe = Flux2KleinPipeline(
        **{
            **components,
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config),
        },
        is_distilled=True,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(info.path), adapter_name="klein")
    try:
        expected = pipe(
            prompt=PROMPT, guidance_scale=1.0, num_inference_steps=STEPS, height=SIZE, width=SIZE,
            output_type="np", generator=torch.Generator("cpu").manual_seed(SEED),
        ).images[0]  # fmt: skip
    finally:
        pipe.unload_lora_weights()  # the components are the module's reference
    assert np.abs(styled - expected).max() <= TOLERANCE


def test_lora_family_check():
    from extensions.lora import families_fit

    assert (
        families_fit("flux", "flux2") and families_fit("flux2", "flux2") and families_fit("unknown", "flux2")
    )
    assert not families_fit("flux2", "flux") and not families_fit("zimage", "flux2")
    assert families_fit("chroma", "flux") and families_fit("flux", "chroma")


def test_sdapi_and_native_api_list_the_family(klein):
    """A1111 clients see the Klein checkpoints in /sdapi/v1/sd-models; the native API names the family."""
    from fastapi.testclient import TestClient

    from core.api.app import create_app
    from core.jobs import JobService, SqliteJobQueue

    engine, _, _ = klein
    settings = engine.host.settings
    service = JobService.for_engine(
        engine, SqliteJobQueue(settings.state_dir / "queue.db"), settings=settings
    )
    with TestClient(create_app(engine.host, service, engine=engine), base_url="http://127.0.0.1") as client:
        listed = {m["model_name"]: m for m in client.get("/sdapi/v1/sd-models").json()}
        native = {m["name"]: m for m in client.get("/api/v1/models").json()}
    assert {"tiny-klein-folder", "tiny-klein-bfl", "tiny-klein-split", "tiny-klein-Q8_0"} <= set(listed)
    assert listed["tiny-klein-Q4_K"]["filename"].endswith("tiny-klein-Q4_K.gguf")
    assert {native[n]["family"] for n in ("tiny-klein-folder", "tiny-klein-split", "tiny-klein-fp8")} == {
        "flux2"
    }


def test_easel_models_shows_family_and_size(klein):
    from core.cli.models import family_cell

    engine, _, _ = klein
    infos = {i.name: i for i in engine.models.list()}
    assert family_cell(infos["tiny-klein-Q8_0"]) == "flux2/klein-4b"
    assert family_cell(infos["tiny-klein-folder"]) == "flux2/klein-4b"  # is_distilled: true


@pytest.mark.parametrize("model", ["tiny-klein-folder", "tiny-klein-Q8_0"])
def test_offload_modes_give_the_full_mode_image(klein, tmp_path, model):
    """The VAE's BatchNorm statistics are read outside its forward: they must be real under
    every memory mode, and the image the same."""
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    engine, _, _ = klein
    full, _ = generate(engine, model)
    for mode in ("model-offload", "sequential-offload"):
        settings = Settings(
            data_dir=tmp_path / mode, models_dir=engine.host.settings.models_dir, safe_mode=True, device="cpu",
            memory_mode=mode,
        )  # fmt: skip
        host = Host(settings).start()
        try:
            request = GenerationRequest(
                prompt=PROMPT, seed=SEED, steps=STEPS, width=SIZE, height=SIZE, model=model, sampler="Euler",
                save_images=False,
            )  # fmt: skip
            result = Engine(host).generate(request)
        finally:
            host.stop()
        assert result.parameters["memory_mode"] == mode
        assert np.array_equal(np.asarray(result.images[0], dtype=np.float32) / 255.0, full), mode


def test_fp8_scaled_qwen3_file_loads_as_its_dequantized_weights(tmp_path):
    """ComfyUI also ships Klein's Qwen3 as scaled FP8: it is widened with its scales."""
    from core.config import MODEL_CONFIGS_DIR
    from core.families.zimage_files import load_text_encoder

    encoder = flux2_files.tiny_klein_components(tmp_path / "tokenizer", seed=4)["text_encoder"]
    state = {k: v for k, v in encoder.state_dict().items() if not k.startswith("lm_head.")}
    fp8_file, meant = flux_files.to_fp8_scaled(state)
    path = tiny_models.write_single_file(tmp_path / "qwen_3_tiny_fp8_scaled.safetensors", fp8_file)
    config_dir = tmp_path / "configs"
    shutil.copytree(MODEL_CONFIGS_DIR / "flux2-klein-4b", config_dir)
    encoder.config.save_pretrained(str(config_dir / "text_encoder"))
    loaded = load_text_encoder(path, config_dir, torch.float32).state_dict()
    assert set(loaded) == {k.removeprefix("model.") for k in meant}
    assert all(torch.equal(loaded[k.removeprefix("model.")], v) for k, v in meant.items())
    assert any(not torch.equal(meant[k], state[k]) for k in state)  # really quantised


def test_a_flux1_vae_file_is_refused_as_the_flux2_vae(tmp_path):
    from core.config import MODEL_CONFIGS_DIR
    from core.errors import ModelError
    from core.families.flux2 import load_vae

    path = tiny_models.write_single_file(tmp_path / "ae.safetensors", flux1_vae_file())
    with pytest.raises(ModelError, match=r"not a FLUX\.2 VAE"):
        load_vae(path, MODEL_CONFIGS_DIR / "flux2-klein-4b", torch.float32)


def test_folder_variant_and_defaults_follow_is_distilled(tmp_path):
    import json

    from core.families.flux2 import FAMILY

    for distilled, width, variant, steps, cfg in (
        (True, 7680, "flux2-klein-4b", 4, 1.0),
        (False, 12288, "flux2-klein-9b-base", 50, 4.0),
    ):
        folder = tmp_path / variant
        (folder / "transformer").mkdir(parents=True)
        (folder / "model_index.json").write_text(
            json.dumps({"_class_name": "Flux2KleinPipeline", "is_distilled": distilled})
        )
        (folder / "transformer" / "config.json").write_text(json.dumps({"joint_attention_dim": width}))
        assert FAMILY.folder_variant(folder) == variant
        defaults = FAMILY.defaults_for(variant)
        assert (defaults.steps, defaults.cfg_scale) == (steps, cfg)
        assert FAMILY.config_dir_for(variant) == variant.removesuffix("-base")
