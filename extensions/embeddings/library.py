"""Textual-inversion embedding files: where they are, what layout, which model they fit.

Layouts, as A1111's ``create_embedding_from_data`` reads them:

- A1111 / original textual inversion: ``{"string_to_param": {"*": tensor (n, width)}, "step",
  "sd_checkpoint", "sd_checkpoint_name", ...}`` (a ``.pt`` pickle);
- SDXL (A1111 and kohya): ``{"clip_l": (n, 768), "clip_g": (n, 1280)}``;
- one tensor under any key (kohya's SD1.x ``{"emb_params": (n, width)}`` safetensors, a
  diffusers concept ``{"<token>": (width,)}``).

``.safetensors`` is the main path. ``.pt``/``.bin`` are pickles, which can run code when
loaded: refused unless the host allows pickle (``--allow-pickle``), and then read with
``torch.load(weights_only=True)``. The name used in prompts is the file's stem, as in
A1111; the hash is A1111's: sha256 of the whole file, first 12 hex digits.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from plugin_api.scanning import scan_model_files

log = logging.getLogger("easel.embeddings")

SAFE_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pt", ".bin")
MAX_FILE_BYTES = 64 * 1024 * 1024  # real embeddings are kilobytes; a checkpoint here is a mistake
PICKLE_REFUSED = (
    "pickle embedding files can run arbitrary code when loaded, so they are refused; convert it to "
    ".safetensors or start Easel with --allow-pickle"
)


class EmbeddingFileError(ValueError):
    """A file that is not a textual-inversion embedding Easel can use; names the file."""


@dataclass
class Embedding:
    name: str  # the file stem: the word to write in a prompt
    path: Path
    vectors: dict[str, torch.Tensor]  # "clip_l" (SD1.x/2.x: the only one) and, for SDXL, "clip_g"
    hash: str  # A1111's short hash
    step: int | None = None
    sd_checkpoint: str | None = None
    sd_checkpoint_name: str | None = None

    @property
    def count(self) -> int:
        return int(next(iter(self.vectors.values())).shape[0])

    @property
    def shape(self) -> int:
        """A1111's ``shape``: the vector width (SDXL: CLIP-G's plus CLIP-L's)."""
        return sum(int(v.shape[-1]) for v in self.vectors.values())

    @property
    def family(self) -> str:
        if "clip_g" in self.vectors:
            return "sdxl"
        return {768: "sd15", 1024: "sd2"}.get(self.shape, "unknown")

    def a1111(self) -> dict[str, Any]:
        """The entry of ``/sdapi/v1/embeddings`` (A1111's ``convert_embedding``)."""
        return {
            "step": self.step,
            "sd_checkpoint": self.sd_checkpoint,
            "sd_checkpoint_name": self.sd_checkpoint_name,
            "shape": self.shape,
            "vectors": self.count,
        }


@dataclass
class Listing:
    embeddings: dict[str, Embedding] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # path -> why it was not read


