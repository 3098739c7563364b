"""Stable Diffusion XL (base): a UNet with added conditioning, two CLIP text encoders.

The prompt goes through both encoders (CLIP ViT-L and OpenCLIP ViT-bigG), their
penultimate hidden states are concatenated; the second encoder's projected pooled output
and the size/crop "time ids" go in as ``added_cond_kwargs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.families.base import Conditioning, FamilyAdapter, FamilyDefaults
from core.families.clip_text import encode_chunks, tokenize_pair
from core.families.sd15 import load_pipeline_components, load_single_file_components

if TYPE_CHECKING:
    from core.prompt_embeddings import PromptEmbeddings

PIPELINE_CLASSES = {"StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"}


class SDXLFamily(FamilyAdapter):
    name = "sdxl"
    label = "Stable Diffusion XL"
    upcast_vae = True  # the SDXL VAE overflows float16 (diffusers: force_upcast)
    defaults = FamilyDefaults(width=1024, height=1024, steps=25, cfg_scale=6.0, sampler="DPM++ 2M Karras")
    # A1111's "Approx cheap" factors for the SDXL VAE
    tiny_vae_names = ("taesdxl",)
    preview_factors = (
        (0.3448, 0.4168, 0.4395),
        (-0.1953, -0.0290, 0.0250),
        (0.1074, 0.0886, -0.0163),
        (-0.3730, -0.2499, -0.2088),
    )

    def detect_keys(self, shapes: dict[str, list[int]]) -> str | None:
        has_unet = "model.diffusion_model.input_blocks.0.0.weight" in shapes
        has_clip_l = any(k.startswith("conditioner.embedders.0.transformer.") for k in shapes)
        has_bigg = any(k.startswith("conditioner.embedders.1.model.") for k in shapes)
        if has_unet and has_clip_l and has_bigg:
            return "sdxl"
        return None

    def detect_folder(self, model_index: dict[str, Any]) -> bool:
        return model_index.get("_class_name") in PIPELINE_CLASSES and bool(model_index.get("text_encoder"))

    def load_folder(self, path: Path, dtype: torch.dtype, **overrides: Any) -> dict[str, Any]:
        from diffusers import StableDiffusionXLPipeline

        return load_pipeline_components(StableDiffusionXLPipeline, path, dtype, **overrides)

    def load_single_file(
        self, path: Path, config_dir: Path, dtype: torch.dtype, state_dict: dict | None = None
    ) -> dict[str, Any]:
        from diffusers import StableDiffusionXLPipeline

        return load_single_file_components(StableDiffusionXLPipeline, path, config_dir, dtype)

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
        encoders = [
            (components["tokenizer"], components["text_encoder"], "text_encoder"),
            (components["tokenizer_2"], components["text_encoder_2"], "text_encoder_2"),
        ]
        # SDXL uses the penultimate layer without the final norm; clip skip goes deeper
        layer = -(1 + max(1, clip_skip))
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=torch.float32)

        def encode(which: int) -> Conditioning:
            hidden, pooled = [], None
            for index, (tokenizer, encoder, component) in enumerate(encoders):
                width = encoder.get_input_embeddings().embedding_dim
                lookup = embeddings.lookup(tokenizer, component, width) if embeddings else None
                chunks = tokenize_pair(tokenizer, prompt, negative, lookup)[which]
                out = encode_chunks(encoder, chunks, layer, apply_final_norm=False, want_pooled=index == 1)
                hidden.append(out.hidden)
                if index == 1:
                    pooled = out.pooled
            device = hidden[0].device
            return Conditioning(
                torch.cat(hidden, dim=-1),
                {"text_embeds": pooled, "time_ids": time_ids.to(device, hidden[0].dtype)},
            )

        return encode(0), encode(1) if need_negative else None

    def empty_negative(self, cond: Conditioning) -> Conditioning | None:
        # A1111 zeroes the text embedders' outputs (cross-attention and pooled) and keeps the
        # size conditioning; diffusers' force_zeros_for_empty_prompt does the same
        extra = dict(cond.extra)
        extra["text_embeds"] = torch.zeros_like(extra["text_embeds"])
        return Conditioning(torch.zeros_like(cond.embeds), extra)

    def denoise(
        self,
        components: dict[str, Any],
        latents: torch.Tensor,
        timestep: torch.Tensor,
        cond: Conditioning,
        extra_kwargs: dict[str, Any],
    ) -> torch.Tensor:
        unet = components["unet"]
        added = {"text_embeds": cond.extra["text_embeds"], "time_ids": cond.extra["time_ids"]}
        return unet(
            latents,
            timestep,
            encoder_hidden_states=cond.embeds,
            added_cond_kwargs=added,
            return_dict=False,
            **extra_kwargs,
        )[0]


FAMILY = SDXLFamily()
