"""Qwen-Image in the layouts ComfyUI users have, against diffusers' QwenImagePipeline.

One tiny Qwen-Image (transformer 64 wide so that K-quant blocks fit its MLP rows) is
written as ComfyUI's split files: ``diffusion_models/`` (keys prefixed
``model.diffusion_model.``), ``text_encoders/qwen_2.5_vl_7b.safetensors`` (Qwen2.5-VL in
the original Hugging Face names, no head) and ``vae/qwen_image_vae.safetensors`` (Wan 2.1
layout); as GGUF transformers (Q8_0, Q4_K) in ``unet/`` and a scaled-FP8 one, with the same
companions. Each goes through the engine (the path of ``easel generate --model``) and is
compared with diffusers' pipeline on what the files mean (GGUF/FP8: their dequantised
weights), same seed and prompts, true CFG 4 with a negative prompt.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from plugin_api import GenerationRequest
from tests import flux_files, tiny_models
from tests.qwen_image_files import text_encoder_as_comfyui, tiny_qwen_image_components, vae_to_wan

# one 8-bit level after rounding plus summation-order noise (GGUF/FP8 are compared with
# their own dequantised weights, so they meet the same bound)
TOLERANCE = 1.5 / 255.0
PROMPT, NEGATIVE = "a red fox in the snow", "blurry"
SIZE, STEPS, SEED, CFG = 64, 3, 11, 4.0
PREFIX = "model.diffusion_model."
pytestmark = pytest.mark.slow  # builds and loads five tiny models (~20 s of CPU)


def reference(components: dict, lora=None) -> np.ndarray:
    from diffusers import FlowMatchEulerDiscreteScheduler, QwenImagePipeline

    scheduler = FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config)
    pipe = QwenImagePipeline(**{**components, "scheduler": scheduler})
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:  # on a transformer of the test's own: nothing to unload
        pipe.load_lora_weights(str(lora), adapter_name="style")
    return pipe(
        PROMPT, negative_prompt=NEGATIVE, true_cfg_scale=CFG, num_inference_steps=STEPS, height=SIZE,
        width=SIZE, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np",
    ).images[0]  # fmt: skip


def with_transformer_weights(components: dict, meant: dict[str, torch.Tensor]) -> dict:
    from diffusers import QwenImageTransformer2DModel

    transformer = QwenImageTransformer2DModel.from_config(components["transformer"].config)
    transformer.load_state_dict(meant, strict=True)
    return {**components, "transformer": transformer.eval()}


def write_wide_lora(path) -> None:
    """A diffusers-format LoRA for the 64-wide transformer (one attention, one MLP layer)."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(1)
    state = {}
    for name, (fan_out, fan_in) in {
        "transformer_blocks.0.attn.to_q": (64, 64),
        "transformer_blocks.1.img_mlp.net.2": (64, 256),
    }.items():
        state[f"transformer.{name}.lora_A.weight"] = torch.randn(4, fan_in, generator=generator) * 0.3
        state[f"transformer.{name}.lora_B.weight"] = torch.randn(fan_out, 4, generator=generator) * 0.3
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    from diffusers import QwenImagePipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("qwen-layouts")
    components = tiny_qwen_image_components(seed=3, head_dim=32)
    configs = root / "configs"
    QwenImagePipeline(**components).save_pretrained(str(configs))
    for weights in configs.rglob("*.safetensors"):
        weights.unlink()  # the shapes only: the weights come from the files
    models = root / "models"
    state = {k: v.detach().clone() for k, v in components["transformer"].state_dict().items()}
    split = tiny_models.write_single_file(
        models / "diffusion_models" / "tiny-qwen-split.safetensors", {PREFIX + k: v for k, v in state.items()}
    )
    tiny_models.write_single_file(
        models / "text_encoders" / "qwen_2.5_vl_7b.safetensors",
        text_encoder_as_comfyui(components["text_encoder"]),
    )
    tiny_models.write_single_file(
        models / "vae" / "qwen_image_vae.safetensors", vae_to_wan(components["vae"])
    )
    meant = {"split": state}
    gguf_state = {k: v for k, v in state.items()}  # city96's Qwen-Image GGUFs: bare names
    meant["q8"] = flux_files.write_gguf(models / "unet" / "tiny-qwen-Q8_0.gguf", gguf_state, "Q8_0")
    meant["q4k"] = flux_files.write_gguf(models / "unet" / "tiny-qwen-Q4_K.gguf", gguf_state, "Q4_K")
    fp8_file, fp8_meant = flux_files.to_fp8_scaled({PREFIX + k: v for k, v in state.items()})
    tiny_models.write_single_file(models / "diffusion_models" / "tiny-qwen-fp8-scaled.safetensors", fp8_file)
    meant["fp8"] = {k.removeprefix(PREFIX): v for k, v in fp8_meant.items()}
    for folder, name in (
        ("diffusion_models", "tiny-qwen-split"),
        ("diffusion_models", "tiny-qwen-fp8-scaled"),
        ("unet", "tiny-qwen-Q8_0"),
        ("unet", "tiny-qwen-Q4_K"),
    ):
        shutil.copytree(configs, models / folder / f"{name}.config")
    assert split.exists()
    write_wide_lora(models / "Lora" / "qwen-wide.safetensors")
    host = Host(Settings(data_dir=root / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    engine = Engine(host)
    engine.models_root = models
    yield engine, components, meant
    host.stop()


def generate(engine, model: str, prompt: str = PROMPT) -> np.ndarray:
    request = GenerationRequest(
        prompt=prompt, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, width=SIZE, height=SIZE, model=model,
        sampler="Euler", cfg_scale=CFG, save_images=False,
    )  # fmt: skip
    result = engine.generate(request)
    assert not result.warnings, result.warnings
    return np.asarray(result.images[0], dtype=np.float32) / 255.0


def test_listing_names_family_precision_and_format(qwen):
    engine, _, _ = qwen
    infos = {i.name: i for i in engine.models.list()}
    expected = {
        "tiny-qwen-split": ("safetensors", "fp32"),
        "tiny-qwen-fp8-scaled": ("safetensors", "fp8"),
        "tiny-qwen-Q8_0": ("gguf", "Q8_0"),
        "tiny-qwen-Q4_K": ("gguf", "Q4_K"),
    }
    for name, (fmt, precision) in expected.items():
        assert (infos[name].family, infos[name].format, infos[name].precision) == (
            "qwen_image",
            fmt,
            precision,
        )
    assert not {"qwen_2.5_vl_7b", "qwen_image_vae"} & set(infos)  # companions are not checkpoints


def test_split_files_equal_diffusers_pipeline(qwen):
    engine, components, _ = qwen
    got = generate(engine, "tiny-qwen-split")
    assert np.abs(got - reference(components)).max() <= TOLERANCE


@pytest.mark.parametrize(
    ("model", "key"), [("tiny-qwen-Q8_0", "q8"), ("tiny-qwen-Q4_K", "q4k"), ("tiny-qwen-fp8-scaled", "fp8")]
)
def test_quantized_files_equal_diffusers_on_their_dequantized_weights(qwen, model, key):
    engine, components, meant = qwen
    got = generate(engine, model)
    assert np.abs(got - reference(with_transformer_weights(components, meant[key]))).max() <= TOLERANCE
    # the quantisation is real: the dequantised weights differ from the originals
    assert any(not torch.equal(meant[key][k], meant["split"][k]) for k in meant["split"])


def test_comfyui_vae_and_text_encoder_load_exactly(qwen, tmp_path):
    """The Wan-layout VAE and the Hugging Face-named Qwen2.5-VL file give the original
    weights tensor for tensor (the head, which the file lacks, is not used)."""
    from core.families.qwen_image_files import load_text_encoder, load_vae

    engine, components, _ = qwen
    config_dir = engine.models_root / "diffusion_models" / "tiny-qwen-split.config"
    vae = load_vae(engine.models_root / "vae" / "qwen_image_vae.safetensors", config_dir, torch.float32)
    expected = components["vae"].state_dict()
    assert vae.state_dict().keys() == expected.keys()
    assert all(torch.equal(vae.state_dict()[k], expected[k]) for k in expected)
    encoder = load_text_encoder(
        engine.models_root / "text_encoders" / "qwen_2.5_vl_7b.safetensors", config_dir, torch.float32
    )
    expected = components["text_encoder"].state_dict()
    assert all(
        torch.equal(encoder.state_dict()[k], expected[k]) for k in expected if not k.startswith("lm_head.")
    )


def test_sidecar_names_the_files_and_missing_ones_are_named(qwen, tmp_path):
    from core.config import Settings
    from core.engine import Engine
    from core.errors import ModelError
    from core.host import Host

    engine, components, _ = qwen
    models = tmp_path / "models"
    source = engine.models_root
    (models / "diffusion_models").mkdir(parents=True)
    shutil.copy(
        source / "diffusion_models" / "tiny-qwen-split.safetensors",
        models / "diffusion_models" / "mine.safetensors",
    )
    shutil.copytree(
        source / "diffusion_models" / "tiny-qwen-split.config", models / "diffusion_models" / "mine.config"
    )
    host = Host(Settings(data_dir=tmp_path / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    try:
        with pytest.raises(
            ModelError, match=r"Qwen2\.5-VL text encoder file of width 32.*Qwen-Image VAE file"
        ):
            Engine(host).models.get("mine")
        # files under other names, beside the transformer, named by a sidecar
        shutil.copy(
            source / "text_encoders" / "qwen_2.5_vl_7b.safetensors",
            models / "diffusion_models" / "te.safetensors",
        )
        shutil.copy(
            source / "vae" / "qwen_image_vae.safetensors", models / "diffusion_models" / "v.safetensors"
        )
        sidecar = models / "diffusion_models" / "mine.easel.json"
        sidecar.write_text(json.dumps({"text_encoder": "te.safetensors", "vae": "v.safetensors"}))
        got = generate(Engine(host), "mine")
    finally:
        host.stop()
    assert np.abs(got - reference(components)).max() <= TOLERANCE


def test_lora_on_the_gguf_transformer_equals_diffusers_on_its_dequantized_weights(qwen):
    from extensions.lora import STATE

    engine, components, meant = qwen
    # the LoRA folders are the last started host's: another test may have started one elsewhere
    STATE.library.folders = [engine.models_root / "Lora"]
    base = generate(engine, "tiny-qwen-Q8_0")
    styled = generate(engine, "tiny-qwen-Q8_0", prompt=f"{PROMPT} <lora:qwen-wide:1>")
    assert np.array_equal(generate(engine, "tiny-qwen-Q8_0"), base)  # off: the base image exactly
    assert np.abs(styled - base).max() > 0.05
    expected = reference(
        with_transformer_weights(components, meant["q8"]),
        engine.models_root / "Lora" / "qwen-wide.safetensors",
    )
    assert np.abs(styled - expected).max() <= TOLERANCE


@pytest.mark.parametrize("model", ["tiny-qwen-split", "tiny-qwen-Q8_0"])
def test_offload_modes_give_the_full_mode_image(qwen, tmp_path, model):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    engine, _, _ = qwen
    full = generate(engine, model)
    for mode in ("model-offload", "sequential-offload"):
        settings = Settings(
            data_dir=tmp_path / mode,
            models_dir=engine.models_root,
            safe_mode=True,
            device="cpu",
            memory_mode=mode,
        )
        host = Host(settings).start()
        try:
            assert np.array_equal(generate(Engine(host), model), full), mode
        finally:
            host.stop()


def test_wrong_companion_files_are_named(qwen, tmp_path):
    from core.errors import ModelError
    from core.families.qwen_image_files import load_text_encoder, load_vae

    engine, _, _ = qwen
    config_dir = engine.models_root / "diffusion_models" / "tiny-qwen-split.config"
    flux_vae = tiny_models.write_single_file(
        tmp_path / "ae.safetensors", {"decoder.conv_in.weight": torch.zeros(8, 16, 3, 3)}
    )
    with pytest.raises(ModelError, match=r"ae\.safetensors: not a Qwen-Image VAE"):
        load_vae(flux_vae, config_dir, torch.float32)
    wan = tiny_models.write_single_file(
        tmp_path / "wan.safetensors", {"decoder.upsamples.99.residual.0.gamma": torch.zeros(8)}
    )
    with pytest.raises(ModelError, match=r"wan\.safetensors: not a Qwen-Image \(Wan\) VAE"):
        load_vae(wan, config_dir, torch.float32)
    qwen3 = tiny_models.write_single_file(
        tmp_path / "qwen3.safetensors", {"model.layers.0.self_attn.q_norm.weight": torch.zeros(8)}
    )
    with pytest.raises(ModelError, match=r"qwen3\.safetensors: not a Qwen2\.5-VL text encoder"):
        load_text_encoder(qwen3, config_dir, torch.float32)