def sha256_short(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def vectors_from_data(data: Any, where: str) -> dict[str, torch.Tensor]:
    """The embedding's vectors, ``{"clip_l": (n, w)}`` or ``{"clip_l", "clip_g"}``, from any
    of the layouts A1111 reads."""
    if not isinstance(data, dict):
        raise EmbeddingFileError(f"{where}: not a textual-inversion embedding (no tensor table)")
    if "string_to_param" in data:
        params = data["string_to_param"]
        params = getattr(params, "_parameters", params)
        if not isinstance(params, dict) or len(params) != 1:
            raise EmbeddingFileError(f"{where}: 'string_to_param' must hold exactly one tensor")
        tensors = {"clip_l": next(iter(params.values()))}
    elif "clip_g" in data and "clip_l" in data:
        tensors = {"clip_l": data["clip_l"], "clip_g": data["clip_g"]}
    else:
        found = [v for v in data.values() if isinstance(v, torch.Tensor)]
        if len(data) != 1 or len(found) != 1:
            raise EmbeddingFileError(
                f"{where}: neither an A1111 embedding ('string_to_param'), an SDXL one ('clip_l' and "
                f"'clip_g') nor a single tensor; keys: {sorted(map(str, data))[:8]}"
            )
        tensors = {"clip_l": found[0]}
    vectors = {}
    for key, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise EmbeddingFileError(f"{where}: {key} is not a floating-point tensor")
        tensor = tensor.detach().to("cpu", torch.float32)
        if tensor.ndim == 1:
            tensor = tensor.unsqueeze(0)  # a diffusers concept: one vector
        if tensor.ndim != 2 or tensor.shape[0] < 1 or not torch.isfinite(tensor).all():
            raise EmbeddingFileError(
                f"{where}: {key} has shape {tuple(tensor.shape)}; expected (vectors, width)"
            )
        vectors[key] = tensor
    if len(vectors) == 2 and vectors["clip_l"].shape[0] != vectors["clip_g"].shape[0]:
        raise EmbeddingFileError(f"{where}: clip_l and clip_g have different numbers of vectors")
    return vectors


def read_embedding(path: Path, allow_pickle: bool) -> Embedding:
    where = str(path)
    suffix = path.suffix.lower()
    if path.stat().st_size > MAX_FILE_BYTES:
        raise EmbeddingFileError(f"{where}: {path.stat().st_size} bytes is too large for an embedding")
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise EmbeddingFileError(f"{where}: {PICKLE_REFUSED}")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise EmbeddingFileError(f"{where}: cannot be read: {type(exc).__name__}: {exc}") from None
    else:
        try:
            data = load_file(str(path), device="cpu")
        except Exception as exc:
            raise EmbeddingFileError(f"{where}: not a readable safetensors file: {exc}") from None
    vectors = vectors_from_data(data, where)
    return Embedding(
        name=path.stem,
        path=path,
        vectors=vectors,
        hash=sha256_short(path),
        step=data.get("step") if isinstance(data.get("step"), int) else None,
        sd_checkpoint=_text(data.get("sd_checkpoint")),
        sd_checkpoint_name=_text(data.get("sd_checkpoint_name")),
    )


class EmbeddingLibrary:
    """Every embedding in the folders, re-read when a file changes (cached by size and
    modification time, so a request reads nothing new when nothing changed)."""

    def __init__(self, folders: list[Path] | None = None, allow_pickle: bool = False) -> None:
        self.folders = list(folders or [])
        self.allow_pickle = allow_pickle
        self._cache: dict[Path, tuple[tuple[int, int, bool], Embedding | str]] = {}
        self._lock = threading.Lock()
        self.file_reads = 0

    def scan(self) -> Listing:
        listing = Listing()
        seen: set[Path] = set()
        for folder in self.folders:
            if not folder.is_dir():
                continue
            for found in scan_model_files(folder, SAFE_SUFFIXES + PICKLE_SUFFIXES):
                path = found.path
                seen.add(path)
                item = self._read(path)
                if isinstance(item, str):
                    listing.problems[str(path)] = item
                elif item.name in listing.embeddings:
                    first = listing.embeddings[item.name].path
                    listing.problems[str(path)] = f"{path}: the name {item.name!r} is taken by {first}"
                else:
                    listing.embeddings[item.name] = item
        with self._lock:
            for gone in set(self._cache) - seen:
                del self._cache[gone]
        return listing

    def _read(self, path: Path) -> Embedding | str:
        try:
            stat = path.stat()
        except OSError as exc:
            return f"{path}: {exc}"
        key = (stat.st_size, stat.st_mtime_ns, self.allow_pickle)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        self.file_reads += 1
        try:
            item: Embedding | str = read_embedding(path, self.allow_pickle)
        except EmbeddingFileError as exc:
            item = str(exc)
        except OSError as exc:
            item = f"{path}: {exc}"
        if isinstance(item, str):
            log.warning("embedding not usable: %s", item)
        with self._lock:
            self._cache[path] = (key, item)
        return item
