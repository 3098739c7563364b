"""A ComfyUI models folder as --models-dir, and Z-Image from ComfyUI's three files.

The folder holds tiny files in ComfyUI's key layouts: the transformer in
``diffusion_models/`` (original Z-Image keys, ``model.diffusion_model.`` prefix), the Qwen3
text encoder in ``text_encoders/`` (transformers' keys with ComfyUI's ``model.`` prefix) and
the VAE in ``vae/ae.safetensors`` (original BFL/LDM keys); an A1111 ``Stable-diffusion/``
beside them. Shapes come from a ``<name>.config/`` folder of configs only (the shipped
configs are the 6B model's). The tokenizer is the one Easel builds (tests/test_qwen_tokenizer.py).

The reference is diffusers' ``ZImagePipeline`` built from the modules the files were written
from, with the same tokenizer, seed and schedule.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from core.errors import ModelError
from plugin_api import GenerationRequest
from tests import tiny_models

TOLERANCE = 1.5 / 255.0  # one 8-bit level after rounding plus summation-order noise


def tiny_components(tokenizer_cache) -> dict:
    """Tiny Z-Image components whose text encoder reads the real Qwen vocabulary."""
    from transformers import Qwen3Config, Qwen3Model

    from core.families.qwen_tokenizer import qwen3_tokenizer

    components = tiny_models.tiny_zimage_components(seed=3)
    torch.manual_seed(3)
    components["text_encoder"] = Qwen3Model(
        Qwen3Config(
            vocab_size=151936, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=512,
        )
    ).eval()  # fmt: skip
    components["tokenizer"] = qwen3_tokenizer(tokenizer_cache)
    return components


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, tiny_sd15_dir):
    from diffusers import ZImagePipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("comfyui")
    components = tiny_components(root / "tokenizer-cache")
    models = root / "models"
    transformer = tiny_models.write_single_file(
        models / "diffusion_models" / "tiny-z.safetensors", tiny_models.zimage_to_single_file(components)
    )
    text_state = {"model." + k: v for k, v in components["text_encoder"].state_dict().items()}
    tiny_models.write_single_file(models / "text_encoders" / "qwen_3_tiny.safetensors", text_state)
    vae = components["vae"]
    vae_state = tiny_models.vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    tiny_models.write_single_file(
        models / "vae" / "ae.safetensors",
        {k.removeprefix("first_stage_model."): v for k, v in vae_state.items()},
    )
    # configs only (the tiny shapes); no tokenizer: Easel's own Qwen tokenizer is used
    full = root / "full"
    ZImagePipeline(**components).save_pretrained(str(full))
    sidecar = tiny_models.write_config_sidecar(full, transformer)
    shutil.rmtree(sidecar / "tokenizer")
    # an A1111 folder beside the ComfyUI ones
    (models / "Stable-diffusion").mkdir()
    (models / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    host = Host(Settings(data_dir=root / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    yield Engine(host), components, root
    host.stop()


def test_both_layouts_are_read(comfy):
    from core.models.comfyui import layouts

    engine, _, root = comfy
    infos = {i.name: i for i in engine.models.list()}
    assert infos["tiny-z"].family == "zimage" and infos["tiny-sd15"].family == "sd15"
    assert layouts(root / "models") == ["a1111", "comfyui"]
    assert [f.name for f in engine.models.folders("text_encoders")] == ["text_encoders"]
    assert "ae.safetensors" not in infos and "qwen_3_tiny" not in infos  # not checkpoints


def reference_image(components, cfg_scale: float) -> np.ndarray:
    import diffusers

    pipe = diffusers.ZImagePipeline(
        **{
            **components,
            "scheduler": diffusers.FlowMatchEulerDiscreteScheduler.from_config(
                components["scheduler"].config
            ),
        }
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        "一只红色的猫 a red cat", negative_prompt="blurry", num_inference_steps=3, guidance_scale=cfg_scale - 1.0,
        height=64, width=64, generator=torch.Generator("cpu").manual_seed(7), output_type="np",
    ).images[0]  # fmt: skip


@pytest.mark.parametrize("cfg_scale", [1.0, 3.0])
def test_three_files_equal_diffusers_zimage_pipeline(comfy, cfg_scale):
    engine, components, _ = comfy
    request = GenerationRequest(
        prompt="一只红色的猫 a red cat", negative_prompt="blurry", seed=7, steps=3, width=64, height=64,
        model="tiny-z", sampler="Euler", cfg_scale=cfg_scale,
    )  # fmt: skip
    ours = np.asarray(engine.generate(request).images[0], dtype=np.float32) / 255.0
    assert np.abs(ours - reference_image(components, cfg_scale)).max() <= TOLERANCE
    loaded = engine.models.get("tiny-z").components
    for name in ("transformer", "text_encoder", "vae"):  # every weight from the files, exactly
        reference = components[name].state_dict()
        assert all(
            torch.equal(v, reference[k]) for k, v in loaded[name].state_dict().items() if k in reference
        )


def test_sidecar_names_the_files_and_missing_ones_are_named(comfy, tmp_path):
    from core.models import comfyui

    engine, _, root = comfy
    models = root / "models"
    transformer = models / "diffusion_models" / "tiny-z.safetensors"
    folders = {"text_encoders": engine.models.folders("text_encoders"), "VAE": engine.models.folders("VAE")}
    found = comfyui.zimage_companions(transformer, 32, folders)
    assert (found.text_encoder.name, found.vae.name) == ("qwen_3_tiny.safetensors", "ae.safetensors")
    # the width must match the transformer's caption embedder
    with pytest.raises(ModelError, match="Qwen3 text encoder file of width 2560"):
        comfyui.zimage_companions(transformer, 2560, folders)
    # a sidecar <name>.easel.json wins; names outside the folders are refused
    lonely = tmp_path / "unet" / "z.safetensors"
    lonely.parent.mkdir()
    shutil.copy(transformer, lonely)
    with pytest.raises(ModelError, match=r"text_encoders.*\.easel\.json"):
        comfyui.zimage_companions(lonely, 32, {"text_encoders": [], "VAE": []})
    sidecar = lonely.with_name("z.easel.json")
    sidecar.write_text(json.dumps({"text_encoder": "qwen_3_tiny.safetensors", "vae": "ae.safetensors"}))
    named = comfyui.zimage_companions(lonely, 32, folders)
    assert named.text_encoder == (models / "text_encoders" / "qwen_3_tiny.safetensors").resolve()
    sidecar.write_text(json.dumps({"text_encoder": "../../etc/passwd", "vae": "ae.safetensors"}))
    with pytest.raises(ModelError, match="not found"):
        comfyui.zimage_companions(lonely, 32, folders)


def comfy_files_in_a_diffusers_folder(root, tmp_path, vae_name: str):
    """The issue's case: a full <name>.config/ whose text_encoder/ and vae/ hold ComfyUI's
    qwen_3 file and ae.safetensors. It used to fail after sampling with "Tensor on device
    meta is not on the expected device cpu" (diffusers left every VAE weight unloaded)."""
    models = tmp_path / "models"
    target = models / "diffusion_models" / "z.safetensors"
    target.parent.mkdir(parents=True)
    shutil.copy(root / "models" / "diffusion_models" / "tiny-z.safetensors", target)
    sidecar = target.with_name("z.config")
    shutil.copytree(root / "models" / "diffusion_models" / "tiny-z.config", sidecar)
    text = root / "models" / "text_encoders" / "qwen_3_tiny.safetensors"
    shutil.copy(text, sidecar / "text_encoder" / "model.safetensors")
    shutil.copy(root / "models" / "vae" / "ae.safetensors", sidecar / "vae" / vae_name)
    return models, sidecar


