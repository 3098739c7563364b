"""FLUX.1 (dev and schnell): a rectified-flow MMDiT with T5-XXL and CLIP-L text encoders.

Following diffusers' ``FluxPipeline``: CLIP-L's pooled output (77 tokens) and T5-XXL's last
hidden states (512 tokens, padded; schnell: 256) condition the transformer; latents are the VAE's 16
channels packed into 2x2 patches (the loop keeps them unpacked, ``denoise`` packs and
unpacks each call); the timestep goes in as ``t / 1000``; the schedule is
``linspace(1, 1/steps)`` shifted by the scheduler config (dev: resolution-dependent ``mu``;
schnell: static). FLUX.1-dev is guidance-distilled: "Distilled CFG Scale" (Forge's name,
``request.distilled_cfg_scale``, diffusers' ``guidance_scale``) goes into the transformer's
guidance embedding; CFG scale > 1 runs real CFG with the negative prompt on top (diffusers'
``true_cfg_scale``). Prompt weights and BREAK are CLIP-UNet syntax and are not applied.

Single files (BFL ``flux1-dev.safetensors``, ComfyUI ``diffusion_models/``, GGUF, FP8)
hold the transformer only: ``core/families/flux_files.py`` finds and loads the rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.families.base import Conditioning, FamilyAdapter, FamilyDefaults
from core.families.devices import execution_device
from core.families.zimage import ZImageFamily, resolution_shift

if TYPE_CHECKING:
    from core.prompt_embeddings import PromptEmbeddings

DETECTION_KEY = "double_blocks.0.img_attn.norm.key_norm.scale"  # diffusers' own "flux" key
GUIDANCE_KEY = "guidance_in.in_layer.bias"  # only FLUX.1-dev (guidance-distilled) has it
CHROMA_KEY = "distilled_guidance_layer.in_proj.bias"  # Chroma: Flux blocks, no CLIP
# FLUX.2 keeps FLUX.1's block names (DETECTION_KEY too) but shares one modulation per stream
FLUX2_KEY = "single_stream_modulation.lin.weight"
PREFIXES = ("", "model.diffusion_model.")
CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 512
# FLUX.1-schnell was trained on 256 T5 tokens (BFL's reference code; diffusers' docs:
# "max_sequence_length cannot be more than 256"); told apart by its missing guidance embedding
SCHNELL_T5_MAX_LENGTH = 256
DEFAULT_DISTILLED_CFG = 3.5  # Forge's and diffusers' default for FLUX.1-dev


def has_key(shapes: dict[str, list[int]], key: str) -> bool:
    return any(prefix + key in shapes for prefix in PREFIXES)


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, C * 4), as FluxPipeline._pack_latents."""
    b, c, h, w = latents.shape
    latents = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return latents.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of :func:`pack` for latents of ``height`` x ``width``."""
    b, _, packed = latents.shape
    latents = latents.view(b, height // 2, width // 2, packed // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return latents.reshape(b, packed // 4, height, width)


def image_ids(height: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Positions of the packed latent patches (FluxPipeline._prepare_latent_image_ids)."""
    ids = torch.zeros(height // 2, width // 2, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(height // 2)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(width // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class FluxFamily(FamilyAdapter):
    name = "flux"
    label = "FLUX.1"
    defaults = FamilyDefaults(
        width=1024, height=1024, steps=20, cfg_scale=1.0, sampler="Euler", size_multiple=16
    )
    flow = True
    uses_clip_prompts = False
    denoiser_name = "transformer"
    # the diffusers classes a folder and a single file load into (Chroma names its own)
    pipeline_class = "FluxPipeline"
    transformer_class = "FluxTransformer2DModel"
    preview_factors = ZImageFamily.preview_factors  # the same 16-channel VAE
    preview_bias = ZImageFamily.preview_bias

    def detect_keys(self, shapes: dict[str, list[int]]) -> str | None:
        if not has_key(shapes, DETECTION_KEY) or has_key(shapes, CHROMA_KEY) or has_key(shapes, FLUX2_KEY):
            return None
        return "flux-dev" if has_key(shapes, GUIDANCE_KEY) else "flux-schnell"

    def detect_folder(self, model_index: dict[str, Any]) -> bool:
        return model_index.get("_class_name") == "FluxPipeline"

    def defaults_for(self, variant: str) -> FamilyDefaults:
        if variant == "flux-schnell":
            return FamilyDefaults(
                width=1024, height=1024, steps=4, cfg_scale=1.0, sampler="Euler", size_multiple=16
            )
        return self.defaults

    def config_dir_for(self, variant: str) -> str:
        return variant if variant in ("flux-dev", "flux-schnell") else "flux-dev"

    guidance_distilled_family = True  # negative prompts need real CFG (scale > 1)

    def distilled_guidance_default(self, variant: str) -> float | None:
        # schnell's transformer has no guidance embedding (``guidance_embeds`` false)
        return None if variant == "flux-schnell" else DEFAULT_DISTILLED_CFG

    def folder_variant(self, folder: Path) -> str:
        """A diffusers folder's variant, from its transformer config's ``guidance_embeds``."""
        import json

        try:
            config = json.loads((folder / "transformer" / "config.json").read_text("utf-8"))
        except (OSError, ValueError):
            return "flux-dev"
        return "flux-dev" if config.get("guidance_embeds", True) else "flux-schnell"

    def load_folder(self, path: Path, dtype: torch.dtype, **overrides: Any) -> dict[str, Any]:
        import diffusers

        pipeline = getattr(diffusers, self.pipeline_class)
        pipe = pipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True, **overrides)
        return dict(pipe.components)

    def load_single_file(
        self, path: Path, config_dir: Path, dtype: torch.dtype, state_dict: dict | None = None
    ) -> dict[str, Any]:
        from core.families import flux_files

        transformer = flux_files.load_transformer(path, config_dir, dtype, self.transformer_class)
        return self.load_folder(config_dir, dtype, transformer=transformer)

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
        t5_length = (
            T5_MAX_LENGTH if components["transformer"].config.guidance_embeds else SCHNELL_T5_MAX_LENGTH
        )

        def encode(text: str) -> Conditioning:
            clip, clip_tokenizer = components["text_encoder"], components["tokenizer"]
            ids = clip_tokenizer(
                [text], padding="max_length", max_length=CLIP_MAX_LENGTH, truncation=True, return_tensors="pt"
            ).input_ids
            pooled = clip(ids.to(execution_device(clip)), output_hidden_states=False).pooler_output
            t5, t5_tokenizer = components["text_encoder_2"], components["tokenizer_2"]
            ids = t5_tokenizer(
                [text], padding="max_length", max_length=t5_length, truncation=True, return_tensors="pt"
            ).input_ids
            hidden = t5(ids.to(execution_device(t5)), output_hidden_states=False)[0]
            return Conditioning(hidden, {"pooled": pooled})

        return encode(prompt), encode(negative) if need_negative else None

    def latent_shape(self, components: dict[str, Any], batch: int, width: int, height: int) -> tuple:
        vae = components["vae"]
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        channels = int(components["transformer"].config.in_channels) // 4
        return (batch, channels, 2 * (height // (factor * 2)), 2 * (width // (factor * 2)))

    def latent_channels(self, components: dict[str, Any]) -> int:
        return int(components["transformer"].config.in_channels) // 4

    def set_timesteps(self, scheduler: Any, steps: int, latent_shape: tuple, device: torch.device) -> None:
        config = scheduler.config
        mu = resolution_shift(config, latent_shape)
        sigmas = None if config.get("use_flow_sigmas") else torch.linspace(1.0, 1 / steps, steps).tolist()
        scheduler.set_timesteps(steps, device=device, sigmas=sigmas, mu=mu)

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
        timestep = timestep.expand(batch).to(latents.dtype)
        guidance = cond.extra.get("guidance")
        if transformer.config.guidance_embeds:
            if guidance is None:  # a caller that did not say: diffusers' default
                guidance = torch.full([batch], DEFAULT_DISTILLED_CFG, device=latents.device)
            guidance = guidance.to(latents.device, torch.float32)
        else:
            guidance = None
        output = transformer(
            hidden_states=pack(latents).to(dtype),
            timestep=timestep / 1000,
            guidance=guidance,
            pooled_projections=cond.extra["pooled"].to(dtype),
            encoder_hidden_states=cond.embeds.to(dtype),
            txt_ids=torch.zeros(cond.embeds.shape[1], 3, device=latents.device, dtype=dtype),
            img_ids=image_ids(height, width, latents.device, dtype),
            return_dict=False,
            **extra_kwargs,
        )[0]
        return unpack(output.float(), height, width)


FAMILY = FluxFamily()
