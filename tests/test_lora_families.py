"""LoRA on the SDXL and Z-Image families (tiny models): PEFT-layout LoRAs made on each
model's own UNet/transformer are listed with the right family, change the image, switch
off bit-identically, and a LoRA used on the wrong family gives a warning naming the file
and both families while the image is the base model's."""

from __future__ import annotations

import numpy as np
import pytest

from extensions.lora import STATE
from plugin_api.types import GenerationRequest
from tests.lora_files import make_component_lora, make_peft_lora

ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
CLIP_ATTENTION = ["q_proj", "k_proj", "v_proj", "out_proj"]


@pytest.fixture(scope="module")
def family_models(tmp_path_factory, tiny_sd15_dir, tiny_sdxl_dir, tiny_zimage_dir):
    from diffusers import UNet2DConditionModel, ZImageTransformer2DModel
    from transformers import CLIPTextModelWithProjection

    root = tmp_path_factory.mktemp("lora-family-models")
    (root / "Stable-diffusion").mkdir()
    for folder in (tiny_sd15_dir, tiny_sdxl_dir, tiny_zimage_dir):
        (root / "Stable-diffusion" / folder.name).symlink_to(folder, target_is_directory=True)
    lora = root / "Lora"
    make_peft_lora(tiny_sd15_dir, lora / "sd15_style.safetensors", seed=1)
    # SDXL: UNet + second text encoder (the text_encoder_2 keys say SDXL) ...
    make_component_lora(
        [
            (UNet2DConditionModel.from_pretrained(tiny_sdxl_dir / "unet"), "unet", ATTENTION),
            (
                CLIPTextModelWithProjection.from_pretrained(tiny_sdxl_dir / "text_encoder_2"),
                "text_encoder_2",
                CLIP_ATTENTION,
            ),
        ],
        lora / "xl_style.safetensors",
        seed=3,
    )
    # ... and UNet only, where only kohya's metadata says SDXL (the tiny UNet's
    # cross-attention width is not SDXL's 2048)
    make_component_lora(
        [(UNet2DConditionModel.from_pretrained(tiny_sdxl_dir / "unet"), "unet", ATTENTION)],
        lora / "xl_unet_only.safetensors",
        seed=5,
        metadata={"ss_base_model_version": "sdxl_base_v1-0"},
    )
    make_component_lora(
        [
            (
                ZImageTransformer2DModel.from_pretrained(tiny_zimage_dir / "transformer"),
                "transformer",
                [*ATTENTION, "w1", "w2", "w3"],
            )
        ],
        lora / "zimage_style.safetensors",
        seed=7,
        scale=1.0,
    )
    return root


@pytest.fixture(scope="module")
def engine(make_host, family_models):
    from core.engine import Engine

    host = make_host(models_dir=family_models)
    assert host.extensions.records["lora"].state == "loaded", host.extensions.records["lora"].error
    return Engine(host)


def generate(engine, model, prompt="a red circle"):
    request = GenerationRequest(
        prompt=prompt, seed=5, steps=2, width=64, height=64, model=model, save_images=False
    )
    result = engine.generate(request)
    return np.array(result.images[0]), result


def test_family_rank_from_keys_and_metadata(engine):
    infos = {i.name: i for i in STATE.library.scan()}
    assert (infos["xl_style"].family, infos["xl_style"].rank) == ("sdxl", 4)
    assert infos["xl_unet_only"].family == "sdxl"  # from ss_base_model_version
    assert (infos["zimage_style"].family, infos["zimage_style"].rank) == ("zimage", 4)
    assert infos["sd15_style"].family == "sd15"


@pytest.mark.parametrize(
    ("model", "lora"),
    [("tiny-sdxl", "xl_style"), ("tiny-sdxl", "xl_unet_only"), ("tiny-zimage", "zimage_style")],
)
def test_lora_changes_the_image_and_switches_off_exactly(engine, model, lora):
    base, _ = generate(engine, model)
    styled, result = generate(engine, model, f"a red circle <lora:{lora}:1>")
    assert result.warnings == []
    assert f'Lora hashes: "{lora}: {STATE.library.find(lora).hash}"' in result.infotexts[0]
    assert not np.array_equal(styled, base)
    zero, _ = generate(engine, model, f"a red circle <lora:{lora}:0>")
    plain, _ = generate(engine, model)
    assert np.array_equal(zero, base) and np.array_equal(plain, base)


@pytest.mark.parametrize(
    ("model", "lora", "lora_family", "model_family"),
    [
        ("tiny-sdxl", "sd15_style", "sd15", "sdxl"),
        ("tiny-sd15", "xl_style", "sdxl", "sd15"),
        ("tiny-zimage", "xl_unet_only", "sdxl", "zimage"),
        ("tiny-sd15", "zimage_style", "zimage", "sd15"),
        ("tiny-sdxl", "zimage_style", "zimage", "sdxl"),
    ],
)
def test_wrong_family_warns_and_leaves_the_model_untouched(engine, model, lora, lora_family, model_family):
    base, _ = generate(engine, model)
    image, result = generate(engine, model, f"a red circle <lora:{lora}:1>")
    assert len(result.warnings) == 1, result.warnings
    warning = result.warnings[0]
    assert f"{lora}.safetensors" in warning
    assert f"{lora_family} LoRA" in warning and f"is {model_family}" in warning
    assert "Lora hashes" not in result.infotexts[0]
    assert np.array_equal(image, base)
    plain, _ = generate(engine, model)
    assert np.array_equal(plain, base)
