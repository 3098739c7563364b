"""Stable Diffusion 1.x and 2.x: one UNet, one CLIP text encoder, a 4-channel VAE.

SD2 differs only in its text encoder (OpenCLIP ViT-H, stored as ``cond_stage_model.model``
in original checkpoints) and, for the 768 models, v-prediction; both come from the config
folder, so the same adapter serves both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.families.base import Conditioning, FamilyAdapter, FamilyDefaults
from core.families.clip_text import encode_chunks, tokenize_pair

if TYPE_CHECKING:
    from core.prompt_embeddings import PromptEmbeddings

UNET_PREFIX = "model.diffusion_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."
PIPELINE_CLASSES = {
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
}
# an inpainting UNet reads 4 latent + 1 mask + 4 masked-image latent channels
INPAINT_IN_CHANNELS = 9
INPAINT_SUFFIX = "-inpaint"
SD2_DEFAULTS = FamilyDefaults(width=768, height=768, steps=20, cfg_scale=7.0, sampler="Euler a")


def load_pipeline_components(pipeline_cls: Any, path: Path, dtype: torch.dtype, **kwargs: Any) -> dict:
    pipe = pipeline_cls.from_pretrained(str(path), dtype=dtype, local_files_only=True, **kwargs)
    return dict(pipe.components)


def load_single_file_components(
    pipeline_cls: Any, path: Path, config_dir: Path, dtype: torch.dtype, **kwargs: Any
) -> dict:
    # config= a local folder keeps diffusers offline; shapes come from that folder
    pipe = pipeline_cls.from_single_file(
        str(path), config=str(config_dir), local_files_only=True, dtype=dtype, **kwargs
    )
    return dict(pipe.components)


def read_class_name(config_dir: Path) -> str | None:
    try:
        return json.loads((config_dir / "model_index.json").read_text("utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError):
        return None


class SD15Family(FamilyAdapter):
    name = "sd15"
    label = "Stable Diffusion 1.x / 2.x"
    defaults = FamilyDefaults(width=512, height=512, steps=20, cfg_scale=7.0, sampler="Euler a")
    # A1111's "Approx cheap" latent -> RGB factors for the SD1.x/2.x VAE
    tiny_vae_names = ("taesd",)
    preview_factors = (
        (0.298, 0.207, 0.208),
        (0.187, 0.286, 0.173),
        (-0.158, 0.189, 0.264),
        (-0.184, -0.271, -0.473),
    )

    def detect_keys(self, shapes: dict[str, list[int]]) -> str | None:
        conv_in = shapes.get(UNET_PREFIX + "input_blocks.0.0.weight")
        if conv_in is None or any(k.startswith("conditioner.embedders.") for k in shapes):
            return None
        if UNET_PREFIX + "label_emb.0.0.weight" in shapes:
            return None  # SDXL-like (a UNet with added conditioning)
        # sd-v1-5-inpainting & co.: the same layout with a 9-channel conv_in
        suffix = INPAINT_SUFFIX if len(conv_in) > 1 and conv_in[1] == INPAINT_IN_CHANNELS else ""
        if any(k.startswith(SD2_TEXT_PREFIX) for k in shapes):
            return "sd2" + suffix
        if any(k.startswith(SD1_TEXT_PREFIX) for k in shapes):
            return "sd15" + suffix
        return None

    def detect_folder(self, model_index: dict[str, Any]) -> bool:
        return model_index.get("_class_name") in PIPELINE_CLASSES

    def defaults_for(self, variant: str) -> FamilyDefaults:
        # "sd2": the 768 v-prediction models; "sd2-512": the 512 epsilon base models, whose
        # parameterization core/models/prediction.py detects after the keys
        return SD2_DEFAULTS if variant == "sd2" else self.defaults

    def config_dir_for(self, variant: str) -> str:
        base = "sd2" if variant.startswith("sd2") else "sd15"
        return base + (INPAINT_SUFFIX if variant.endswith(INPAINT_SUFFIX) else "")

    def latent_channels(self, components: dict[str, Any]) -> int:
        # the VAE's, not the UNet's input width (9 for an inpainting UNet)
        return int(components["vae"].config.latent_channels)

    def load_folder(self, path: Path, dtype: torch.dtype, **overrides: Any) -> dict[str, Any]:
        from diffusers import StableDiffusionPipeline

        return load_pipeline_components(
            StableDiffusionPipeline,
            path,
            dtype,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
            **overrides,
        )

    def load_single_file(
        self, path: Path, config_dir: Path, dtype: torch.dtype, state_dict: dict | None = None
    ) -> dict[str, Any]:
        from diffusers import StableDiffusionInpaintPipeline, StableDiffusionPipeline

        # the config folder says which pipeline its UNet belongs to (same components)
        inpaint = "Inpaint" in str(read_class_name(config_dir))
        return load_single_file_components(
            StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline,
            path,
            config_dir,
            dtype,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )

    def encode_prompt_pair(
        self,
        components: dict[str, Any],
        prompt: str,
        negative: str,
        clip_skip: int,
        width: int,
        height: int,
        need_negative: bool,
        embeddings: PromptEmbeddings | None = None,
    ) -> tuple[Conditioning, Conditioning | None]:
        tokenizer, encoder = components["tokenizer"], components["text_encoder"]
        lookup = (
            embeddings.lookup(tokenizer, "text_encoder", encoder.get_input_embeddings().embedding_dim)
            if embeddings
            else None
        )
        positive_chunks, negative_chunks = tokenize_pair(tokenizer, prompt, negative, lookup)
        layers = encoder.config.num_hidden_layers
        skip = max(1, min(clip_skip, layers))
        # clip skip 1 = last layer; n > 1 = the n-th layer from the end, then the final norm
        layer = None if skip == 1 else -skip
        cond = encode_chunks(encoder, positive_chunks, layer, apply_final_norm=True).hidden
        uncond = None
        if need_negative:
            uncond = Conditioning(
                encode_chunks(encoder, negative_chunks, layer, apply_final_norm=True).hidden
            )
        return Conditioning(cond), uncond

    def denoise(
        self,
        components: dict[str, Any],
        latents: torch.Tensor,
        timestep: torch.Tensor,
        cond: Conditioning,
        extra_kwargs: dict[str, Any],
    ) -> torch.Tensor:
        unet = components["unet"]
        return unet(
            latents,
            timestep,
            encoder_hidden_states=cond.embeds,
            return_dict=False,
            **extra_kwargs,
        )[0]


FAMILY = SD15Family()
