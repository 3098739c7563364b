"""FP8 linear layers (core/models/fp8.py, EASEL_FP8=1): lossy by design, so these tests
state the tolerance. ``torch._scaled_mm`` has reference kernels on the CPU, so the same
code that runs on an H100's FP8 tensor cores is checked here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.models.fp8 import Fp8Linear, convert_to_fp8, fp8_support
from plugin_api.types import GenerationRequest

LAYER_RELATIVE_ERROR = 0.06  # e4m3 keeps 3 mantissa bits: ~2-4% per layer with row scales
IMAGE_MEAN_DIFF = 3.0  # out of 255, the demo model's image at 20 steps (measured: 1.86)


def test_a_layer_is_close_to_its_full_precision_self():
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 512)
    fp8 = Fp8Linear(linear)
    assert fp8.weight_fp8.dtype == torch.float8_e4m3fn
    assert fp8.weight_fp8.element_size() == 1  # a quarter of fp32's weight memory
    x = torch.randn(3, 7, 256) * 5
    with torch.inference_mode():
        expected, got = linear(x), fp8(x)
    assert got.shape == expected.shape
    error = ((got - expected).norm() / expected.norm()).item()
    assert 0 < error < LAYER_RELATIVE_ERROR


def test_only_large_aligned_linears_are_converted():
    model = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.Linear(64, 30), torch.nn.Linear(30, 16))
    assert convert_to_fp8(model) == 1
    assert isinstance(model[0], Fp8Linear) and type(model[1]) is torch.nn.Linear


def test_support_is_reported():
    assert fp8_support(torch.device("cpu")) is None
    assert "mps" in fp8_support(torch.device("mps"))


@pytest.fixture(scope="module")
def demo_images(make_host):
    from core.config import SHIPPED_MODELS_DIR
    from core.engine import Engine

    request = GenerationRequest(
        prompt="a red circle on a blue background", seed=1, steps=20, width=128, height=128,
        model="easel-demo", save_images=False,
    )  # fmt: skip
    out = {}
    for fp8 in (False, True):
        engine = Engine(make_host(models_dir=SHIPPED_MODELS_DIR, fp8=fp8))
        out[fp8] = (engine.generate(request).images[0], engine.models.get("easel-demo").acceleration)
    return out


def test_the_demo_model_draws_the_same_picture_in_fp8(demo_images):
    from tools.demo_model.judge import judge

    (full, _), (fp8, applied) = demo_images[False], demo_images[True]
    assert any(step.startswith("fp8(") and not step.startswith("fp8(0") for step in applied)
    a, b = judge(full), judge(fp8)
    assert (a.color, a.background, a.shape, a.position) == (b.color, b.background, b.shape, b.position)
    diff = np.abs(np.asarray(full, np.int16) - np.asarray(fp8, np.int16))
    assert 0 < diff.mean() <= IMAGE_MEAN_DIFF


def test_lora_is_refused_on_an_fp8_denoiser(make_host):
    from core.config import SHIPPED_MODELS_DIR
    from core.engine import Engine

    host = make_host(models_dir=SHIPPED_MODELS_DIR, fp8=True, safe_mode=True)
    result = Engine(host).generate(
        GenerationRequest(prompt="a red circle <lora:easel-outline:1>", seed=1, steps=2, width=128,
                          height=128, model="easel-demo", save_images=False)
    )  # fmt: skip
    assert any("LoRA not applied" in w and "EASEL_FP8" in w for w in result.warnings), result.warnings
