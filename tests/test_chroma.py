"""Chroma in every layout users have, against diffusers' ChromaPipeline (real CFG with a
negative prompt). One tiny Chroma (FLUX.1's tiny blocks, the approximator, T5 with the real
tokenizer) as: a diffusers folder; BFL's original single file with a full ``<name>.config/``;
ComfyUI split files (``diffusion_models/`` + ``text_encoders/t5xxl`` + ``vae/ae``); a Q8_0
GGUF; a scaled-FP8 file. GGUF and FP8 are compared with the pipeline on their dequantised
weights."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from plugin_api import GenerationRequest
from tests import flux_files, tiny_models

TOLERANCE = 1.5 / 255.0
PROMPT = "a red fox in the snow, watercolor"
NEGATIVE = "blurry, low quality"
SIZE, STEPS, SEED, CFG = 64, 3, 13, 3.0
pytestmark = pytest.mark.slow  # builds and loads six tiny models


def reference(components: dict) -> np.ndarray:
    from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler

    pipe = ChromaPipeline(
        **{
            **components,
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config),
        }
    )
    pipe.set_progress_bar_config(disable=True)
    return reference_with(pipe)


def reference_with(pipe) -> np.ndarray:
    return pipe(
        PROMPT, negative_prompt=NEGATIVE, guidance_scale=CFG, num_inference_steps=STEPS, height=SIZE, width=SIZE,
        output_type="np", generator=torch.Generator("cpu").manual_seed(SEED), max_sequence_length=512,
    ).images[0]  # fmt: skip


def with_transformer_weights(components: dict, bfl_meant: dict[str, torch.Tensor]) -> dict:
    from diffusers import ChromaTransformer2DModel

    from core.families.flux_keys import bfl_to_diffusers

    transformer = ChromaTransformer2DModel.from_config(components["transformer"].config)
    transformer.load_state_dict(bfl_to_diffusers(dict(bfl_meant), flux_files.HIDDEN), strict=True)
    return {**components, "transformer": transformer.eval()}


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    from diffusers import ChromaPipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("chroma")
    components = flux_files.tiny_chroma_components(seed=8)
    models = root / "models"
    folder = models / "Stable-diffusion" / "tiny-chroma-folder"
    ChromaPipeline(**components).save_pretrained(str(folder))
    bfl = flux_files.flux_to_bfl(components["transformer"])
    single = tiny_models.write_single_file(models / "Stable-diffusion" / "tiny-chroma-bfl.safetensors", bfl)
    shutil.copytree(folder, single.with_name("tiny-chroma-bfl.config"))
    prefixed = {"model.diffusion_model." + k: v for k, v in bfl.items()}
    tiny_models.write_single_file(models / "diffusion_models" / "tiny-chroma-split.safetensors", prefixed)
    tiny_models.write_single_file(
        models / "text_encoders" / "t5xxl_fp16.safetensors", dict(components["text_encoder"].state_dict())
    )
    vae = components["vae"]
    vae_state = tiny_models.vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    tiny_models.write_single_file(
        models / "vae" / "ae.safetensors",
        {k.removeprefix("first_stage_model."): v for k, v in vae_state.items()},
    )
    meant = {"q8": flux_files.write_gguf(models / "unet" / "tiny-chroma-Q8_0.gguf", bfl, "Q8_0")}
    fp8_file, fp8_meant = flux_files.to_fp8_scaled(prefixed)
    tiny_models.write_single_file(models / "diffusion_models" / "tiny-chroma-fp8.safetensors", fp8_file)
    meant["fp8"] = {k.removeprefix("model.diffusion_model."): v for k, v in fp8_meant.items()}
    configs = root / "configs"
    shutil.copytree(folder, configs)
    for weights in configs.rglob("*.safetensors"):
        weights.unlink()
    for place in (
        "diffusion_models/tiny-chroma-split",
        "diffusion_models/tiny-chroma-fp8",
        "unet/tiny-chroma-Q8_0",
    ):
        shutil.copytree(configs, models / f"{place}.config")
    # kohya names on the blocks Chroma shares with FLUX.1 (no modulation layers)
    flux_files.write_kohya_lora(models / "Lora" / "chroma-kohya.safetensors", seed=4)
    host = Host(Settings(data_dir=root / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    yield Engine(host), components, meant
    host.stop()


def generate(engine, model: str, prompt: str = PROMPT) -> tuple[np.ndarray, list[str]]:
    request = GenerationRequest(
        prompt=prompt, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, width=SIZE, height=SIZE, model=model,
        sampler="Euler", cfg_scale=CFG,
    )  # fmt: skip
    result = engine.generate(request)
    return np.asarray(result.images[0], dtype=np.float32) / 255.0, list(result.warnings)


def test_listing(chroma):
    engine, _, _ = chroma
    infos = {i.name: i for i in engine.models.list()}
    expected = {
        "tiny-chroma-folder": ("diffusers", "fp32"),
        "tiny-chroma-bfl": ("safetensors", "fp32"),
        "tiny-chroma-split": ("safetensors", "fp32"),
        "tiny-chroma-fp8": ("safetensors", "fp8"),
        "tiny-chroma-Q8_0": ("gguf", "Q8_0"),
    }
    for name, (fmt, precision) in expected.items():
        assert (infos[name].family, infos[name].format, infos[name].precision) == (
            "chroma",
            fmt,
            precision,
        ), name


@pytest.mark.parametrize("model", ["tiny-chroma-folder", "tiny-chroma-bfl", "tiny-chroma-split"])
def test_layouts_equal_diffusers_chroma_pipeline(chroma, model):
    engine, components, _ = chroma
    ours, warnings = generate(engine, model)
    assert np.abs(ours - reference(components)).max() <= TOLERANCE
    assert not any("negative prompt" in w for w in warnings)  # real CFG uses it


@pytest.mark.parametrize(("model", "key"), [("tiny-chroma-Q8_0", "q8"), ("tiny-chroma-fp8", "fp8")])
def test_quantized_files_equal_diffusers_on_their_dequantized_weights(chroma, model, key):
    engine, components, meant = chroma
    ours, _ = generate(engine, model)
    assert np.abs(ours - reference(with_transformer_weights(components, meant[key]))).max() <= TOLERANCE


def test_kohya_lora_equals_diffusers_and_switches_off_exactly(chroma):
    from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler

    from extensions.lora import STATE

    engine, components, _ = chroma
    info = {i.name: i for i in STATE.library.scan()}["chroma-kohya"]
    base, _ = generate(engine, "tiny-chroma-folder")
    styled, warnings = generate(engine, "tiny-chroma-folder", prompt=f"{PROMPT} <lora:chroma-kohya:1>")
    off, _ = generate(engine, "tiny-chroma-folder")
    assert not any("not applied" in w for w in warnings), warnings
    assert np.array_equal(off, base)
    assert np.abs(styled - base).max() > 0.05
    pipe = ChromaPipeline(
        **{
            **components,
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config),
        }
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(info.path), adapter_name="kohya")
    try:
        expected = reference_with(pipe)
    finally:
        pipe.unload_lora_weights()
    assert np.abs(styled - expected).max() <= TOLERANCE
