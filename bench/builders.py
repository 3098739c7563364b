"""Model folders for the bench workloads, built here (nothing is downloaded).

- on the CPU: tiny models from the test configs (the harness itself is what is measured);
- on a GPU: the real architectures from ``core/model_configs`` with random weights, so
  the timings are those of real SD1.5 / SDXL / Z-Image / FLUX.1-dev / Qwen-Image-sized
  networks. Weights are
  created directly on the device (fast) and written as half-precision safetensors, then
  loaded back through Easel's model manager like any downloaded model.

Z-Image's text encoder (Qwen3-4B) is cut to 2 layers of the real width: it runs once per
prompt, on both sides alike, and its 36 layers would only add 8 GB of random weights to
write; the transformer, which the benchmark is about, is full size. Likewise FLUX.1's T5-XXL
(24 layers, 9 GB) and Qwen-Image's Qwen2.5-VL-7B (28 layers, 15 GB; its vision tower,
unused for text-to-image, to 1 block): 2 layers each; FLUX.1's transformer (12B) and
Qwen-Image's (20B) are full size, CLIP-L and the VAEs too.
"""

from __future__ import annotations

import json
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
    elif family == "flux":
        from tests.flux_files import write_flux_folder

        write_flux_folder(folder)  # FLUX.1-dev's shape: guidance embedding, dev's scheduler
    elif family == "qwen_image":
        from tests.qwen_image_files import make_tiny_qwen_image

        make_tiny_qwen_image(folder)
    else:
        raise ValueError(f"no tiny {family} model")
    return folder


def _config(family: str, part: str) -> dict:
    """A shipped component config (diffusers' ``ConfigMixin.load_config`` refuses to read one
    without a model class: "``self.config_name`` is not defined")."""
    folder = MODEL_CONFIGS_DIR / family / part
    scheduler = folder / "scheduler_config.json"
    return json.loads((scheduler if scheduler.exists() else folder / "config.json").read_text("utf-8"))


def real_size_folder(family: str, root: Path, device: torch.device, dtype: torch.dtype) -> Path:
    """A diffusers folder of the real architecture with random weights."""
    import diffusers
    import transformers

    if family in ("flux", "qwen_image"):
        return _real_size_mmdit_folder(family, root, device, dtype)
    from core.models.manager import materialize_config_dir

    # with the CLIP vocabulary copied in: the shipped tokenizer folders hold only their
    # tokenizer_config.json, from which CLIPTokenizer silently builds a 2-token tokenizer
    cfg = materialize_config_dir(MODEL_CONFIGS_DIR / family, root / "configs")
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
    return _save(pipe, folder, device, dtype)


def _save(pipe: object, folder: Path, device: torch.device, dtype: torch.dtype) -> Path:
    pipe.to(dtype=dtype)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    del pipe
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return folder


TEXT_ENCODER_LAYERS = 2  # runs once per prompt on both sides: a cut text encoder times the same


def real_size_pipeline(family: str, root: Path) -> object:
    """FLUX.1-dev's or Qwen-Image's pipeline at real size, built on the current device
    (``torch.device(...)`` context), text encoders cut to ``TEXT_ENCODER_LAYERS``."""
    import diffusers
    import transformers

    from core.models.manager import materialize_config_dir

    if family == "flux":
        configs = materialize_config_dir(MODEL_CONFIGS_DIR / "flux-dev", root / "configs")
        t5_config = transformers.T5Config.from_pretrained(configs / "text_encoder_2")
        t5_config.num_layers = TEXT_ENCODER_LAYERS
        return diffusers.FluxPipeline(
            transformer=diffusers.FluxTransformer2DModel.from_config(_config("flux-dev", "transformer")),
            vae=diffusers.AutoencoderKL.from_config(_config("flux-dev", "vae")),
            text_encoder=transformers.CLIPTextModel(
                transformers.CLIPTextConfig.from_pretrained(configs / "text_encoder")
            ),
            tokenizer=transformers.AutoTokenizer.from_pretrained(str(configs / "tokenizer")),
            text_encoder_2=transformers.T5EncoderModel(t5_config),
            tokenizer_2=transformers.AutoTokenizer.from_pretrained(str(configs / "tokenizer_2")),
            scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_config(_config("flux-dev", "scheduler")),
        )
    from tests.tiny_models import tiny_qwen_tokenizer

    text_config = transformers.Qwen2_5_VLConfig.from_pretrained(
        MODEL_CONFIGS_DIR / "qwen_image" / "text_encoder"
    )
    text_config.text_config.num_hidden_layers = TEXT_ENCODER_LAYERS
    text_config.vision_config.depth = 1
    return diffusers.QwenImagePipeline(
        transformer=diffusers.QwenImageTransformer2DModel.from_config(_config("qwen_image", "transformer")),
        vae=diffusers.AutoencoderKLQwenImage.from_config(_config("qwen_image", "vae")),
        text_encoder=transformers.Qwen2_5_VLForConditionalGeneration(text_config),
        tokenizer=tiny_qwen_tokenizer(),  # its ids fall inside the real vocabulary
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler.from_config(_config("qwen_image", "scheduler")),
    )


def _real_size_mmdit_folder(family: str, root: Path, device: torch.device, dtype: torch.dtype) -> Path:
    folder = root / "Stable-diffusion" / f"bench-{family}"
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in half precision: Qwen-Image's 20B in float32 is 80 GB
    try:
        with torch.device(device):
            pipe = real_size_pipeline(family, root)
    finally:
        torch.set_default_dtype(default_dtype)
    return _save(pipe, folder, device, dtype)
