"""Qwen-Image LoRAs in the formats people share, hot-swapped, against diffusers.

The same tiny LoRA (rank 4 over attention, MLP and modulation layers of the tiny
Qwen-Image) is written in four layouts: diffusers/PEFT (``transformer.*.lora_A/B``),
ai-toolkit (``diffusion_model.*.lora_A/B``), ComfyUI (``diffusion_model.*.lora_down/up`` +
``alpha``) and kohya/musubi (``lora_unet_transformer_blocks_N_*`` + ``alpha``). Each,
through the engine with ``<lora:name:0.7>``, gives the image of diffusers'
``QwenImagePipeline.load_lora_weights`` + ``set_adapters(..., 0.7)``; a request without it
gives the base image again, bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from plugin_api import GenerationRequest
from tests.qwen_image_files import make_tiny_qwen_image, tiny_qwen_image_components

TOLERANCE = 1.5 / 255.0  # one 8-bit level after rounding plus summation-order noise
PROMPT, NEGATIVE = "a red fox in the snow", "blurry"
SIZE, STEPS, SEED, CFG, WEIGHT = 64, 3, 11, 4.0, 0.7
RANK, ALPHA = 4, 2.0
# diffusers module names of the tiny transformer (width 32) -> (out, in) features
TARGETS = {
    "transformer_blocks.0.attn.to_q": (32, 32),
    "transformer_blocks.0.attn.add_k_proj": (32, 32),
    "transformer_blocks.0.attn.to_out.0": (32, 32),
    "transformer_blocks.0.img_mod.1": (192, 32),
    "transformer_blocks.1.img_mlp.net.0.proj": (128, 32),
    "transformer_blocks.1.txt_mlp.net.2": (32, 128),
}
FORMATS = ("diffusers", "aitoolkit", "comfyui", "kohya")


def lora_weights(seed: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return {
        name: (torch.randn(RANK, fan_in, generator=generator) * 0.3, torch.randn(fan_out, RANK, generator=generator) * 0.3)
        for name, (fan_out, fan_in) in TARGETS.items()
    }  # fmt: skip


def write_lora(path: Path, layout: str, seed: int = 2, up_scale: float = 1.0) -> Path:
    """The LoRA in one layout. lora_A/B files carry no alpha (scale 1); lora_down/up files
    carry ``ALPHA`` (scale alpha / rank, as kohya and ComfyUI apply it)."""
    state = {}
    for name, (down, up) in lora_weights(seed).items():
        up = up * up_scale
        if layout == "diffusers":
            state[f"transformer.{name}.lora_A.weight"], state[f"transformer.{name}.lora_B.weight"] = down, up
        elif layout == "aitoolkit":
            state[f"diffusion_model.{name}.lora_A.weight"] = down
            state[f"diffusion_model.{name}.lora_B.weight"] = up
        else:
            base = f"diffusion_model.{name}" if layout == "comfyui" else "lora_unet_" + name.replace(".", "_")
            state[f"{base}.lora_down.weight"], state[f"{base}.lora_up.weight"] = down, up
            state[f"{base}.alpha"] = torch.tensor(ALPHA)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def qwen_lora(tmp_path_factory):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("qwen-lora")
    models = root / "models"
    make_tiny_qwen_image(models / "Stable-diffusion" / "tiny-qwen", seed=4)
    for layout in FORMATS:
        write_lora(models / "Lora" / f"qwen-{layout}.safetensors", layout)
    # what the alpha of the lora_down/up files means, spelled out as plain lora_A/B weights
    write_lora(models / "Lora" / "qwen-alpha-applied.safetensors", "diffusers", up_scale=ALPHA / RANK)
    host = Host(Settings(data_dir=root / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    yield Engine(host), models
    host.stop()


def generate(engine, prompt: str) -> tuple[np.ndarray, list[str]]:
    request = GenerationRequest(
        prompt=prompt, negative_prompt=NEGATIVE, seed=SEED, steps=STEPS, width=SIZE, height=SIZE,
        model="tiny-qwen", sampler="Euler", cfg_scale=CFG, save_images=False,
    )  # fmt: skip
    result = engine.generate(request)
    return np.asarray(result.images[0], dtype=np.float32) / 255.0, list(result.warnings)


def diffusers_image(lora: Path | None) -> np.ndarray:
    from diffusers import QwenImagePipeline

    pipe = QwenImagePipeline(**tiny_qwen_image_components(seed=4))
    pipe.set_progress_bar_config(disable=True)
    if lora is not None:
        pipe.load_lora_weights(str(lora), adapter_name="style")
        pipe.set_adapters(["style"], [WEIGHT])
    return pipe(
        PROMPT, negative_prompt=NEGATIVE, true_cfg_scale=CFG, num_inference_steps=STEPS, height=SIZE,
        width=SIZE, generator=torch.Generator("cpu").manual_seed(SEED), output_type="np",
    ).images[0]  # fmt: skip


def test_lora_files_are_listed_as_qwen_image(qwen_lora):
    from extensions.lora import STATE

    infos = {i.name: i for i in STATE.library.scan()}
    assert {layout: infos[f"qwen-{layout}"].family for layout in FORMATS} == {
        # lora_A/B on attention alone would say nothing; these touch img_mod/img_mlp
        layout: "qwen_image"
        for layout in FORMATS
    }


@pytest.mark.slow
@pytest.mark.parametrize("layout", FORMATS)
def test_lora_equals_diffusers_and_switches_off_exactly(qwen_lora, layout):
    engine, models = qwen_lora
    base, _ = generate(engine, PROMPT)
    styled, warnings = generate(engine, f"{PROMPT} <lora:qwen-{layout}:{WEIGHT}>")
    off, _ = generate(engine, PROMPT)
    assert not warnings, warnings
    assert np.array_equal(off, base)  # switching it off restores the base image exactly
    assert np.abs(styled - base).max() > 0.05  # it changes the image
    assert np.abs(base - diffusers_image(None)).max() <= TOLERANCE
    expected = diffusers_image(models / "Lora" / f"qwen-{layout}.safetensors")
    assert np.abs(styled - expected).max() <= TOLERANCE


@pytest.mark.slow
def test_alpha_scales_as_alpha_over_rank(qwen_lora):
    """Checked without diffusers' converter: ComfyUI's and kohya's files (alpha 2, rank 4)
    equal the lora_A/B file whose up weights are scaled by alpha / rank."""
    engine, _ = qwen_lora
    applied, _ = generate(engine, f"{PROMPT} <lora:qwen-alpha-applied:{WEIGHT}>")
    for layout in ("comfyui", "kohya"):
        got, _ = generate(engine, f"{PROMPT} <lora:qwen-{layout}:{WEIGHT}>")
        assert np.abs(got - applied).max() <= TOLERANCE, layout


def test_flux_loras_with_the_same_layer_names_stay_flux():
    """BFL's FLUX.1 blocks have img_mod/img_mlp too: their LoRAs are still FLUX.1's."""
    from extensions.lora.library import guess_family

    assert guess_family({"lora_unet_double_blocks_0_img_mod_lin.lora_down.weight": [4, 64]}) == "flux"
    assert guess_family({"diffusion_model.double_blocks.0.img_mlp.0.lora_A.weight": [4, 64]}) == "flux"
    kohya_qwen = {"lora_unet_transformer_blocks_0_img_mlp_net_0_proj.lora_down.weight": [4, 3072]}
    assert guess_family(kohya_qwen) == "qwen_image"
