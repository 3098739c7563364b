"""The interface every model family implements (like Forge's ``backend/diffusion_engine``).

A family adapter is stateless: it knows how to recognise a checkpoint, build the
diffusers components from it, and run each model-specific step of the one sampling loop
(``core/sampling/loop.py``): encode prompts, shape latents, call the denoiser, decode.
Everything model-specific lives here; the loop stays generic.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from core.prompt_embeddings import PromptEmbeddings


@dataclass
class Conditioning:
    """Encoded prompts for a batch: ``embeds`` is a tensor (batch first) or a list of
    per-image tensors (Z-Image's variable-length captions); ``extra`` holds further
    tensors the denoiser needs (SDXL's pooled embeddings and time ids)."""

    embeds: Any
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def concat(self, other: Conditioning) -> Conditioning:
        """This batch followed by ``other`` (for batched CFG: uncond then cond)."""
        if isinstance(self.embeds, list):
            embeds: Any = [*self.embeds, *other.embeds]
        else:
            embeds = torch.cat([self.embeds, other.embeds])
        extra = {k: torch.cat([v, other.extra[k]]) for k, v in self.extra.items()}
        return Conditioning(embeds, extra)

    def repeat(self, count: int) -> Conditioning:
        """The batch repeated ``count`` times (one prompt for every image of a batch)."""
        if isinstance(self.embeds, list):
            embeds: Any = [e for e in self.embeds for _ in range(count)]
        else:
            embeds = self.embeds.repeat_interleave(count, dim=0)
        extra = {k: v.repeat_interleave(count, dim=0) for k, v in self.extra.items()}
        return Conditioning(embeds, extra)


@dataclass(frozen=True)
class FamilyDefaults:
    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler: str
    size_multiple: int = 8  # width/height must be a multiple of this
    # fewer steps give no valid schedule: Qwen-Image's scheduler stretches its sigmas to
    # shift_terminal by dividing by (1 - the last one), which is 0 for a single step
    min_steps: int = 1


class FamilyAdapter(ABC):
    """One model family. Subclasses live in ``core/families/<name>.py``."""

    name: str = ""  # "sd15"
    label: str = ""  # "Stable Diffusion 1.x/2.x"
    defaults: FamilyDefaults
    flow: bool = False  # flow matching (samplers with SamplerSpec.flow)
    uses_clip_prompts: bool = True  # A1111 emphasis, BREAK and 77-token chunks apply
    denoiser_name: str = "unet"
    # decode/encode a float16 VAE in float32 where its config says force_upcast, as this
    # family's diffusers pipeline does (core/sampling/vae_precision.py)
    upcast_vae: bool = False
    # latent -> RGB linear approximation for cheap previews: rows are latent channels
    preview_factors: tuple[tuple[float, float, float], ...] = ()
    preview_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # tiny autoencoders for this family's latents in models/VAE-approx, by A1111's names
    # (core/previews/tiny_vae.py): "taesd" finds taesd_decoder.pth/.safetensors or taesd/
    tiny_vae_names: tuple[str, ...] = ()
    # guidance-distilled (FLUX.1): the model learnt CFG's effect, so a negative prompt
    # takes effect only with true CFG (scale > 1, twice the work per step); at CFG 1 the
    # engine ignores it with a warning and the WebUI disables its box
    guidance_distilled_family: bool = False

    # --- detection -----------------------------------------------------------------

    @abstractmethod
    def detect_keys(self, shapes: dict[str, list[int]]) -> str | None:
        """Return a variant name ("sd15", "sd2-v"...) when these state-dict keys (with
        their shapes, read from the safetensors header) are this family's, else None."""

    @abstractmethod
    def detect_folder(self, model_index: dict[str, Any]) -> bool:
        """True when a diffusers folder's ``model_index.json`` is this family's."""

    # --- loading -------------------------------------------------------------------

    @abstractmethod
    def load_folder(self, path: Path, dtype: torch.dtype, **overrides: Any) -> dict[str, Any]:
        """Components (torch modules + ``scheduler``) from a diffusers folder; ``overrides``
        go to ``from_pretrained`` (``use_safetensors=True`` unless pickles are allowed)."""

    @abstractmethod
    def load_single_file(
        self, path: Path, config_dir: Path, dtype: torch.dtype, state_dict: dict | None = None
    ) -> dict[str, Any]:
        """Components from an original-layout single file, shaped by ``config_dir`` (a
        diffusers folder with configs and tokenizers only). ``state_dict`` is given when
        the weights were already read (pickle files opted in)."""

    def defaults_for(self, variant: str) -> FamilyDefaults:
        """Defaults for one variant (``variant`` is "" for diffusers folders)."""
        return self.defaults

    def config_dir_for(self, variant: str) -> str:
        """Name of the shipped config folder in ``core/model_configs/`` for a variant."""
        return self.name

    def distilled_guidance_default(self, variant: str) -> float | None:
        """The default "Distilled CFG Scale" (the value of a guidance embedding, Forge's
        name) of a variant; None: the variant takes none (FLUX.1-schnell, most families),
        and the WebUI hides its slider."""
        return None

    # --- sampling ------------------------------------------------------------------

    @abstractmethod
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
        """Encode the prompt and (when CFG needs it) the negative prompt, each with batch
        size 1; the loop repeats them per image. Both have the same token length.
        ``embeddings``: the request's textual-inversion embeddings (CLIP families use
        them; others ignore them)."""

    def empty_negative(self, cond: Conditioning) -> Conditioning | None:
        """The negative conditioning for an empty negative prompt when the family does not
        encode "" (SDXL: zeros, see ``core.builtin_settings``), else None. ``cond`` is the
        encoded prompt: the result has its shapes."""
        return None

    def latent_shape(self, components: dict[str, Any], batch: int, width: int, height: int) -> tuple:
        vae = components["vae"]
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        channels = self.latent_channels(components)
        return (batch, channels, height // factor, width // factor)

    def latent_channels(self, components: dict[str, Any]) -> int:
        return int(components[self.denoiser_name].config.in_channels)

    def set_timesteps(self, scheduler: Any, steps: int, latent_shape: tuple, device: torch.device) -> None:
        scheduler.set_timesteps(steps, device=device)

    @abstractmethod
    def denoise(
        self,
        components: dict[str, Any],
        latents: torch.Tensor,
        timestep: torch.Tensor,
        cond: Conditioning,
        extra_kwargs: dict[str, Any],
    ) -> torch.Tensor:
        """The denoiser's prediction for ``latents`` (already scaled by the scheduler),
        in the convention the scheduler expects."""

    def combine_cfg(self, uncond: torch.Tensor, cond: torch.Tensor, cfg_scale: float) -> torch.Tensor:
        """A1111's convention for every family: uncond + scale * (cond - uncond)."""
        return uncond + cfg_scale * (cond - uncond)

    def decode(self, components: dict[str, Any], latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images in [-1, 1] (N, 3, H, W)."""
        vae = components["vae"]
        scaled = latents.to(vae.dtype) / vae.config.scaling_factor
        shift = getattr(vae.config, "shift_factor", None)
        if shift is not None:
            scaled = scaled + shift
        return vae.decode(scaled, return_dict=False)[0]

    def encode_image(
        self, components: dict[str, Any], images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Images in [-1, 1] -> scaled latents (img2img / inpainting): a sample of the VAE's
        posterior, or its mean when ``generator`` is None (``encode_mean``)."""
        vae = components["vae"]
        dist = vae.encode(images.to(vae.dtype)).latent_dist
        latents = dist.sample(generator=generator) if generator is not None else dist.mean
        shift = getattr(vae.config, "shift_factor", None)
        if shift is not None:
            latents = latents - shift
        return latents * vae.config.scaling_factor

    def encode_mean(self, components: dict[str, Any], images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> scaled latents of the distribution's mean (no noise: the
        preview colour fit, ``core/previews/approx.py``)."""
        return self.encode_image(components, images, None)

    def preview(self, latents: torch.Tensor) -> Any:
        """A cheap PIL preview of the first image's latents (no VAE decode)."""
        from PIL import Image

        if not self.preview_factors or latents.shape[1] != len(self.preview_factors):
            return None
        factors = torch.tensor(self.preview_factors, dtype=torch.float32)
        bias = torch.tensor(self.preview_bias, dtype=torch.float32)
        rgb = torch.einsum("chw,cr->hwr", latents[0].float().cpu(), factors) + bias
        rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        return Image.fromarray(rgb)
