"""LoRA images against diffusers' own LoRA loading on the same tiny SD1.5 weights.

The reference is ``StableDiffusionPipeline.load_lora_weights`` + ``set_adapters`` with
separate ``unet`` / ``text_encoder`` scales, so a LoRA that lands on the wrong component,
at the wrong scale or with its alpha ignored gives a different picture (a te-only request
that got the unet-only weights is ~200/255 away), not just "a changed one".
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from plugin_api.types import GenerationRequest
from tests.lora_files import make_peft_lora, to_kohya

PROMPT = "a red circle"
# Easel's own sampling loop vs diffusers' pipeline: float rounding only (test_engine_sd15)
TOLERANCE = 2  # of 255


@pytest.fixture(scope="module")
def lora_models(tmp_path_factory, tiny_sd15_dir):
    root = tmp_path_factory.mktemp("lora-reference")
    (root / "Stable-diffusion").mkdir()
    (root / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    lora = root / "Lora"
    style = make_peft_lora(tiny_sd15_dir, lora / "style.safetensors", seed=11)
    # kohya layout with alpha = 2 for rank 4: every delta is scaled by alpha / rank = 0.5
    kohya = to_kohya(load_file(str(style)))
    kohya = {k: (torch.tensor(2.0) if k.endswith(".alpha") else v) for k, v in kohya.items()}
    save_file(kohya, str(lora / "half_alpha.safetensors"))
    return root


@pytest.fixture(scope="module")
def engine(make_host, lora_models):
    from core.engine import Engine

    host = make_host(models_dir=lora_models)
    assert host.extensions.records["lora"].state == "loaded", host.extensions.records["lora"].error
    return Engine(host)


@pytest.fixture(scope="module")
def reference(tiny_sd15_dir, lora_models):
    """diffusers' pipeline on fresh copies of the weights, with both LoRA files loaded."""
    import diffusers

    pipe = diffusers.StableDiffusionPipeline.from_pretrained(
        tiny_sd15_dir, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(lora_models / "Lora" / "style.safetensors"), adapter_name="style")
    pipe.load_lora_weights(str(lora_models / "Lora" / "half_alpha.safetensors"), adapter_name="half_alpha")

    def render(adapter: str | None, unet: float = 0.0, te: float = 0.0) -> np.ndarray:
        if adapter is None:
            pipe.disable_lora()
        else:
            pipe.enable_lora()
            pipe.set_adapters([adapter], adapter_weights=[{"unet": unet, "text_encoder": te}])
        image = pipe(
            PROMPT,
            num_inference_steps=3,
            guidance_scale=7.0,
            height=64,
            width=64,
            generator=torch.Generator("cpu").manual_seed(5),
            output_type="np",
        ).images[0]
        return np.round(image * 255).astype(np.int16)

    return render


def easel_image(engine, prompt: str) -> np.ndarray:
    request = GenerationRequest(
        prompt=prompt,
        seed=5,
        steps=3,
        cfg_scale=7.0,
        sampler="Euler",
        width=64,
        height=64,
        model="tiny-sd15",
        save_images=False,
    )
    result = engine.generate(request)
    assert result.warnings == []
    return np.asarray(result.images[0]).astype(np.int16)


@pytest.mark.parametrize(
    ("tag", "adapter", "unet", "te"),
    [
        ("", None, 0.0, 0.0),
        ("<lora:style:unet=0:te=1>", "style", 0.0, 1.0),
        ("<lora:style:unet=1:te=0>", "style", 1.0, 0.0),
        ("<lora:style:1>", "style", 1.0, 1.0),
        ("<lora:style:1.3>", "style", 1.3, 1.3),
        ("<lora:style:-0.5>", "style", -0.5, -0.5),
        ("<lora:style:unet=0.4:te=1.3>", "style", 0.4, 1.3),
        ("<lora:half_alpha:1>", "half_alpha", 1.0, 1.0),
    ],
    ids=["none", "te-only", "unet-only", "both", "1.3", "-0.5", "unet0.4-te1.3", "alpha-half-rank"],
)
def test_lora_image_equals_diffusers(engine, reference, tag, adapter, unet, te):
    ours = easel_image(engine, f"{PROMPT} {tag}".strip())
    expected = reference(adapter, unet=unet, te=te)
    assert np.abs(ours - expected).max() <= TOLERANCE


def test_the_cases_are_far_apart(reference):
    """Each case above would catch its bug only if the pictures differ clearly: te-only vs
    unet-only, weight 1 vs 1.3, and alpha 2 vs alpha 4 (which the file states)."""
    pairs = [
        (reference("style", unet=0.0, te=1.0), reference("style", unet=1.0, te=0.0)),
        (reference("style", unet=1.0, te=1.0), reference("style", unet=1.3, te=1.3)),
        (reference("style", unet=1.0, te=1.0), reference("half_alpha", unet=1.0, te=1.0)),
    ]
    for a, b in pairs:
        assert np.abs(a - b).max() > 8 * TOLERANCE
