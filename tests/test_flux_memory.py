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


def _parameters(folder_name: str, classes: dict[str, str]) -> dict[str, int]:
    """Parameter counts of a shipped config's components, built on the meta device."""
    import diffusers
    import transformers

    folder = MODEL_CONFIGS_DIR / folder_name
    counts = {}
    with torch.device("meta"):
        for component, class_name in classes.items():
            if hasattr(diffusers, class_name):
                cls = getattr(diffusers, class_name)
                module = cls.from_config(cls.load_config(folder / component))
            else:
                config = transformers.AutoConfig.from_pretrained(folder / component)
                module = getattr(transformers, class_name)(config)
            counts[component] = sum(p.numel() for p in module.parameters())
    return counts


@pytest.mark.parametrize(
    ("folder_name", "classes", "transformer_range", "cases"),
    [
        (
            # Qwen-Image: a 20.4B transformer and Qwen2.5-VL-7B (8.3B with its vision tower)
            "qwen_image",
            {
                "transformer": "QwenImageTransformer2DModel",
                "text_encoder": "Qwen2_5_VLForConditionalGeneration",
                "vae": "AutoencoderKLQwenImage",
            },
            (20.3e9, 20.5e9),
            [
                (2, 24, "sequential-offload"),  # bf16: 38 GiB of transformer
                (2, 48, "model-offload"),  # one at a time: the transformer alone fits
                # Q8_0: 20.2 GiB of transformer + 1 GiB of activations, alone on the card
                (Q8_0_BYTES_PER_WEIGHT, 24, "model-offload"),
                (2, 80, "full"),
            ],
        ),
        (
            # FLUX.2 Klein 9B: a 9.1B transformer and Qwen3-8B
            "flux2-klein-9b",
            {
                "transformer": "Flux2Transformer2DModel",
                "text_encoder": "Qwen3ForCausalLM",
                "vae": "AutoencoderKLFlux2",
            },
            (9.0e9, 9.2e9),
            [
                (2, 24, "model-offload"),  # 16.9 GiB transformer alone, then Qwen3-8B alone
                (2, 16, "sequential-offload"),
                (Q8_0_BYTES_PER_WEIGHT, 24, "model-offload"),
                (2, 48, "full"),
            ],
        ),
    ],
)
def test_the_planner_on_qwen_image_and_klein_9b(folder_name, classes, transformer_range, cases):
    counts = _parameters(folder_name, classes)
    assert transformer_range[0] < counts["transformer"] < transformer_range[1]
    for transformer_bytes_per_weight, free_gib, expected in cases:
        weights = {name: count * 2 for name, count in counts.items()}
        weights["transformer"] = int(counts["transformer"] * transformer_bytes_per_weight)
        needs = estimate_needs(
            weights, "transformer", width=1024, height=1024, batch_size=1, cfg=True, element_size=2
        )
        mode, _reason = choose_mode(needs, free_gib * GIB)
        assert mode == expected, (
            folder_name,
            transformer_bytes_per_weight,
            free_gib,
            needs.peak(expected) / GIB,
        )
        if mode != "sequential-offload":
            assert needs.peak(mode) <= free_gib * GIB
