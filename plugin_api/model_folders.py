"""Where each kind of model file lives in a user's models folder, A1111's way and ComfyUI's.

``--models-dir`` may be an A1111/Forge ``models/`` folder (``Stable-diffusion/``, ``Lora/``,
``ControlNet/``, ``ESRGAN/``, ``VAE/``), a ComfyUI one (``checkpoints/``, ``loras/``,
``controlnet/``, ``upscale_models/``, ``vae/``...) or both at once. The core and the
extensions read every kind from all of its names with this one table.
"""

from __future__ import annotations

from pathlib import Path

# kind (A1111's folder name) -> every folder name holding it: A1111/Forge's first, then ComfyUI's
FOLDER_NAMES: dict[str, tuple[str, ...]] = {
    "Stable-diffusion": ("Stable-diffusion", "checkpoints", "diffusion_models", "unet"),
    "Lora": ("Lora", "loras"),
    "ControlNet": ("ControlNet", "controlnet"),
    "ESRGAN": ("ESRGAN", "upscale_models"),
    "VAE": ("VAE", "vae"),
    "text_encoders": ("text_encoders", "clip"),
    "VAE-approx": ("VAE-approx", "vae_approx"),  # tiny preview decoders (TAESD...)
}


def folder_names(kind: str) -> tuple[str, ...]:
    """Every folder name for ``kind`` ("Lora" -> ("Lora", "loras")); unknown kinds: itself."""
    return FOLDER_NAMES.get(kind, (kind,))


def model_folders(models_dir: str | Path, kind: str) -> list[Path]:
    """The existing folders of ``kind`` in ``models_dir``, each once (``VAE/`` and ``vae/``
    are one folder on a case-insensitive disk); A1111's name first."""
    found: list[Path] = []
    for name in folder_names(kind):
        folder = Path(models_dir) / name
        if folder.is_dir() and folder.resolve() not in [f.resolve() for f in found]:
            found.append(folder)
    return found
