"""img2img and inpainting inputs: init image to latents, masks, and putting results back.

Inpainting follows A1111 for ordinary (4-channel) checkpoints: the mask is blurred by
``mask_blur``; during sampling the unmasked area is held on the init image's noise
schedule; afterwards the original pixels are pasted back outside the (blurred) mask.
"Only masked" (``inpaint_full_res``) crops the mask's bounding box plus padding, samples
that crop at the requested size and scales it back into place.

"Masked content" (``inpainting_fill``) is A1111's: "fill" paints the masked area with the
image's surrounding colours (blurred in at falling radii) before it is encoded; "latent
noise" and "latent nothing" replace the masked part of the init latents with the seed's
noise or zeros; "original" leaves the image as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

from core.sampling import vae_precision
from core.sampling.loop import InitImage, initial_noise, make_generators
from plugin_api.types import GenerationRequest


@dataclass
class PreparedInit:
    init: InitImage
    finish: Callable[[list[Image.Image]], list[Image.Image]]
    # what an inpainting UNet's conditioning is made of (core.sampling.inpaint_model):
    # the init image at the sampling size, (1, 3, H, W) in [-1, 1], and the mask over it
    pixels: torch.Tensor | None = None
    mask: Image.Image | None = None


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> (1, 3, H, W) in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def tensor_to_pil(images: torch.Tensor) -> list[Image.Image]:
    """(N, 3, H, W) in [-1, 1] -> PIL images (rounded as diffusers does)."""
    array = (images / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).float().cpu().numpy()
    return [Image.fromarray((a * 255).round().astype("uint8")) for a in array]


def crop_region(mask: Image.Image, padding: int, width: int, height: int) -> tuple[int, int, int, int]:
    """The mask's bounding box plus padding, grown to the target aspect ratio."""
    box = mask.getbbox() or (0, 0, mask.width, mask.height)
    x1, y1, x2, y2 = box[0] - padding, box[1] - padding, box[2] + padding, box[3] + padding
    target = width / height
    w, h = x2 - x1, y2 - y1
    if w / h < target:  # too narrow: widen
        grow = target * h - w
        x1, x2 = x1 - grow / 2, x2 + grow / 2
    else:
        grow = w / target - h
        y1, y2 = y1 - grow / 2, y2 + grow / 2
    x1, y1 = max(0, int(x1)), max(0, int(y1))
    x2, y2 = min(mask.width, round(x2)), min(mask.height, round(y2))
    return x1, y1, x2, y2


FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = 0, 1, 2, 3
# A1111's fill: (blur radius, times composited), widest first, then the sharp image itself
FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


def fill_masked_area(image: Image.Image, mask: Image.Image) -> Image.Image:
    """The masked area painted with the colours around it: the unmasked pixels (alpha =
    1 - mask, premultiplied so that blurring spreads colour, not black) blurred at falling
    radii and composited over each other; outside the mask the image is unchanged."""
    keep = Image.new("RGBa", image.size)
    keep.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    filled = Image.new("RGBA", image.size)
    for radius, repeats in FILL_PASSES:
        blurred = keep.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            filled.alpha_composite(blurred)
    return filled.convert("RGB")


def prepare_init(request: GenerationRequest, model, seeds: list[int]) -> PreparedInit:
    width, height = int(request.width), int(request.height)
    original = request.init_image.convert("RGB")
    mask_full = None
    if request.mask is not None:
        mask_full = request.mask.convert("L").resize(original.size, Image.Resampling.LANCZOS)
        if request.mask_blur > 0:
            mask_full = mask_full.filter(ImageFilter.GaussianBlur(request.mask_blur))
    region = None
    source = original
    mask = mask_full
    if mask_full is not None and request.inpaint_full_res:
        region = crop_region(mask_full, request.inpaint_full_res_padding, width, height)
        source = original.crop(region)
        mask = mask_full.crop(region)
    source = source.resize((width, height), Image.Resampling.LANCZOS)
    fill = int(getattr(request, "inpainting_fill", ORIGINAL)) if mask is not None else ORIGINAL
    if fill == FILL:
        source = fill_masked_area(source, mask.resize(source.size, Image.Resampling.LANCZOS))

    adapter, components = model.adapter, model.components
    pixels = pil_to_tensor(source).to(model.device)
    generator = torch.Generator("cpu").manual_seed(int(seeds[0]))
    with torch.inference_mode():
        latents = vae_precision.encode(adapter, components, pixels, generator).float()
    latents = latents.repeat(len(seeds), 1, 1, 1)

    latent_mask = None
    if mask is not None:
        mask_small = mask.resize((latents.shape[3], latents.shape[2]), Image.Resampling.BILINEAR)
        m = torch.from_numpy(np.asarray(mask_small, dtype=np.float32) / 255.0)
        latent_mask = m.reshape(1, 1, *m.shape).repeat(len(seeds), 1, 1, 1).to(model.device)
        if fill in (LATENT_NOISE, LATENT_NOTHING):
            latents = latents.to(model.device) * (1 - latent_mask)
            if fill == LATENT_NOISE:  # the seed's own noise, as A1111 draws it for the seed
                noise = initial_noise(tuple(latents.shape), make_generators(seeds), latents.device)
                latents = latents + noise.to(latents.dtype) * latent_mask
    init = InitImage(latents=latents, strength=float(request.denoising_strength), mask=latent_mask)

    def finish(images: list[Image.Image]) -> list[Image.Image]:
        if mask_full is None:
            return images
        finished = []
        for image in images:
            if region is not None:
                canvas = original.copy()
                size = (region[2] - region[0], region[3] - region[1])
                canvas.paste(image.resize(size, Image.Resampling.LANCZOS), region[:2])
                image = canvas
            else:
                image = image.resize(original.size, Image.Resampling.LANCZOS)
            # original pixels outside the mask, the generated ones inside
            finished.append(Image.composite(image, original, mask_full))
        return finished

    return PreparedInit(init=init, finish=finish, pixels=pixels, mask=mask)
