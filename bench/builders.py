"""Model folders for the bench workloads, built here (nothing is downloaded).

- on the CPU: tiny models from the test configs (the harness itself is what is measured);
- on a GPU: the real architectures from ``core/model_configs`` with random weights, so
  the timings are those of real SD1.5 / SDXL / Z-Image-sized networks. Weights are
  created directly on the device (fast) and written as half-precision safetensors, then
  loaded back through Easel's model manager like any downloaded model.

Z-Image's text encoder (Qwen3-4B) is cut to 2 layers of the real width: it runs once per
prompt, on both sides alike, and its 36 layers would only add 8 GB of random weights to
write; the transformer, which the benchmark is about, is full size.
"""

from __future__ import annotations

from pathlib import Path

import torch

from core.config import MODEL_CONFIGS_DIR


def tiny_folder(family: str, root: Path) -> Path:
    folder = root / "Stable-diffusion" / f"bench-{family}"
    if family == "sd15":
        from plugin_api.testing import make_tiny_sd15

        make_tiny_sd15(folder)
    elif family == "sdxl":
        from tests.tiny_models import make_tiny_sdxl

        make_tiny_sdxl(folder)
    elif family == "zimage":
        from tests.tiny_models import make_tiny_zimage

        make_tiny_zimage(folder)
    else:
        raise ValueError(f"no tiny {family} model")
    return folder


def _config(family: str, part: str) -> dict:
    from diffusers.configuration_utils import ConfigMixin

    return ConfigMixin.load_config(str(MODEL_CONFIGS_DIR / family / part))


def real_size_folder(family: str, root: Path, device: torch.device, dtype: torch.dtype) -> Path:
    """A diffusers folder of the real architecture with random weights."""
    import diffusers
    import transformers

    cfg = MODEL_CONFIGS_DIR / family
    folder = root / "Stable-diffusion" / f"bench-{family}"
    torch.manual_seed(0)
    with torch.device(device):
        vae = diffusers.AutoencoderKL.from_config(_config(family, "vae"))
        if family in ("sd15", "sdxl"):
            unet = diffusers.UNet2DConditionModel.from_config(_config(family, "unet"))
            text_encoder = transformers.CLIPTextModel(
                transformers.CLIPTextConfig.from_pretrained(cfg / "text_encoder")
            )
            tokenizer = transformers.CLIPTokenizer.from_pretrained(str(cfg / "tokenizer"))
            scheduler = diffusers.EulerDiscreteScheduler.from_config(_config(family, "scheduler"))
            parts = dict(
                vae=vae, unet=unet, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler
            )
            if family == "sd15":
                pipe = diffusers.StableDiffusionPipeline(
                    **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
                )
            else:
                text_encoder_2 = transformers.CLIPTextModelWithProjection(
                    transformers.CLIPTextConfig.from_pretrained(cfg / "text_encoder_2")
                )
                tokenizer_2 = transformers.CLIPTokenizer.from_pretrained(str(cfg / "tokenizer_2"))
                pipe = diffusers.StableDiffusionXLPipeline(
                    **parts, text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2
                )
        elif family == "zimage":
            from tests.tiny_models import tiny_qwen_tokenizer

            text_config = transformers.Qwen3Config.from_pretrained(cfg / "text_encoder")
            text_config.num_hidden_layers = 2
            pipe = diffusers.ZImagePipeline(
                transformer=diffusers.ZImageTransformer2DModel.from_config(_config(family, "transformer")),
                vae=vae,
                text_encoder=transformers.Qwen3Model(text_config),
                tokenizer=tiny_qwen_tokenizer(),
                scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_config(_config(family, "scheduler")),
            )
        else:
            raise ValueError(f"no real-size {family} model")
    pipe.to(dtype=dtype)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    del pipe
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return folder
