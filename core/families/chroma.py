"""Chroma: FLUX.1's architecture (8.9B, from schnell) with T5-XXL only and real CFG.

Following diffusers' ``ChromaPipeline``: T5's hidden states are computed with the
tokenizer's attention mask, and the transformer attends to the prompt's tokens plus the
first padding token (the mask is extended over the image tokens); no CLIP, no pooled
embedding, no distilled guidance: CFG runs as on SD (``uncond + scale * (cond - uncond)``,
diffusers' ``guidance_scale``) with the negative prompt. Latents, schedule and files are
FLUX.1's (``core/families/flux.py``, ``core/families/flux_files.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.families.base import Conditioning, FamilyDefaults
from core.families.devices import execution_device
from core.families.flux import CHROMA_KEY, T5_MAX_LENGTH, FluxFamily, has_key, image_ids, pack, unpack

if TYPE_CHECKING:
    from core.prompt_embeddings import PromptEmbeddings


class ChromaFamily(FluxFamily):
    name = "chroma"
    label = "Chroma"
    # Chroma1-HD's model card: 40 steps at CFG 3.0
    defaults = FamilyDefaults(
        width=1024, height=1024, steps=40, cfg_scale=3.0, sampler="Euler", size_multiple=16
    )
    guidance_distilled_family = False  # real CFG: the negative prompt works at any scale > 1
    pipeline_class = "ChromaPipeline"
    transformer_class = "ChromaTransformer2DModel"

    def detect_keys(self, shapes: dict[str, list[int]]) -> str | None:
        return "chroma" if has_key(shapes, CHROMA_KEY) else None

    def detect_folder(self, model_index: dict[str, Any]) -> bool:
        return model_index.get("_class_name") == "ChromaPipeline"

    def defaults_for(self, variant: str) -> FamilyDefaults:
        return self.defaults

    def config_dir_for(self, variant: str) -> str:
        return "chroma"

    def distilled_guidance_default(self, variant: str) -> float | None:
        return None

    def folder_variant(self, folder: Path) -> str:
        return "chroma"

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
        def encode(text: str) -> Conditioning:
            t5, tokenizer = components["text_encoder"], components["tokenizer"]
            inputs = tokenizer(
                [text], padding="max_length", max_length=T5_MAX_LENGTH, truncation=True, return_tensors="pt"
            )
            device = execution_device(t5)
            mask = inputs.attention_mask.to(device)
            hidden = t5(inputs.input_ids.to(device), output_hidden_states=False, attention_mask=mask)[0]
            # the prompt's tokens and the first padding token (as ChromaPipeline)
            keep = torch.arange(mask.shape[1], device=device)[None, :] <= mask.sum(dim=1)[:, None]
            return Conditioning(hidden, {"text_mask": keep.float()})

        return encode(prompt), encode(negative) if need_negative else None

    def denoise(
        self,
        components: dict[str, Any],
        latents: torch.Tensor,
        timestep: torch.Tensor,
        cond: Conditioning,
        extra_kwargs: dict[str, Any],
    ) -> torch.Tensor:
        transformer = components["transformer"]
        dtype = transformer.dtype
        batch, _, height, width = latents.shape
        packed = pack(latents)
        text_mask = cond.extra["text_mask"].to(latents.device, latents.dtype)
        image_mask = torch.ones(batch, packed.shape[1], device=latents.device, dtype=torch.bool)
        timestep = timestep.expand(batch).to(latents.dtype)
        output = transformer(
            hidden_states=packed.to(dtype),
            timestep=timestep / 1000,
            encoder_hidden_states=cond.embeds.to(dtype),
            txt_ids=torch.zeros(cond.embeds.shape[1], 3, device=latents.device, dtype=dtype),
            img_ids=image_ids(height, width, latents.device, dtype),
            attention_mask=torch.cat([text_mask, image_mask], dim=1),
            return_dict=False,
            **extra_kwargs,
        )[0]
        return unpack(output.float(), height, width)


FAMILY = ChromaFamily()
