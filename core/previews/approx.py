"""The cheap live preview ("Approx cheap" in A1111): one linear map from a latent pixel to
an RGB colour, fitted from the model's own VAE.

Shipped per-family factors (A1111's for SD1.5/SDXL, ComfyUI's for the Flux VAE) are right
only for the VAE they were fitted to. A checkpoint with another VAE, such as the demo model
(an SD1.5 UNet on a VAE of its own), got colours that had nothing to do with its image: a
green star on white previewed as a white blob on blue. So the map is fitted for every
model + VAE pair instead: structured images (flat colour blocks over the whole colour
cube, gradients) are encoded with the VAE, the latents decoded again, and least squares
gives the (channels + 1) x 3 matrix from a latent pixel (with a constant) to the mean
colour of the decoded pixels above it. Fitting against the decode, not the source image,
gives the VAE's own colours. It costs one encode and one decode of a few small images
(milliseconds on a GPU, about a second for SD1.5's VAE on a CPU) and is cached on disk
per model and VAE hash, so it runs once per pair.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("easel.previews")

FIT_IMAGES = 12  # images encoded and decoded for one fit
FIT_LATENT_SIDE = 16  # their latent side (128 px at f=8): enough pixels, small decode
FIT_SEED = 20261202  # the fit is deterministic: the same VAE always gives the same map
CACHE_VERSION = 2  # bump when the fitting recipe changes: old fits are refitted
DEGREE_MARGIN = 0.1  # channel products are used when they cut the held-out error by 10%
RIDGE = 1e-4
DEGREES = (1, 2, 3)
MIN_ROWS_PER_FEATURE = 8


def features(pixels: torch.Tensor, degree: int, context: torch.Tensor | None = None) -> torch.Tensor:
    """(P, C) latent pixels -> (P, F): the channels, every product of two channels (degree
    2), of three (degree 3), the ``context`` columns (the mean latent of each pixel's
    image: a VAE's GroupNorm makes a colour depend on the whole image), a constant."""
    columns = [pixels]
    for order in range(2, degree + 1):
        combos = torch.combinations(torch.arange(pixels.shape[1]), order, with_replacement=True)
        columns.append(pixels[:, combos].prod(dim=2))
    if context is not None:
        columns.append(context)
    columns.append(torch.ones(len(pixels), 1, dtype=pixels.dtype))
    return torch.cat(columns, dim=1)


@dataclass(frozen=True)
class LatentColors:
    """``rgb = features(latent_pixel) @ factors + bias`` with rgb in [-1, 1] (the VAE's
    range). Degree 1 is A1111's "Approx cheap" matrix; degree 2 adds the products of two
    channels, for VAEs whose colours are not linear in the latents (the demo model's)."""

    factors: tuple[tuple[float, ...], ...]  # one row per feature (constant excluded), 3 columns
    bias: tuple[float, float, float]
    channels: int
    degree: int = 1
    context: bool = False  # the image's mean latent is an input too

    def to_rgb(self, latents: torch.Tensor) -> Any:
        """PIL image of the first image of ``latents`` (N, C, h, w), one pixel per latent pixel."""
        from PIL import Image

        image = latents[0].detach().float().cpu()
        pixels = image.permute(1, 2, 0).reshape(-1, image.shape[0])
        context = pixels.mean(dim=0, keepdim=True).expand_as(pixels) if self.context else None
        rgb = (features(pixels, self.degree, context) @ _matrix(self)).reshape(
            image.shape[1], image.shape[2], 3
        )
        rgb = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
        return Image.fromarray(rgb)

    def error(self, x: torch.Tensor, context: torch.Tensor, y: torch.Tensor) -> float:
        """Mean absolute error on (P, C) latent pixels with their images' mean latents."""
        a = features(x, self.degree, context if self.context else None)
        return float((a @ _matrix(self) - y).abs().mean())

    def as_json(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "channels": self.channels,
            "degree": self.degree,
            "context": self.context,
            "factors": [list(r) for r in self.factors],
            "bias": list(self.bias),
        }

    @classmethod
    def from_json(cls, data: Any) -> LatentColors | None:
        """None for anything that is not a fit of this version (a stale or edited cache)."""
        try:
            if data.get("version") != CACHE_VERSION:
                return None
            channels, degree, context = int(data["channels"]), int(data["degree"]), bool(data["context"])
            factors = tuple(tuple(float(v) for v in row) for row in data["factors"])
            bias = tuple(float(v) for v in data["bias"])
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        width = feature_count(channels, degree, context) - 1 if channels > 0 and degree in DEGREES else -1
        if len(bias) != 3 or len(factors) != width or any(len(row) != 3 for row in factors):
            return None
        return cls(factors, (bias[0], bias[1], bias[2]), channels, degree, context)


def feature_count(channels: int, degree: int, context: bool = False) -> int:
    """Columns of ``features`` (the constant included)."""
    products = sum(math.comb(channels + order - 1, order) for order in range(1, degree + 1))
    return products + (channels if context else 0) + 1


def fit_images(count: int, side: int, seed: int = FIT_SEED) -> torch.Tensor:
    """``count`` images (N, 3, side, side) in [-1, 1], in turn: a flat background with a few
    small blocks of other colours, a mosaic of flat blocks, a smooth gradient. A VAE's
    GroupNorm makes a colour's latents depend on the rest of the image, so large flat
    areas (what a picture's background is) must be in the fit, not only busy mosaics.
    Half of the colours are the 27 points of the colour cube's grid (black, white, pure
    and mixed primaries: flat, saturated colours are where a VAE is least linear)."""
    generator = torch.Generator("cpu").manual_seed(seed)
    grid_colours = torch.tensor(
        [[r, g, b] for r in (-1.0, 0.0, 1.0) for g in (-1.0, 0.0, 1.0) for b in (-1.0, 0.0, 1.0)]
    )

    def colours(n: int) -> torch.Tensor:
        picked = torch.rand(n, 3, generator=generator) * 2 - 1
        on_grid = torch.rand(n, generator=generator) < 0.5
        picks = torch.randint(0, len(grid_colours), (n,), generator=generator)
        picked[on_grid] = grid_colours[picks[on_grid]]
        return picked

    images = []
    for index in range(count):
        kind = index % 3
        if kind == 0:  # a background and 1-3 blocks of 1/8 to 1/4 of the side
            image = colours(1)[0].view(3, 1, 1).repeat(1, side, side)
            for colour in colours(1 + index % 3):
                size = int(side * (0.125 + 0.125 * float(torch.rand(1, generator=generator))))
                top, left = (torch.randint(0, side - size, (2,), generator=generator)).tolist()
                image[:, top : top + size, left : left + size] = colour.view(3, 1, 1)
            images.append(image)
        elif kind == 1:  # 2x2 or 4x4 blocks of flat colour
            blocks = 2 + index % 2 * 2
            grid = colours(blocks * blocks).T.reshape(3, blocks, blocks)
            images.append(torch.nn.functional.interpolate(grid[None], size=(side, side), mode="nearest")[0])
        else:  # a gradient between two colours, in a random direction
            a, b = colours(2).view(2, 3, 1, 1)
            angle = torch.rand(1, generator=generator) * 6.2832
            ys, xs = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
            t = xs * torch.cos(angle) + ys * torch.sin(angle)
            t = ((t - t.min()) / (t.max() - t.min()).clamp(min=1e-6)).unsqueeze(0)
            images.append(a * (1 - t) + b * t)
    return torch.stack(images)


def fit_latent_colors(adapter: Any, components: dict[str, Any]) -> LatentColors:
    """Least-squares latent -> RGB map for this VAE (see the module docstring): the simplest
    form (linear first, then with channel products, then with the image's mean latent) unless
    a richer one predicts held-out images better by a clear margin."""
    train = _latent_color_pairs(adapter, components, FIT_SEED)
    held_out = _latent_color_pairs(adapter, components, FIT_SEED + 1)
    best: tuple[float, LatentColors] | None = None
    for context in (False, True):
        for degree in DEGREES:
            if feature_count(train[0].shape[1], degree, context) * MIN_ROWS_PER_FEATURE > len(train[0]):
                break  # too many products for the pixels (a 16-channel VAE stops at degree 2)
            colors = _least_squares(*train, degree, context)
            error = colors.error(*held_out)
            if best is None or error < best[0] * (1 - DEGREE_MARGIN):
                best = (error, colors)
    assert best is not None
    return best[1]


def _latent_color_pairs(
    adapter: Any, components: dict[str, Any], seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(P, C) latent pixels of encoded fit images, (P, C) the mean latent of each one's
    image, and (P, 3) the mean decoded colour above each."""
    from core.families.devices import execution_device
    from core.sampling import vae_precision

    vae = components["vae"]
    # pixels per latent pixel: the VAE's downsampling, times 2 where latents are 2x2 patches (FLUX.2)
    factor = 1024 // adapter.latent_shape(components, 1, 1024, 1024)[-1]
    images = fit_images(FIT_IMAGES, FIT_LATENT_SIDE * factor, seed)
    # where the VAE computes: an offloaded VAE's weights are "meta" placeholders between
    # calls, and its hooks bring them to the execution device (core/models/offload.py)
    device = execution_device(vae)
    with torch.inference_mode(), vae_precision.float32_vae(vae):
        pixels = images.to(device, torch.float32)
        # the family's own encode (the posterior's mean) and decode: scaling, shift, per-channel
        # statistics, patches (FLUX.2) and video frames (Qwen-Image) as the sampler's latents have them
        latents = adapter.encode_mean(components, pixels).float()
        decoded = adapter.decode(components, latents).float().clamp(-1, 1)
    target = torch.nn.functional.avg_pool2d(decoded, factor).cpu()
    x = latents.float().cpu().permute(0, 2, 3, 1)
    context = x.mean(dim=(1, 2), keepdim=True).expand_as(x)
    channels = latents.shape[1]
    return x.reshape(-1, channels), context.reshape(-1, channels), target.permute(0, 2, 3, 1).reshape(-1, 3)


def _least_squares(
    x: torch.Tensor, context: torch.Tensor, y: torch.Tensor, degree: int, with_context: bool
) -> LatentColors:
    a = features(x, degree, context if with_context else None).double()
    # a little ridge: channel products of a 16-channel VAE are many and correlated
    ridge = RIDGE * len(a) * torch.eye(a.shape[1], dtype=torch.float64)
    ridge[-1, -1] = 0  # the constant is not shrunk
    solution = torch.linalg.solve(a.T @ a + ridge, a.T @ y.double()).float()
    factors = tuple(tuple(round(float(v), 6) for v in row) for row in solution[:-1])
    bias = tuple(round(float(v), 6) for v in solution[-1])
    return LatentColors(factors, (bias[0], bias[1], bias[2]), x.shape[1], degree, with_context)


def _matrix(colors: LatentColors) -> torch.Tensor:
    return torch.tensor([*colors.factors, colors.bias], dtype=torch.float32)


class LatentColorCache:
    """Fitted maps by model + VAE key, in memory and in one JSON file in the state folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._memory: dict[str, LatentColors] = {}

    def _stored(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str, adapter: Any, components: dict[str, Any]) -> LatentColors:
        """The map for ``key``; fitted (and stored) the first time."""
        with self._lock:
            if key in self._memory:
                return self._memory[key]
            colors = LatentColors.from_json(self._stored().get(key))
            if colors is None:
                colors = fit_latent_colors(adapter, components)
                log.info("fitted the latent -> RGB preview map for %s", key)
                self._store(key, colors)
            self._memory[key] = colors
            return colors

    def _store(self, key: str, colors: LatentColors) -> None:
        data = self._stored()
        data[key] = colors.as_json()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=1), "utf-8")
            tmp.replace(self.path)
        except OSError as exc:  # a read-only data folder costs the cache, not the preview
            log.warning("could not store preview factors in %s: %s", self.path, exc)
