"""The memory planner on FLUX.1's real sizes (built on the meta device from the shipped
configs): a 12B transformer in bf16 does not fit a 24 GB card whole, nor alone (model
offload needs it on the device at once), so the planner streams it (sequential offload); a
Q8_0 GGUF of it (8.5 bits per weight) fits with T5 beside it on 24 GB (tiled VAE) and alone
on 16 GB (model offload); an 80 GB card runs everything on the device."""

from __future__ import annotations

import pytest
import torch

from core.config import MODEL_CONFIGS_DIR
from core.models.memory_modes import choose_mode, estimate_needs

GIB = 1024**3
pytestmark = pytest.mark.slow  # building the 12B + T5-XXL skeletons takes a while on 2 cores
Q8_0_BYTES_PER_WEIGHT = 34 / 32  # 32 int8 codes + one fp16 scale per block


@pytest.fixture(scope="module")
def flux_parameters() -> dict[str, int]:
    from diffusers import AutoencoderKL, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    folder = MODEL_CONFIGS_DIR / "flux-dev"
    with torch.device("meta"):
        modules = {
            "transformer": FluxTransformer2DModel.from_config(
                FluxTransformer2DModel.load_config(folder / "transformer")
            ),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
            "text_encoder_2": T5EncoderModel(T5Config.from_pretrained(folder / "text_encoder_2")),
        }
    return {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}


def test_the_shipped_config_is_the_12b_model(flux_parameters):
    assert 11.8e9 < flux_parameters["transformer"] < 12.0e9
    assert 4.7e9 < flux_parameters["text_encoder_2"] < 4.8e9  # T5-XXL's encoder


@pytest.mark.parametrize(
    ("transformer_bytes_per_weight", "free_gib", "expected"),
    [
        (2, 24, "sequential-offload"),  # bf16: 22.2 GiB transformer, no room to run it alone
        # GGUF Q8_0: 11.8 GiB; with T5 (8.9 GiB) it all stays, the VAE decodes in tiles
        (Q8_0_BYTES_PER_WEIGHT, 24, "tiled-vae"),
        (Q8_0_BYTES_PER_WEIGHT, 16, "model-offload"),  # one component at a time on 16 GB
        (2, 80, "full"),  # an 80 GB card holds all 31 GiB
    ],
)
def test_planner_picks_a_mode_that_fits(flux_parameters, transformer_bytes_per_weight, free_gib, expected):
    weights = {name: count * 2 for name, count in flux_parameters.items()}
    weights["transformer"] = int(flux_parameters["transformer"] * transformer_bytes_per_weight)
    needs = estimate_needs(
        weights, "transformer", width=1024, height=1024, batch_size=1, cfg=False, element_size=2
    )
    mode, _reason = choose_mode(needs, free_gib * GIB)
    assert mode == expected
    if mode != "sequential-offload":
        assert needs.peak(mode) <= free_gib * GIB


def test_the_shipped_chroma_config_is_the_8_9b_model():
    from diffusers import ChromaTransformer2DModel

    folder = MODEL_CONFIGS_DIR / "chroma" / "transformer"
    with torch.device("meta"):
        model = ChromaTransformer2DModel.from_config(ChromaTransformer2DModel.load_config(folder))
    assert 8.8e9 < sum(p.numel() for p in model.parameters()) < 9.0e9
