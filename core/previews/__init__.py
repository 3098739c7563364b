"""Live preview decoders: what a sampling step's latents look like, cheaply.

The setting ``show_progress_type`` (A1111's name, ``core.builtin_settings``) picks one:

- ``Approx cheap``: a linear latent -> RGB map fitted from the model's own VAE
  (``approx.py``); a pixel per latent pixel, free to compute.
- ``TAESD``: a tiny autoencoder decoder (``tiny_vae.py``): the model folder's own
  (``<diffusers folder>/vae_approx/``, e.g. made by
  ``tools/demo_model/train_tiny_decoder.py``) or the family's file in
  ``models/VAE-approx/`` (taesd, taesdxl, taef1); full size, milliseconds on a GPU.
  Without one, the approximate map is used (logged once).
- ``Full``: the model's VAE (exact, the cost of a decode every preview).
- ``None``: no previews.

``PreviewDecoders.for_model`` returns a function ``latents -> PIL image`` (the first
image of the batch) for the sampling loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from core.builtin_settings import PREVIEW_METHODS
from core.errors import ModelError
from core.previews.approx import LatentColorCache
from core.previews.tiny_vae import TinyDecoder, TinyVaeFile, find_tiny_vae, load_tiny_decoder

log = logging.getLogger("easel.previews")

METHODS = PREVIEW_METHODS  # the setting's choices
APPROX, TINY, FULL, NONE = METHODS
OWN_TINY_VAE_FOLDER = "vae_approx"  # a diffusers model folder's own tiny decoder

Preview = Callable[[torch.Tensor], Any]


def images_to_pil(images: torch.Tensor) -> Any:
    """The first image of (N, 3, H, W) in [-1, 1] as a PIL image."""
    from PIL import Image

    rgb = ((images[0].detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(rgb.permute(1, 2, 0).numpy())


class PreviewDecoders:
    """Per model: its fitted colour map and its tiny decoder, made once and kept."""

    def __init__(self, state_dir: Path, folders: Callable[[str], list[Path]], allow_pickle: bool) -> None:
        self.colors = LatentColorCache(Path(state_dir) / "preview_factors.json")
        self._folders = folders
        self._allow_pickle = allow_pickle
        self._tiny: dict[Path, TinyDecoder | None] = {}
        self._lock = threading.Lock()

    def for_model(self, model: Any, method: str, hashes: Any) -> Preview | None:
        """The preview function of ``method`` for a loaded model; None for ``None``."""
        if method == NONE:
            return None
        if method == FULL:
            return self._full(model)
        if method == TINY:
            tiny = self.tiny_decoder(model)
            if tiny is not None:
                return lambda latents: images_to_pil(tiny.decode(latents[:1]))
        return self.approx(model, hashes)

    def approx(self, model: Any, hashes: Any) -> Preview:
        """The fitted map; the family's shipped factors when fitting fails."""
        key = approx_key(model, hashes)
        try:
            colors = self.colors.get(key, model.adapter, model.components)
        except Exception:  # an odd VAE costs the fitted colours, never the job
            log.exception("could not fit preview colours for %s; using the family's", key)
            return model.adapter.preview
        return lambda latents: colors.to_rgb(latents) if latents.shape[1] == colors.channels else None

    def _full(self, model: Any) -> Preview:
        from core.sampling import vae_precision

        def decode(latents: torch.Tensor) -> Any:
            vae = model.components["vae"]
            first = next(vae.parameters(), None)
            # where the VAE's weights are (an offloaded VAE's hooks bring them from "meta")
            on_device = first is not None and first.device.type != "meta"
            shown = latents[:1].to(first.device) if on_device else latents[:1]
            return images_to_pil(vae_precision.decode(model.adapter, model.components, shown, []))

        return decode

    def tiny_decoder(self, model: Any) -> TinyDecoder | None:
        """The model's own tiny decoder, else its family's; None when there is none (or it
        does not load: logged, the preview falls back to the approximate map)."""
        found = self.find_tiny(model)
        if found is None:
            log.info("no tiny VAE for %s in models/VAE-approx: approximate previews", model.name)
            return None
        with self._lock:
            if found.path not in self._tiny:
                try:
                    decoder = load_tiny_decoder(found, self._allow_pickle)
                except ModelError as exc:
                    log.warning("%s; approximate previews instead", exc)
                    decoder = None
                if decoder is not None and decoder.latent_channels != model.adapter.latent_channels(
                    model.components
                ):
                    log.warning(
                        "tiny VAE %s does not fit %s's latents; approximate previews", found.name, model.name
                    )
                    decoder = None
                self._tiny[found.path] = decoder
            return self._tiny[found.path]

    def find_tiny(self, model: Any) -> TinyVaeFile | None:
        own = Path(model.path) / OWN_TINY_VAE_FOLDER
        if model.vae_file is None and (own / "config.json").is_file():
            return TinyVaeFile(f"{model.name}/{OWN_TINY_VAE_FOLDER}", own)
        stems = tuple(getattr(model.adapter, "tiny_vae_names", ()))
        return find_tiny_vae(self._folders("VAE-approx"), stems, self._allow_pickle) if stems else None


def approx_key(model: Any, hashes: Any) -> str:
    """Model hash + the VAE in use (its file's hash, or "own")."""
    vae = "own" if model.vae_file is None else hashes.short_hash(model.vae_file.path)
    return f"{model.info.hash}:{vae}"
