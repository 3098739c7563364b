"""VAE files chosen per request, as A1111's "SD VAE" option: "Automatic", "None" or a file.

Where VAE files come from (A1111's places):
- ``<models-dir>/VAE/`` (and the shipped ``models/VAE``): any ``.safetensors`` (pickle
  ``.pt``/``.ckpt`` only with ``--allow-pickle``), named by file name
  ("vae-ft-mse-840000-ema-pruned.safetensors");
- ``<checkpoint>.vae.safetensors`` (or ``.vae.pt``/``.vae.ckpt``) beside a checkpoint;
  such a file is a VAE, never listed as a checkpoint.

Choices: "None" is the checkpoint's own VAE; "Automatic" is the VAE beside the checkpoint
(``<stem>.vae.*``) or one in the VAE folder named like the checkpoint, else its own
(A1111's order); any other value names a VAE file. A file in the original (LDM) layout is
converted by diffusers' ``AutoencoderKL.from_single_file`` with the model's own VAE config,
so it must fit that model's VAE (latent channels are checked first, with a clear error).
Loaded VAEs are kept per model; switching never reloads the UNet.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelError, RequestError

log = logging.getLogger("easel.vae")

VAE_FOLDER = "VAE"
AUTOMATIC = "Automatic"
NONE = "None"
VAE_SUFFIXES = (".safetensors", ".pt", ".ckpt")
BESIDE_MARK = ".vae"  # <checkpoint stem>.vae.safetensors


@dataclass(frozen=True)
class VaeFile:
    name: str  # the file name, as A1111 lists and records it
    path: Path

    def as_dict(self) -> dict[str, str]:
        """A1111's /sdapi/v1/sd-vae entry."""
        return {"model_name": self.name, "filename": str(self.path)}


def is_beside_vae(path: Path) -> bool:
    """``x.vae.safetensors``: a VAE that belongs to checkpoint ``x``."""
    return path.suffix.lower() in VAE_SUFFIXES and Path(path.stem).suffix.lower() == BESIDE_MARK


def _usable(path: Path, allow_pickle: bool) -> bool:
    return path.suffix.lower() == ".safetensors" or (allow_pickle and path.suffix.lower() in VAE_SUFFIXES)


class VaeLibrary:
    """The VAE files a manager can offer, and the loaded ones per model."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager
        self._loaded: dict[tuple[str, str, int, int], Any] = {}
        self._lock = threading.Lock()

    def list(self) -> list[VaeFile]:
        allow = self.manager.settings.allow_pickle
        found: dict[str, VaeFile] = {}
        for folder in self.manager.folders(VAE_FOLDER):
            for path in sorted(folder.rglob("*")):
                if path.is_file() and _usable(path, allow):
                    found.setdefault(path.name, VaeFile(path.name, path))
        for folder in self.manager.checkpoint_dirs():
            for path in sorted(folder.rglob(f"*{BESIDE_MARK}.*")):
                if path.is_file() and is_beside_vae(path) and _usable(path, allow):
                    found.setdefault(path.name, VaeFile(path.name, path))
        return list(found.values())

    def resolve(self, choice: str | None, info: Any, field: str = "vae") -> VaeFile | None:
        """The file for ``choice`` on model ``info`` (None: the model's own VAE)."""
        choice = (choice or AUTOMATIC).strip()
        if choice.casefold() == NONE.casefold():
            return None
        files = self.list()
        if choice.casefold() == AUTOMATIC.casefold():
            return self._automatic(info, files)
        for vae in files:
            if choice in (vae.name, Path(vae.name).stem, str(vae.path)):
                return vae
        known = ", ".join(v.name for v in files) or f"none (put VAE files in models/{VAE_FOLDER})"
        raise RequestError(field, f"unknown VAE {choice!r}; use {AUTOMATIC!r}, {NONE!r} or one of: {known}")

    def _automatic(self, info: Any, files: list[VaeFile]) -> VaeFile | None:
        if info.format == "diffusers":
            return None  # a diffusers folder carries its VAE
        stem = info.path.name.removesuffix(info.path.suffix)
        for vae in files:  # beside the checkpoint first, then the VAE folder (A1111's order)
            if vae.path.parent == info.path.parent and vae.name.startswith(stem + BESIDE_MARK + "."):
                return vae
        for vae in files:
            if Path(vae.name).stem in (stem, stem + BESIDE_MARK):
                return vae
        return None

    def load(self, vae: VaeFile, model: Any, config_dir: Path) -> Any:
        """The VAE module for ``model`` (loaded once per model and file version)."""
        stat = vae.path.stat()
        key = (model.name, str(vae.path.resolve()), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._loaded.get(key)
            if cached is not None:
                return cached
        module = self._read(vae, model, config_dir)
        with self._lock:
            for old in [k for k in self._loaded if k[:2] == key[:2]]:
                del self._loaded[old]  # an older version of the same file
            self._loaded[key] = module
        return module

    def _read(self, vae: VaeFile, model: Any, config_dir: Path) -> Any:
        from diffusers import AutoencoderKL

        from core.models.header_cache import read_summary

        own = model.base_vae
        shapes = read_summary(vae.path, self.manager.settings.allow_pickle).shapes
        conv = next((s for k, s in shapes.items() if k.endswith("decoder.conv_in.weight")), None)
        if conv is None:
            raise ModelError(f"{vae.path}: not a VAE (no decoder.conv_in.weight)")
        wanted = int(own.config.latent_channels)
        if len(conv) != 4 or conv[1] != wanted:
            raise ModelError(
                f"{vae.path}: a VAE for {conv[1] if len(conv) > 1 else '?'}-channel latents; "
                f"model {model.name!r} uses {wanted}"
            )
        try:
            module = AutoencoderKL.from_single_file(
                str(vae.path), config=str(config_dir), subfolder="vae", local_files_only=True,
                torch_dtype=own.dtype,
            )  # fmt: skip
        except Exception as exc:
            raise ModelError(f"{vae.path}: cannot load as a VAE for {model.name!r}: {type(exc).__name__}: {exc}") from exc
        log.info("loaded VAE %s for %s", vae.name, model.name)
        return module.eval().requires_grad_(False)
