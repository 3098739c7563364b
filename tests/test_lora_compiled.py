"""LoRA on a compiled denoiser (extensions/lora/compiled.py): switching LoRAs, weights and
combinations never recompiles, and the images match the eager path's LoRA images.

Inductor compiles the tiny UNet's blocks on the CPU (as in test_acceleration.py); Dynamo's
graph counter says whether anything was compiled again.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from plugin_api.types import GenerationRequest
from tests.lora_files import make_component_lora, make_peft_lora, to_kohya

pytestmark = pytest.mark.slow

# out of 255: compiled kernels reorder floating-point sums (2 in test_acceleration.py), and
# the slot sums the LoRA products over its zero-padded rank in another order
PIXEL_TOLERANCE = 4
MEAN_TOLERANCE = 0.5


def close(a: np.ndarray, b: np.ndarray) -> bool:
    diff = np.abs(a - b)
    return diff.max() <= PIXEL_TOLERANCE and diff.mean() <= MEAN_TOLERANCE


@pytest.fixture(scope="module")
def lora_models(tmp_path_factory, tiny_sd15_dir):
    from diffusers import UNet2DConditionModel

    root = tmp_path_factory.mktemp("compiled-lora")
    (root / "Stable-diffusion").mkdir()
    (root / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    lora = root / "Lora"
    make_peft_lora(tiny_sd15_dir, lora / "style_a.safetensors", seed=1)
    # kohya layout with alpha 2 at rank 4: scale 0.5, as a trainer's --network_alpha gives
    kohya = to_kohya(load_file(str(make_peft_lora(tiny_sd15_dir, lora / "tmp.safetensors", seed=7))))
    kohya = {k: torch.tensor(2.0) if k.endswith(".alpha") else v for k, v in kohya.items()}
    save_file(kohya, str(lora / "style_b.safetensors"))
    (lora / "tmp.safetensors").unlink()
    # other layers (the attention blocks' input/output projections, 1x1 convs here)
    unet = UNet2DConditionModel.from_pretrained(tiny_sd15_dir / "unet")
    make_component_lora([(unet, "unet", ["proj_in", "proj_out"])], lora / "proj.safetensors", seed=3)
    return root


@pytest.fixture(scope="module")
def engines(make_host, lora_models):
    from core.engine import Engine

    eager = Engine(make_host(models_dir=lora_models, compile="off"))
    compiled = Engine(make_host(models_dir=lora_models, compile="regional"))
    return eager, compiled


def generate(engine, prompt: str):
    request = GenerationRequest(
        prompt=prompt, seed=5, steps=3, width=64, height=64, model="tiny-sd15", save_images=False
    )
    result = engine.generate(request)
    assert not [w for w in result.warnings if "LoRA" in w], result.warnings
    return np.asarray(result.images[0], np.int16)


def graphs() -> int:
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def test_switching_loras_never_recompiles(engines):
    import torch._dynamo

    eager, compiled = engines
    torch._dynamo.reset()
    model = compiled.load_model("tiny-sd15")
    assert any(step.startswith("compile:regional") for step in model.acceleration)

    first = generate(compiled, "a circle <lora:style_a:1>")  # builds the slot, compiles
    warm = graphs()
    assert warm > 0
    prompts = [
        "a circle <lora:style_b:1>",
        "a circle <lora:style_a:0.6> <lora:style_b:0.8>",
        "a circle",
        "a circle <lora:style_a:0.3>",
    ]
    images = {p: generate(compiled, p) for p in prompts}
    assert graphs() == warm, "a LoRA switch recompiled the denoiser"

    # and every image is the eager path's LoRA image
    images["a circle <lora:style_a:1>"] = first
    for prompt, image in images.items():
        expected = generate(eager, prompt)
        assert close(image, expected), prompt
    assert not np.array_equal(images["a circle"], first)  # the LoRA does change the image
    # the tolerance is tight enough to see a LoRA weight off by 10%
    assert not close(generate(compiled, "a circle <lora:style_a:0.9>"), first)


def test_a_lora_on_other_layers_rebuilds_the_slot_once(engines):
    eager, compiled = engines
    generate(compiled, "a circle <lora:style_a:1>")
    pool_slot = _slot(compiled)
    before_rebuilds, before_graphs = pool_slot.rebuilds, graphs()

    image = generate(compiled, "a circle <lora:proj:1> <lora:style_a:0.5>")
    assert pool_slot.rebuilds == before_rebuilds + 1  # new layers: one rebuild
    assert close(image, generate(eager, "a circle <lora:proj:1> <lora:style_a:0.5>"))

    settled = graphs()
    assert settled >= before_graphs
    for prompt in ("a circle <lora:style_b:1>", "a circle", "a circle <lora:proj:0.5>"):
        generate(compiled, prompt)
    assert graphs() == settled and pool_slot.rebuilds == before_rebuilds + 1


def _slot(engine):
    from extensions.lora import STATE

    pool = STATE.pools.existing(engine.load_model("tiny-sd15"))
    assert pool is not None and pool.compiled and pool.slot is not None
    return pool.slot
