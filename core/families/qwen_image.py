"""Qwen-Image: a double-stream flow-matching MMDiT, Qwen2.5-VL text encoder, a video-style VAE.

Following diffusers' ``QwenImagePipeline``: the prompt goes into a fixed system/user chat
template, the text encoder's last hidden states (template prefix of 34 tokens and padding
dropped) condition the transformer, which takes 2x2-packed latents (a sequence of
``4 * channels`` features), the timestep as ``t / 1000`` and predicts the velocity. The
VAE is 3D (one frame here) and normalises latents per channel (``latents_mean`` /
``latents_std``) instead of a scaling factor.

CFG is Qwen's "true CFG": A1111's ``uncond + scale * (cond - uncond)`` (so ``cfg_scale``
is diffusers' ``true_cfg_scale``), then rescaled per packed token to the norm of the
conditional prediction, as the pipeline does. Prompt weights and BREAK are CLIP syntax and
are not applied: the text goes to Qwen as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.errors import ModelError
from core.families.base import Conditioning, FamilyAdapter, FamilyDefaults
from core.families.devices import execution_device
from core.families.qwen_image_files import SINGLE_FILE_PREFIXES, load_transformer
from core.families.zimage import resolution_shift

if TYPE_CHECKING:
    from core.prompt_embeddings import PromptEmbeddings

# the transformer's tensors (diffusers names are also the original release's; ComfyUI
# prefixes them with "model.diffusion_model.")
DETECTION_KEYS = ("txt_norm.weight", "transformer_blocks.0.img_mod.1.weight")
PROMPT_TEMPLATE = (
    "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, "
    "text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n"
    "{}<|im_end|>\n<|im_start|>assistant\n"
)
TEMPLATE_PREFIX_TOKENS = 34  # the system part of the template, dropped from the embeddings
MAX_SEQUENCE_LENGTH = 1024


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/2 * W/2, 4C): the transformer's 2x2 patches, as the pipeline."""
    b, c, h, w = latents.shape
    packed = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return packed.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(packed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H/2 * W/2, 4C) -> (B, C, H, W), the inverse of :func:`pack`."""
    b, _, features = packed.shape
    latents = packed.view(b, height // 2, width // 2, features // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return latents.reshape(b, features // 4, height, width)


class QwenImageFamily(FamilyAdapter):
    name = "qwen_image"
    label = "Qwen-Image"
    defaults = FamilyDefaults(
        width=1328, height=1328, steps=30, cfg_scale=4.0, sampler="Euler", size_multiple=16, min_steps=2
    )
    flow = True
    uses_clip_prompts = False
    denoiser_name = "transformer"

    def detect_keys(self, shapes: dict[str, list[int]]) -> str | None:
        for prefix in SINGLE_FILE_PREFIXES:
            if all(prefix + key in shapes for key in DETECTION_KEYS):
                return "qwen_image"
        return None

    def detect_folder(self, model_index: dict[str, Any]) -> bool:
        return model_index.get("_class_name") == "QwenImagePipeline"

    def load_folder(self, path: Path, dtype: torch.dtype, **overrides: Any) -> dict[str, Any]:
        from diffusers import QwenImagePipeline

        pipe = QwenImagePipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True, **overrides)
        return dict(pipe.components)

    def load_single_file(
        self, path: Path, config_dir: Path, dtype: torch.dtype, state_dict: dict | None = None
    ) -> dict[str, Any]:
        if not (config_dir / "text_encoder").is_dir() or not any((config_dir / "vae").glob("*.safetensors")):
            raise ModelError(
                f"{path}: a Qwen-Image single file holds only the transformer; put a full diffusers "
                f"Qwen-Image folder (text_encoder, tokenizer, vae) at {path.with_suffix('.config')}"
            )
        transformer = load_transformer(path, config_dir, dtype, state_dict)
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
        tokenizer, encoder = components["tokenizer"], components["text_encoder"]

        def encode(text: str) -> Conditioning:
            inputs = tokenizer(
                [PROMPT_TEMPLATE.format(text)],
                max_length=MAX_SEQUENCE_LENGTH + TEMPLATE_PREFIX_TOKENS,
                padding=True,
                truncation=True,
                return_tensors="pt",
            )
            device = execution_device(encoder)
            ids = inputs.input_ids.to(device)
            mask = inputs.attention_mask.to(device)
            hidden = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1]
            embeds = hidden[0][mask[0].bool()][TEMPLATE_PREFIX_TOKENS:][:MAX_SEQUENCE_LENGTH]
            return Conditioning([embeds])

        return encode(prompt), encode(negative) if need_negative else None

    def vae_factor(self, components: dict[str, Any]) -> int:
        return 2 ** len(components["vae"].temperal_downsample)

    def latent_shape(self, components: dict[str, Any], batch: int, width: int, height: int) -> tuple:
        factor = self.vae_factor(components)
        channels = self.latent_channels(components)
        return (batch, channels, 2 * (height // (factor * 2)), 2 * (width // (factor * 2)))

    def latent_channels(self, components: dict[str, Any]) -> int:
        return int(components["transformer"].config.in_channels) // 4

    def set_timesteps(self, scheduler: Any, steps: int, latent_shape: tuple, device: torch.device) -> None:
        config = scheduler.config
        mu = resolution_shift(config, latent_shape)
        sigmas = torch.linspace(1.0, 1 / steps, steps).tolist()
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
        batch, _, height, width = latents.shape
        embeds, mask = padded_embeds(cond.embeds, transformer.dtype)
        t = timestep.expand(batch).to(transformer.dtype) / 1000
        output = transformer(
            hidden_states=pack(latents.to(transformer.dtype)),
            timestep=t,
            encoder_hidden_states=embeds,
            encoder_hidden_states_mask=mask,
            img_shapes=[[(1, height // 2, width // 2)]] * batch,
            return_dict=False,
            **extra_kwargs,
        )[0]
        return unpack(output.float(), height, width)

    def combine_cfg(self, uncond: torch.Tensor, cond: torch.Tensor, cfg_scale: float) -> torch.Tensor:
        """True CFG, then each packed token rescaled to the conditional prediction's norm."""
        height, width = cond.shape[-2:]
        combined = pack(uncond + cfg_scale * (cond - uncond))
        cond_norm = torch.norm(pack(cond), dim=-1, keepdim=True)
        combined_norm = torch.norm(combined, dim=-1, keepdim=True)
        return unpack(combined * (cond_norm / combined_norm), height, width)

    def _latent_stats(self, vae: Any, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, vae.config.z_dim, 1, 1, 1)
        mean = torch.tensor(vae.config.latents_mean).view(shape).to(latents.device, latents.dtype)
        std = torch.tensor(vae.config.latents_std).view(shape).to(latents.device, latents.dtype)
        return mean, std

    def decode(self, components: dict[str, Any], latents: torch.Tensor) -> torch.Tensor:
        vae = components["vae"]
        frames = latents.to(vae.dtype).unsqueeze(2)
        mean, std = self._latent_stats(vae, frames)
        # the pipeline divides by 1/std: the same float rounding as multiplying by std
        frames = frames / (1.0 / std) + mean
        return vae.decode(frames, return_dict=False)[0][:, :, 0]

    def encode_image(
        self, components: dict[str, Any], images: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        vae = components["vae"]
        dist = vae.encode(images.to(vae.dtype).unsqueeze(2)).latent_dist
        frames = dist.sample(generator=generator) if generator is not None else dist.mean
        mean, std = self._latent_stats(vae, frames)
        return ((frames - mean) * (1.0 / std))[:, :, 0]


def padded_embeds(embeds: Any, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-image caption tensors of any length -> one zero-padded batch and its mask (None
    when no image is padded: the pipeline passes no mask then)."""
    if isinstance(embeds, torch.Tensor):
        return embeds.to(dtype), None
    longest = max(e.shape[0] for e in embeds)
    batch = torch.stack([torch.cat([e, e.new_zeros(longest - e.shape[0], e.shape[1])]) for e in embeds])
    if all(e.shape[0] == longest for e in embeds):
        return batch.to(dtype), None
    mask = torch.zeros(batch.shape[:2], dtype=torch.long, device=batch.device)
    for index, e in enumerate(embeds):
        mask[index, : e.shape[0]] = 1
    return batch.to(dtype), mask


FAMILY = QwenImageFamily()
