"""Z-Image / Z-Image-Turbo: a single-stream flow-matching transformer, Qwen3 text encoder.

Following diffusers' ``ZImagePipeline``: the prompt is wrapped in Qwen's chat template,
the text encoder's second-to-last hidden states (padding dropped, so captions have
variable length) condition the transformer, which takes lists of per-image tensors and
the timestep as ``(1000 - t) / 1000``; its output is the negated velocity. CFG uses
A1111's convention (``cfg_scale`` = diffusers' ``guidance_scale`` + 1), so Turbo's
"guidance 0" is CFG scale 1 (off). Prompt weights and BREAK are CLIP syntax and are not
applied: the text goes to Qwen as written (it reads Chinese natively).

Single files (ComfyUI ``diffusion_models/*.safetensors``) hold only the transformer; the
text encoder and VAE come from ComfyUI's files beside it (``core/families/zimage_files.py``,
``core/models/comfyui.py``) or from a full diffusers Z-Image folder at ``<name>.config/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.errors import ModelError
from core.families.base import Conditioning, FamilyAdapter, FamilyDefaults
from core.families.devices import execution_device

if TYPE_CHECKING:
    from core.prompt_embeddings import PromptEmbeddings

DETECTION_KEY = "layers.0.adaLN_modulation.0.weight"
SINGLE_FILE_PREFIX = "model.diffusion_model."
MAX_SEQUENCE_LENGTH = 512


def calculate_shift(seq_len: int, base_len: int, max_len: int, base_shift: float, max_shift: float) -> float:
    slope = (max_shift - base_shift) / (max_len - base_len)
    return seq_len * slope + base_shift - slope * base_len


def resolution_shift(config: Any, latent_shape: tuple) -> float:
    """The schedule's ``mu`` for a latent of ``latent_shape`` (2x2 patches), from the
    scheduler config's resolution-dependent shift (the Z-Image, Flux and Qwen-Image
    pipelines' own defaults where the config is silent)."""
    seq_len = (latent_shape[2] // 2) * (latent_shape[3] // 2)
    return calculate_shift(
        seq_len,
        config.get("base_image_seq_len", 256),
        config.get("max_image_seq_len", 4096),
        config.get("base_shift", 0.5),
        config.get("max_shift", 1.15),
    )


class ZImageFamily(FamilyAdapter):
    name = "zimage"
    label = "Z-Image"
    defaults = FamilyDefaults(
        width=1024, height=1024, steps=8, cfg_scale=1.0, sampler="Euler", size_multiple=16
    )
    flow = True
    uses_clip_prompts = False
    denoiser_name = "transformer"
    # ComfyUI's latent -> RGB factors for the 16-channel Flux VAE that Z-Image uses
    tiny_vae_names = ("taef1",)  # Z-Image uses the Flux VAE
    preview_factors = (
        (-0.0346, 0.0244, 0.0681),
        (0.0034, 0.0210, 0.0687),
        (0.0275, -0.0668, -0.0433),
        (-0.0174, 0.0160, 0.0617),
        (0.0859, 0.0721, 0.0329),
        (0.0004, 0.0383, 0.0115),
        (0.0405, 0.0861, 0.0915),
        (-0.0236, -0.0185, -0.0259),
        (-0.0245, 0.0250, 0.1180),
        (0.1008, 0.0755, -0.0421),
        (-0.0515, 0.0201, 0.0011),
        (0.0428, -0.0012, -0.0036),
        (0.0817, 0.0765, 0.0749),
        (-0.1264, -0.0522, -0.1103),
        (-0.0280, -0.0881, -0.0499),
        (-0.1262, -0.0982, -0.0778),
    )
    preview_bias = (-0.0329, -0.0718, -0.0851)

    def detect_keys(self, shapes: dict[str, list[int]]) -> str | None:
        if DETECTION_KEY in shapes or SINGLE_FILE_PREFIX + DETECTION_KEY in shapes:
            return "zimage"
        return None

    def detect_folder(self, model_index: dict[str, Any]) -> bool:
        return model_index.get("_class_name") == "ZImagePipeline"

    def load_folder(self, path: Path, dtype: torch.dtype, **overrides: Any) -> dict[str, Any]:
        from diffusers import ZImagePipeline

        pipe = ZImagePipeline.from_pretrained(str(path), dtype=dtype, local_files_only=True, **overrides)
        return dict(pipe.components)

    def load_single_file(
        self, path: Path, config_dir: Path, dtype: torch.dtype, state_dict: dict | None = None
    ) -> dict[str, Any]:
        from diffusers import ZImageTransformer2DModel

        if not (config_dir / "text_encoder").is_dir() or not any((config_dir / "vae").glob("*.safetensors")):
            raise ModelError(
                f"{path}: a Z-Image single file holds only the transformer; put a full diffusers "
                f"Z-Image folder (text_encoder, tokenizer, vae) at {path.with_suffix('.config')}"
            )
        transformer = ZImageTransformer2DModel.from_single_file(
            str(path), config=str(config_dir), subfolder="transformer", local_files_only=True, dtype=dtype
        )
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
            templated = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}],
                tokenize=False,
                add_generation_prompt=True,
                enable_thinking=True,
            )
            inputs = tokenizer(
                [templated],
                padding="max_length",
                max_length=MAX_SEQUENCE_LENGTH,
                truncation=True,
                return_tensors="pt",
            )
            device = execution_device(encoder)
            ids = inputs.input_ids.to(device)
            mask = inputs.attention_mask.to(device).bool()
            hidden = encoder(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-2]
            return Conditioning([hidden[0][mask[0]]])

        return encode(prompt), encode(negative) if need_negative else None

    def latent_shape(self, components: dict[str, Any], batch: int, width: int, height: int) -> tuple:
        vae = components["vae"]
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        channels = int(components["transformer"].config.in_channels)
        return (batch, channels, 2 * (height // (factor * 2)), 2 * (width // (factor * 2)))

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
        t = (1000 - timestep.expand(latents.shape[0])) / 1000
        frames = list(latents.to(transformer.dtype).unsqueeze(2).unbind(dim=0))
        output = transformer(frames, t, cond.embeds, return_dict=False, **extra_kwargs)[0]
        return -torch.stack([o.float() for o in output]).squeeze(2)


FAMILY = ZImageFamily()
