"""The shipped config folders describe the real models (checked on the meta device: no
weights are allocated) and their tokenizers load offline."""

from __future__ import annotations

import pytest
import torch
from transformers import CLIPTokenizer

from core.config import MODEL_CONFIGS_DIR
from core.models.manager import materialize_config_dir

# parameter counts of the released models' components
EXPECTED = {
    ("sd15", "unet"): 859_520_964,
    ("sd15", "vae"): 83_653_863,
    ("sd15", "text_encoder"): 123_060_480,
    ("sd2", "unet"): 865_910_724,
    # the inpainting UNets: conv_in reads 9 channels instead of 4 (320 * 5 * 3 * 3 more)
    ("sd15-inpaint", "unet"): 859_535_364,
    ("sd2-inpaint", "unet"): 865_925_124,
    ("sdxl", "unet"): 2_567_463_684,
    ("sdxl", "text_encoder_2"): 694_659_840,
}


def count_parameters(folder, component):
    import diffusers
    import transformers

    config_dir = folder / component
    with torch.device("meta"):
        if component in ("unet", "vae", "transformer"):
            cls = {
                "unet": diffusers.UNet2DConditionModel,
                "vae": diffusers.AutoencoderKL,
                "transformer": diffusers.ZImageTransformer2DModel,
            }[component]
            model = cls.from_config(cls.load_config(str(config_dir)))
        else:
            config = transformers.AutoConfig.from_pretrained(str(config_dir))
            arch = getattr(transformers, config.architectures[0])
            model = arch(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("family", "component"), sorted(EXPECTED))
def test_real_sizes(family, component, tmp_path):
    folder = MODEL_CONFIGS_DIR / family
    assert count_parameters(folder, component) == EXPECTED[(family, component)]


def test_zimage_configs_are_the_6b_model():
    folder = MODEL_CONFIGS_DIR / "zimage"
    assert 5.5e9 < count_parameters(folder, "transformer") < 6.6e9
    assert 3.5e9 < count_parameters(folder, "text_encoder") < 4.2e9


@pytest.mark.parametrize(
    ("family", "pads"),
    [
        ("sd15", {"tokenizer": 49407}),
        ("sd2", {"tokenizer": 0}),
        ("sdxl", {"tokenizer": 49407, "tokenizer_2": 0}),
    ],
)
def test_tokenizers_materialize_offline(family, pads, tmp_path):
    folder = materialize_config_dir(MODEL_CONFIGS_DIR / family, tmp_path)
    assert folder != MODEL_CONFIGS_DIR / family
    for name, pad_id in pads.items():
        tokenizer = CLIPTokenizer.from_pretrained(str(folder / name))
        assert len(tokenizer) == 49408 and tokenizer.pad_token_id == pad_id
    assert materialize_config_dir(MODEL_CONFIGS_DIR / family, tmp_path) == folder  # cached


@pytest.mark.parametrize(
    ("size", "transformer", "text_encoder"),
    # BFL: Klein 4B's transformer has 3.88B parameters; Qwen3-4B 4.0B, Qwen3-8B 8.2B (Qwen's cards)
    [("4b", (3.8e9, 3.95e9), (3.9e9, 4.1e9)), ("9b", (8.9e9, 9.2e9), (8.1e9, 8.3e9))],
)
def test_flux2_klein_configs_are_the_released_models(size, transformer, text_encoder):
    import diffusers
    import transformers

    folder = MODEL_CONFIGS_DIR / f"flux2-klein-{size}"
    with torch.device("meta"):
        model = diffusers.Flux2Transformer2DModel.from_config(
            diffusers.Flux2Transformer2DModel.load_config(str(folder / "transformer"))
        )
        encoder = transformers.Qwen3ForCausalLM(
            transformers.AutoConfig.from_pretrained(str(folder / "text_encoder"))
        )
        vae = diffusers.AutoencoderKLFlux2.from_config(
            diffusers.AutoencoderKLFlux2.load_config(str(folder / "vae"))
        )
    assert transformer[0] < sum(p.numel() for p in model.parameters()) < transformer[1]
    assert text_encoder[0] < sum(p.numel() for p in encoder.parameters()) < text_encoder[1]
    # the text input is three Qwen3 layers side by side
    assert model.config.joint_attention_dim == 3 * encoder.config.hidden_size
    assert vae.config.latent_channels * 4 == model.config.in_channels == 128
