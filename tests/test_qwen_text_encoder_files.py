"""Quantised Qwen text encoders in the split layouts (issue #26): llama.cpp's GGUF of
Qwen3 (Z-Image, ``Qwen3-4B-Q8_0.gguf``) and of Qwen2.5-VL's language model (Qwen-Image,
``Qwen2.5-VL-7B-Instruct-Q8_0.gguf``), and a scaled-FP8 Qwen3, each generated through the
engine and compared with diffusers' pipeline whose text encoder holds what the file means
(the weights dequantised/widened, float32). The GGUF writer names tensors with gguf-py's
own tables, Easel's reader with its own, so the two are checked against each other.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from core.errors import ModelError
from plugin_api import GenerationRequest
from tests import text_encoder_files, tiny_models

TOLERANCE = 1.5 / 255.0  # one 8-bit level after rounding plus summation-order noise
pytestmark = pytest.mark.slow  # writes and loads three tiny models


def bare(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k.removeprefix(prefix): v.detach().clone() for k, v in state.items() if k.startswith(prefix)}


def test_zimage_with_qwen3_gguf_and_fp8_equals_diffusers(tmp_path):
    from diffusers import ZImagePipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host
    from tests.test_comfyui_layout import reference_image, tiny_components

    components = tiny_components(tmp_path / "tokenizer-cache")
    weights = {k: v.detach().clone() for k, v in components["text_encoder"].state_dict().items()}
    models = tmp_path / "models"
    meant = {
        "gguf": text_encoder_files.write_qwen_gguf(
            models / "text_encoders" / "Qwen3-4B-Q8_0.gguf", weights, "qwen3"
        )
    }
    fp8_file, meant["fp8"] = text_encoder_files.to_fp8_scaled({"model." + k: v for k, v in weights.items()})
    meant["fp8"] = {k.removeprefix("model."): v for k, v in meant["fp8"].items()}
    tiny_models.write_single_file(models / "text_encoders" / "qwen_3_4b_fp8_scaled.safetensors", fp8_file)
    text_encoder_files.write_other_gguf(models / "text_encoders" / "Llama-3.2-1B-Q8_0.gguf")
    vae = components["vae"]
    vae_state = tiny_models.vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    tiny_models.write_single_file(
        models / "vae" / "ae.safetensors",
        {k.removeprefix("first_stage_model."): v for k, v in vae_state.items()},
    )
    configs = tmp_path / "configs"
    ZImagePipeline(**components).save_pretrained(str(configs))
    shutil.rmtree(configs / "tokenizer")
    for file in configs.rglob("*.safetensors"):
        file.unlink()
    transformer = tiny_models.zimage_to_single_file(components)
    for name, text in (
        ("z-gguf", None),
        ("z-fp8", "qwen_3_4b_fp8_scaled.safetensors"),
        ("z-llama", "Llama-3.2-1B-Q8_0.gguf"),
    ):
        tiny_models.write_single_file(models / "diffusion_models" / f"{name}.safetensors", transformer)
        shutil.copytree(configs, models / "diffusion_models" / f"{name}.config")
        if text is not None:  # else found in text_encoders/ by its tensors: the GGUF
            sidecar = {"text_encoder": text, "vae": "ae.safetensors"}
            (models / "diffusion_models" / f"{name}.easel.json").write_text(json.dumps(sidecar))
    host = Host(Settings(data_dir=tmp_path / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    try:
        engine = Engine(host)
        for name, kind in (("z-gguf", "gguf"), ("z-fp8", "fp8")):
            request = GenerationRequest(
                prompt="一只红色的猫 a red cat", negative_prompt="blurry", seed=7, steps=3, width=64, height=64,
                model=name, sampler="Euler", cfg_scale=3.0, save_images=False,
            )  # fmt: skip
            ours = np.asarray(engine.generate(request).images[0], dtype=np.float32) / 255.0
            encoder = type(components["text_encoder"])(components["text_encoder"].config).eval()
            encoder.load_state_dict(meant[kind], strict=True)
            loaded = engine.models.get(name).components["text_encoder"].state_dict()
            assert all(torch.equal(loaded[k], v) for k, v in encoder.state_dict().items()), name
            expected = reference_image({**components, "text_encoder": encoder}, 3.0)
            assert np.abs(ours - expected).max() <= TOLERANCE, name
            assert any(not torch.equal(meant[kind][k], weights[k]) for k in weights)  # really quantised
        with pytest.raises(
            ModelError, match=r"Llama-3\.2-1B-Q8_0\.gguf: a GGUF file of architecture 'llama'"
        ):
            engine.models.get("z-llama")
    finally:
        host.stop()


def test_qwen_image_with_qwen25_vl_gguf_equals_diffusers(tmp_path):
    from diffusers import QwenImagePipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host
    from tests.qwen_image_files import tiny_qwen_image_components, vae_to_wan
    from tests.test_qwen_image_layouts import CFG, NEGATIVE, PREFIX, PROMPT, SEED, SIZE, STEPS, reference

    components = tiny_qwen_image_components(seed=3, head_dim=32)
    language = bare(components["text_encoder"].state_dict(), "model.language_model.")
    models = tmp_path / "models"
    meant = text_encoder_files.write_qwen_gguf(
        models / "text_encoders" / "Qwen2.5-VL-7B-Instruct-Q8_0.gguf", language, "qwen2vl"
    )
    tiny_models.write_single_file(
        models / "vae" / "qwen_image_vae.safetensors", vae_to_wan(components["vae"])
    )
    state = {PREFIX + k: v.detach().clone() for k, v in components["transformer"].state_dict().items()}
    tiny_models.write_single_file(models / "diffusion_models" / "qwen-gguf-text.safetensors", state)
    configs = models / "diffusion_models" / "qwen-gguf-text.config"
    QwenImagePipeline(**components).save_pretrained(str(configs))
    for file in configs.rglob("*.safetensors"):
        file.unlink()
    host = Host(Settings(data_dir=tmp_path / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    try:
        request = GenerationRequest(
            prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, width=SIZE, height=SIZE,
            model="qwen-gguf-text", sampler="Euler", cfg_scale=CFG, save_images=False,
        )  # fmt: skip
        engine = Engine(host)
        ours = np.asarray(engine.generate(request).images[0], dtype=np.float32) / 255.0
        loaded = engine.models.get("qwen-gguf-text").components["text_encoder"]
        loaded_language = bare(loaded.state_dict(), "model.language_model.")
    finally:
        host.stop()
    encoder = type(components["text_encoder"])(components["text_encoder"].config).eval()
    encoder.load_state_dict(components["text_encoder"].state_dict())
    encoder.model.language_model.load_state_dict(meant, strict=True)
    assert all(torch.equal(loaded_language[k], v) for k, v in meant.items())
    expected = reference({**components, "text_encoder": encoder})
    assert np.abs(ours - expected).max() <= TOLERANCE
    assert any(not torch.equal(meant[k], language[k]) for k in language)  # really quantised
