"""FLUX.2 [klein] 4B and 9B: FLUX.2's rectified-flow MMDiT with a Qwen3 text encoder.

Following diffusers' ``Flux2KleinPipeline`` (its static helpers for ids, packing, patching
and ``mu`` are called; the prompt encoding is redone only to place inputs under offload):
the prompt goes through Qwen3's chat template (thinking off), padded to 512 tokens, and the
hidden states of layers 9, 18 and 27 are concatenated per token (4B: 3 x 2560 = 7680 wide,
9B's Qwen3-8B: 3 x 4096); text positions are (0, 0, 0, l). The VAE has 32 latent channels;
the transformer works on 2x2 patches of them (128 channels) normalised by the VAE's
BatchNorm statistics, so the loop keeps latents in that patched space (noise is drawn
there, as the pipeline does) and ``decode`` undoes the normalisation and the patching. The
timestep goes in as ``t / 1000``; the schedule is ``linspace(1, 1/steps)`` shifted
exponentially by BFL's empirical ``mu`` (from the image's token count and the step count).
There is no guidance embedding: Klein (distilled, 4 steps) runs at CFG scale 1, Klein Base
(50 steps) with real CFG (``uncond + scale * (cond - uncond)``, diffusers' ``guidance_scale``;
diffusers' negative is always "", Easel's is the negative prompt). Prompt weights and BREAK
are CLIP syntax and are not applied.

Single files (BFL ``flux-2-klein-4b.safetensors``, ComfyUI ``diffusion_models/``, GGUF, FP8)
hold the transformer only; the Qwen3 text encoder and the FLUX.2 VAE come from ComfyUI's
``text_encoders/`` (``qwen_3_4b.safetensors``, Klein 9B: ``qwen_3_8b``) and ``vae/``
(``flux2-vae.safetensors``) files, or a full diffusers folder at ``<name>.config/``. The
tokenizer is the Qwen3 one Easel builds for Z-Image (``core/families/qwen_tokenizer.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from core.errors import ModelError
from core.families.base import Conditioning, FamilyDefaults
from core.families.devices import execution_device
from core.families.flux import FLUX2_KEY as DETECTION_KEY
from core.families.flux import FluxFamily, has_key

if TYPE_CHECKING:
    from core.models.comfyui import ZImageFiles
    from core.prompt_embeddings import PromptEmbeddings

CONTEXT_KEY = "txt_in.weight"  # [hidden, 3 x Qwen3 width]
GUIDANCE_KEY = "guidance_in.in_layer.weight"  # FLUX.2 [dev] (Mistral encoder): not Klein
KLEIN_9B_CONTEXT = 3 * 4096  # Qwen3-8B; anything else is read as 4B-shaped (a <name>.config/ says more)
TEXT_LAYERS = (9, 18, 27)  # Flux2KleinPipeline's text_encoder_out_layers
MAX_SEQUENCE_LENGTH = 512
VAE_RENAMES = {"encoder.quant_conv.": "quant_conv.", "decoder.post_quant_conv.": "post_quant_conv."}


def _pipeline() -> Any:
    from diffusers import Flux2KleinPipeline

    return Flux2KleinPipeline


def bn_stats(vae: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE's latent BatchNorm mean and standard deviation, shaped (1, C, 1, 1), as the
    pipeline computes them. The statistics are read inside a call of the BatchNorm layer:
    under sequential offload (core/models/offload.py) a layer's buffers are meta
    placeholders except while it runs, and its offload pre-hook, registered first, runs
    before this one."""
    bn = vae.bn
    seen: dict[str, torch.Tensor] = {}

    def read(module: torch.nn.Module, args: tuple) -> None:
        seen["mean"], seen["var"] = module.running_mean.detach().clone(), module.running_var.detach().clone()

    handle = bn.register_forward_pre_hook(read)
    try:
        bn(torch.zeros(1, bn.num_features, 1, 1, device=execution_device(vae), dtype=vae.dtype))
    finally:
        handle.remove()
    mean = seen["mean"].view(1, -1, 1, 1).to(like.device, like.dtype)
    std = torch.sqrt(seen["var"].view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(like.device, like.dtype)
    return mean, std


class Flux2KleinFamily(FluxFamily):
    name = "flux2"
    label = "FLUX.2 Klein"
    # BFL's model cards: Klein (step-distilled) 4 steps without CFG, Klein Base 50 steps at CFG 4
    defaults = FamilyDefaults(
        width=1024, height=1024, steps=4, cfg_scale=1.0, sampler="Euler", size_multiple=16
    )
    base_defaults = FamilyDefaults(
        width=1024, height=1024, steps=50, cfg_scale=4.0, sampler="Euler", size_multiple=16
    )
    guidance_distilled_family = False  # no guidance embedding: CFG > 1 is real CFG
    pipeline_class = "Flux2KleinPipeline"
    transformer_class = "Flux2Transformer2DModel"
    preview_factors = ()  # 128 patched channels: no linear preview yet
    preview_bias = (0.0, 0.0, 0.0)

    def detect_keys(self, shapes: dict[str, list[int]]) -> str | None:
        if not has_key(shapes, DETECTION_KEY):
            return None
        if has_key(shapes, GUIDANCE_KEY):
            # named here: FLUX.1 refuses FLUX.2 files, so it would read as "unknown"
            raise ModelError(
                "a FLUX.2 [dev] checkpoint (guidance embedding, Mistral text encoder): Easel "
                "runs the FLUX.2 Klein models (4B, 9B) only"
            )
        context = shapes.get(CONTEXT_KEY) or shapes.get("model.diffusion_model." + CONTEXT_KEY) or [0, 0]
        return "flux2-klein-9b" if context[-1] == KLEIN_9B_CONTEXT else "flux2-klein-4b"

    def detect_folder(self, model_index: dict[str, Any]) -> bool:
        return model_index.get("_class_name") == "Flux2KleinPipeline"

    def defaults_for(self, variant: str) -> FamilyDefaults:
        return self.base_defaults if variant.endswith("-base") else self.defaults

    def config_dir_for(self, variant: str) -> str:
        return "flux2-klein-9b" if variant.startswith("flux2-klein-9b") else "flux2-klein-4b"

    def distilled_guidance_default(self, variant: str) -> float | None:
        return None

    def folder_variant(self, folder: Path) -> str:
        """``flux2-klein-4b``/``-9b`` from the transformer's text width, ``-base`` where the
        pipeline is not step-distilled (``is_distilled`` in model_index.json)."""
        try:
            index = json.loads((folder / "model_index.json").read_text("utf-8"))
            config = json.loads((folder / "transformer" / "config.json").read_text("utf-8"))
        except (OSError, ValueError):
            return "flux2-klein-4b"
        size = "9b" if config.get("joint_attention_dim") == KLEIN_9B_CONTEXT else "4b"
        return f"flux2-klein-{size}" + ("" if index.get("is_distilled", False) else "-base")

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
        encoder, tokenizer = components["text_encoder"], components["tokenizer"]

        def encode(text: str) -> Conditioning:
            # Flux2KleinPipeline._get_qwen3_prompt_embeds, with the inputs put where the
            # encoder computes (its helper reads the device off the weights, which are meta
            # placeholders under sequential offload)
            templated = tokenizer.apply_chat_template(
                [{"role": "user", "content": text}],
                tokenize=False,
                add_generation_prompt=True,
                enable_thinking=False,
            )
            inputs = tokenizer(
                templated,
                return_tensors="pt",
                padding="max_length",
                truncation=True,
                max_length=MAX_SEQUENCE_LENGTH,
            )
            device = execution_device(encoder)
            output = encoder(
                input_ids=inputs["input_ids"].to(device),
                attention_mask=inputs["attention_mask"].to(device),
                output_hidden_states=True,
                use_cache=False,
            )
            layers = torch.stack([output.hidden_states[k] for k in TEXT_LAYERS], dim=1)  # (B, 3, L, D)
            batch, count, length, width = layers.shape
            return Conditioning(layers.permute(0, 2, 1, 3).reshape(batch, length, count * width))

        return encode(prompt), encode(negative) if need_negative else None

    def latent_shape(self, components: dict[str, Any], batch: int, width: int, height: int) -> tuple:
        """Patched latents: (batch, 4 x 32 channels, height / 16, width / 16)."""
        factor = 2 * 2 ** (len(components["vae"].config.block_out_channels) - 1)
        return (batch, self.latent_channels(components), height // factor, width // factor)

    def latent_channels(self, components: dict[str, Any]) -> int:
        return int(components["transformer"].config.in_channels)

    def set_timesteps(self, scheduler: Any, steps: int, latent_shape: tuple, device: torch.device) -> None:
        import numpy as np
        from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

        mu = compute_empirical_mu(image_seq_len=latent_shape[2] * latent_shape[3], num_steps=steps)
        sigmas = None if scheduler.config.get("use_flow_sigmas") else np.linspace(1.0, 1 / steps, steps)
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
        batch, channels, height, width = latents.shape
        pipeline = _pipeline()
        output = transformer(
            hidden_states=pipeline._pack_latents(latents).to(dtype),
            timestep=timestep.expand(batch).to(latents.dtype) / 1000,
            guidance=None,
            encoder_hidden_states=cond.embeds.to(dtype),
            txt_ids=pipeline._prepare_text_ids(cond.embeds).to(latents.device),
            img_ids=pipeline._prepare_latent_ids(latents).to(latents.device),
            return_dict=False,
            **extra_kwargs,
        )[0]
        # tokens are in row-major order (the pipeline's ids): the inverse of _pack_latents
        return output.float().permute(0, 2, 1).reshape(batch, channels, height, width)

    def decode(self, components: dict[str, Any], latents: torch.Tensor) -> torch.Tensor:
        vae = components["vae"]
        mean, std = bn_stats(vae, latents)
        unpatched = _pipeline()._unpatchify_latents(latents * std + mean)
        return vae.decode(unpatched.to(vae.dtype), return_dict=False)[0]

    def encode_image(
        self, components: dict[str, Any], images: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Images -> normalised patched latents of the distribution's mode, as the pipeline
        encodes its reference images."""
        return self.encode_mean(components, images)

    def encode_mean(self, components: dict[str, Any], images: torch.Tensor) -> torch.Tensor:
        vae = components["vae"]
        latents = vae.encode(images.to(vae.dtype)).latent_dist.mode()
        patched = _pipeline()._patchify_latents(latents).float()
        mean, std = bn_stats(vae, patched)
        return (patched - mean) / std


def load_vae(path: Path, config_dir: Path, dtype: torch.dtype) -> Any:
    """A FLUX.2 VAE from BFL's / ComfyUI's ``flux2-vae.safetensors`` (LDM names, the quant
    convs inside ``encoder.``/``decoder.``, the latent BatchNorm ``bn.*``). diffusers has no
    single-file loader for ``AutoencoderKLFlux2``; its LDM VAE mapping does the blocks."""
    from diffusers import AutoencoderKLFlux2
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from core.families.flux_files import read_state

    state = {k.removeprefix("first_stage_model."): v for k, v in read_state(path, dtype).items()}
    if "bn.running_mean" not in state:
        raise ModelError(f"{path}: not a FLUX.2 VAE (no bn.running_mean: a FLUX.1 ae.safetensors?)")
    for theirs, ours in VAE_RENAMES.items():
        state = {(ours + k.removeprefix(theirs) if k.startswith(theirs) else k): v for k, v in state.items()}
    config = AutoencoderKLFlux2.load_config(str(config_dir / "vae"))
    converted = convert_ldm_vae_checkpoint(state, config)
    for key in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        if key in state:
            converted[key] = state[key]
    with torch.device("meta"):
        vae = AutoencoderKLFlux2.from_config(config)
    converted.setdefault("bn.num_batches_tracked", torch.tensor(0))
    result = vae.load_state_dict(converted, strict=False, assign=True)
    if result.missing_keys:
        more = f" and {len(result.missing_keys) - 1} more" if len(result.missing_keys) > 1 else ""
        raise ModelError(f"{path}: not a FLUX.2 VAE for this config: {result.missing_keys[0]}{more} missing")
    return vae.to(dtype).eval()


def load_from_files(
    files: ZImageFiles, config_dir: Path, dtype: torch.dtype, tokenizer_cache: Path
) -> dict[str, Any]:
    """ComfyUI's FLUX.2 Klein: transformer file (safetensors, FP8, GGUF), Qwen3 text encoder
    file and FLUX.2 VAE file (``core.models.comfyui.zimage_companions`` finds them)."""
    from core.families import flux_files, zimage_files

    return zimage_files.load_from_files(
        files,
        config_dir,
        dtype,
        tokenizer_cache,
        load_transformer=lambda path: flux_files.load_transformer(
            path, config_dir, dtype, FAMILY.transformer_class
        ),
        load_vae=lambda path: load_vae(path, config_dir, dtype),
        family=FAMILY.label,
    )


def companion_widths(config_dir: Path) -> tuple[int, int]:
    """(Qwen3 width, VAE latent channels) a config folder asks for: the transformer's text
    input is three Qwen3 layers wide (Klein 4B: 3 x 2560); the real VAE has 32 channels."""
    try:
        transformer = json.loads((config_dir / "transformer" / "config.json").read_text("utf-8"))
        vae = json.loads((config_dir / "vae" / "config.json").read_text("utf-8"))
        return int(transformer["joint_attention_dim"]) // len(TEXT_LAYERS), int(vae["latent_channels"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{config_dir}: not a FLUX.2 Klein config folder: {exc}") from exc


FAMILY = Flux2KleinFamily()
