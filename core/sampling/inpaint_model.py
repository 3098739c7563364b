"""The extra UNet input of inpainting checkpoints (9-channel UNets, e.g. sd-v1-5-inpainting).

Such a UNet reads, besides the 4 noisy latent channels, 1 mask channel and 4 channels of
the *masked image's* latents, concatenated in that order, as diffusers'
``StableDiffusionInpaintPipeline`` builds them:

- the mask is binarized at 0.5 at image size (1 = repaint), then resized to latent size
  with nearest-neighbour interpolation;
- the masked image is the init image with the repainted area set to 0 (mid-grey in
  [-1, 1]), encoded by the VAE (a sample of its posterior, like the init image);
- the model sees the kept area itself, so the sampling loop does not re-impose it each
  step (diffusers does that only for 4-channel UNets); the pixels outside the mask are
  pasted back afterwards as for every model (``core.sampling.img2img``).

Without a mask (txt2img, img2img without a mask, the hires pass) the whole image is
"masked": A1111's ``txt2img_image_conditioning`` gives these models an all-ones mask and
an encoded grey (0.5) image, which is the zero image in [-1, 1] used here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from core.sampling import vae_precision

MASK_CHANNELS = 1


def conditioning_channels(model: Any) -> int:
    """How many channels the denoiser reads beyond the latents (5 for an inpainting UNet,
    0 for an ordinary one)."""
    adapter, components = model.adapter, model.components
    denoiser = components.get(adapter.denoiser_name)
    in_channels = getattr(getattr(denoiser, "config", None), "in_channels", None)
    if in_channels is None:
        return 0
    return max(0, int(in_channels) - adapter.latent_channels(components))


def is_inpainting_model(model: Any) -> bool:
    vae = model.components.get("vae")
    latent = int(getattr(getattr(vae, "config", None), "latent_channels", 4))
    return conditioning_channels(model) == MASK_CHANNELS + latent


def binary_mask(mask: Image.Image | None, width: int, height: int) -> torch.Tensor:
    """(1, 1, H, W) float mask of 0/1 at image size (diffusers' mask processor: grey
    levels / 255, resized with Lanczos when the size differs, binarized at 0.5); all ones
    when there is no mask."""
    if mask is None:
        return torch.ones(1, 1, height, width)
    grey = mask.convert("L")
    if grey.size != (width, height):
        grey = grey.resize((width, height), Image.Resampling.LANCZOS)
    values = torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)
    return (values >= 0.5).float().reshape(1, 1, height, width)


def image_conditioning(
    model: Any,
    seeds: list[int],
    width: int,
    height: int,
    pixels: torch.Tensor | None = None,
    mask: Image.Image | None = None,
) -> torch.Tensor:
    """(B, 5, h, w): the mask and the masked image's latents for every image of a batch.
    ``pixels`` (1, 3, H, W) in [-1, 1] is the init image at the sampling size (None: a
    txt2img or hires pass, whose conditioning is the zero image under a full mask)."""
    adapter, components = model.adapter, model.components
    device = model.device
    full_mask = binary_mask(mask if pixels is not None else None, width, height)
    if pixels is None:
        pixels = torch.zeros(1, 3, height, width)
    masked = pixels.to(device, torch.float32) * (full_mask.to(device) < 0.5)
    # one generator per call, seeded like the init image's encoding (core.sampling.img2img)
    generator = torch.Generator("cpu").manual_seed(int(seeds[0]))
    with torch.inference_mode():
        latents = vae_precision.encode(adapter, components, masked, generator).float()
    latent_mask = torch.nn.functional.interpolate(full_mask, size=tuple(latents.shape[-2:])).to(device)
    both = torch.cat([latent_mask, latents], dim=1)
    return both.repeat(len(seeds), 1, 1, 1)
