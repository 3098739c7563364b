"""Upscaler model files: finding them, reading their weights safely, and handing the
state dict to spandrel, which detects the architecture (ESRGAN, Real-ESRGAN, SwinIR, DAT,
HAT, ...) and the scale from the weights.

The same rule as for checkpoints: ``.safetensors`` always; pickle files (``.pth``,
``.pt``, ``.ckpt``, ``.bin``) only when the user opted in (``--allow-pickle``), and then
with ``torch.load(weights_only=True)``. Every error names the file.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A1111's folder names under models/ (and the neighbours Forge adds)
# A1111's folders, then ComfyUI's upscale_models/ (plugin_api.model_folders: "ESRGAN")
UPSCALER_FOLDERS = ("ESRGAN", "RealESRGAN", "SwinIR", "DAT", "HAT", "ScuNET", "Upscalers", "upscale_models")
SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
PICKLE_OPT_IN = "pickle files can run code when loaded; start Easel with --allow-pickle to load them"


class UpscalerFileError(ValueError):
    """An upscaler file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class UpscalerFile:
    name: str  # what users pick: the file name without its suffix
    path: Path
    format: str  # "safetensors" | "pickle"


def find_upscaler_files(models_dirs: list[Path]) -> list[UpscalerFile]:
    """Every upscaler file in the A1111 folders of ``models_dirs`` (first name wins)."""
    found: dict[str, UpscalerFile] = {}
    for models_dir in models_dirs:
        for folder in UPSCALER_FOLDERS:
            directory = Path(models_dir) / folder
            if not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()):
                suffix = path.suffix.lower()
                if not path.is_file() or suffix not in SAFE_SUFFIXES + PICKLE_SUFFIXES:
                    continue
                kind = "safetensors" if suffix in SAFE_SUFFIXES else "pickle"
                found.setdefault(path.stem.casefold(), UpscalerFile(path.stem, path, kind))
    return list(found.values())


def _sniff(path: Path) -> str:
    """ "safetensors", "pickle" or "unknown", judged by the first bytes, not the name."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if len(head) >= 9:
        (length,) = struct.unpack("<Q", head[:8])
        if 2 <= length < 100_000_000 and head[8:9] == b"{":
            return "safetensors"
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch zip or raw pickle
        return "pickle"
    return "unknown"


def unusable_reason(path: Path, allow_pickle: bool) -> str | None:
    """Why ``path`` cannot be used, judged cheaply (first bytes, the safetensors header,
    not the weights), or None: listings offer only the files that can run."""
    try:
        kind = _sniff(path)
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror or exc})"
    if kind == "pickle":
        return None if allow_pickle else f"{path}: is a pickle file; {PICKLE_OPT_IN}"
    if kind != "safetensors":
        return f"{path}: not a safetensors or torch file (damaged or wrong type)"
    from safetensors import safe_open

    try:  # the header and the file's length must agree: a truncated file fails here
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            if not list(handle.keys()):
                return f"{path}: holds no weights"
    except Exception as exc:  # safetensors raises its own error types for damage
        return f"{path}: damaged safetensors file ({exc})"
    return None


def read_state_dict(path: Path, allow_pickle: bool) -> dict[str, Any]:
    """The tensors in ``path``; raises UpscalerFileError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UpscalerFileError(f"{path}: no such file")
    kind = _sniff(path)
    if kind == "safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types for damage
            raise UpscalerFileError(f"{path}: damaged safetensors file ({exc})") from None
    elif kind == "pickle":
        if not allow_pickle:
            raise UpscalerFileError(f"{path}: is a pickle file; {PICKLE_OPT_IN}")
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise UpscalerFileError(f"{path}: cannot load as a weights-only torch file ({exc})") from None
    else:
        raise UpscalerFileError(f"{path}: not a safetensors or torch file (damaged or wrong type)")
    if not isinstance(state, dict) or not state:
        raise UpscalerFileError(f"{path}: holds no weights")
    return state


@dataclass
class LoadedUpscaler:
    name: str
    path: Path
    model: Any  # spandrel.ImageModelDescriptor
    architecture: str
    scale: int
    tags: list[str]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "architecture": self.architecture,
            "scale": self.scale,
            "tags": list(self.tags),
        }


def load_upscaler(path: Path, allow_pickle: bool, name: str | None = None) -> LoadedUpscaler:
    """Read ``path`` and build its network with spandrel (on the CPU, eval mode)."""
    import spandrel

    path = Path(path)
    state = read_state_dict(path, allow_pickle)
    for key in ("params_ema", "params", "state_dict"):  # training wrappers of BasicSR & co.
        if isinstance(state.get(key), dict):
            state = state[key]
    try:
        descriptor = spandrel.ModelLoader(device="cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        sample = ", ".join(list(state)[:3])
        raise UpscalerFileError(
            f"{path}: unknown upscaler architecture; spandrel recognises none of its weights (keys like {sample})"
        ) from None
    except Exception as exc:  # detected, but the weights do not fit the network
        raise UpscalerFileError(f"{path}: weights do not fit the detected architecture ({exc})") from None
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise UpscalerFileError(
            f"{path}: is a {descriptor.architecture.name} model ({descriptor.purpose}), not an upscaler"
        )
    descriptor.eval()
    return LoadedUpscaler(
        name=name or path.stem,
        path=path,
        model=descriptor,
        architecture=descriptor.architecture.name,
        scale=int(descriptor.scale),
        tags=list(descriptor.tags),
    )


def safetensors_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (cheap: the header only)."""
    with Path(path).open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return dict(header.get("__metadata__", {}))