def test_comfyui_files_inside_a_diffusers_folder_work(comfy, tmp_path):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    _, components, root = comfy
    models, _ = comfy_files_in_a_diffusers_folder(root, tmp_path, "diffusion_pytorch_model.safetensors")
    host = Host(Settings(data_dir=tmp_path / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    try:
        request = GenerationRequest(
            prompt="一只红色的猫 a red cat", negative_prompt="blurry", seed=7, steps=3, width=64, height=64,
            model="z", sampler="Euler", cfg_scale=1.0,
        )  # fmt: skip
        ours = np.asarray(Engine(host).generate(request).images[0], dtype=np.float32) / 255.0
    finally:
        host.stop()
    assert np.abs(ours - reference_image(components, 1.0)).max() <= TOLERANCE


def test_unloaded_weights_are_an_error_naming_the_folder(comfy, tmp_path):
    """Whatever else leaves a weight unloaded (here: two VAE files, so the folder is taken
    as diffusers' own) is reported at load time, naming the component folder."""
    from core.config import Settings
    from core.models.manager import ModelManager

    _, _, root = comfy
    models, sidecar = comfy_files_in_a_diffusers_folder(root, tmp_path, "diffusion_pytorch_model.safetensors")
    shutil.copy(
        sidecar / "vae" / "diffusion_pytorch_model.safetensors", sidecar / "vae" / "extra.safetensors"
    )
    shutil.copytree(root / "full" / "tokenizer", sidecar / "tokenizer")  # a complete diffusers folder
    manager = ModelManager(
        Settings(data_dir=tmp_path / "data", models_dir=models, safe_mode=True, device="cpu")
    )
    with pytest.raises(ModelError) as caught:
        manager.get("z")
    message = str(caught.value)
    assert message.startswith(f"{sidecar / 'vae'}: weights missing (encoder."), message
    assert "ae.safetensors" in message and "easel.json" in message


def test_extensions_list_comfyui_loras_controlnets_and_upscalers(tmp_path, tiny_sd15_dir):
    """loras/, controlnet/ and upscale_models/ are read as A1111's Lora/, ControlNet/ and ESRGAN/."""
    from core.config import Settings
    from core.host import Host
    from extensions.controlnet import STATE as CONTROLNET
    from extensions.lora import STATE as LORA
    from tests import controlnet_files, esrgan_files, lora_files

    models = tmp_path / "models"
    lora_files.make_peft_lora(tiny_sd15_dir, models / "loras" / "comfy-style.safetensors", seed=1)
    controlnet = controlnet_files.make_controlnet(tiny_sd15_dir)
    controlnet_files.save_single_file(controlnet, models / "controlnet" / "comfy-canny.safetensors")
    esrgan_files.write_compact(models / "upscale_models" / "2x-comfy.safetensors")
    host = Host(Settings(data_dir=tmp_path / "data", models_dir=models, device="cpu")).start()
    try:
        assert "comfy-style" in [i.name for i in LORA.library.scan()]
        assert "comfy-canny" in [i.name for i in CONTROLNET.library.scan()]
        assert "2x-comfy" in host.upscalers.names()
    finally:
        host.stop()
