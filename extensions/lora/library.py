"""LoRA files on disk: listing (name, family, rank, A1111 hash) and reading.

Only ``.safetensors`` files are read. Pickle files (``.pt``/``.ckpt``/``.bin``/``.pth``)
can run code when unpickled, so they are listed as refused, never opened. Listing reads
only the safetensors header; the weights are read when a LoRA is first used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LORA_FOLDER = "Lora"
PICKLE_SUFFIXES = (".pt", ".ckpt", ".bin", ".pth")
MAX_HEADER_BYTES = 100 * 1024 * 1024
PICKLE_REFUSED = (
    "pickle LoRA files can run arbitrary code when loaded, so they are refused; convert it to .safetensors"
)
# A1111 (extensions-builtin/Lora) shows the kohya/AddNet hash of a safetensors LoRA:
# sha256 of the tensor data after the header, first 12 hex digits.
SHORT_HASH_LENGTH = 12


class LoraFileError(Exception):
    """A LoRA file that cannot be used; the message names the file."""


@dataclass
class LoraInfo:
    name: str  # path under the Lora folder without suffix, as used in <lora:name>
    path: Path
    family: str  # sd15 | sdxl | zimage | unknown
    rank: int | None
    hash: str  # A1111 short hash (12 hex)
    size: int
    mtime: float
    problem: str = ""  # why it cannot be used (a pickle file, a corrupt header)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "family": self.family,
            "rank": self.rank,
            "hash": self.hash,
            "size": self.size,
            "problem": self.problem,
        }


def read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The tensor table of a safetensors file and the header length; checks that every
    tensor's data lies inside the file (a truncated download is caught here)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw_length = f.read(8)
            if len(raw_length) < 8:
                raise LoraFileError(f"{path}: not a safetensors file (only {size} bytes)")
            (length,) = struct.unpack("<Q", raw_length)
            if length == 0 or length > MAX_HEADER_BYTES or length > size - 8:
                raise LoraFileError(
                    f"{path}: not a valid safetensors file (header length {length} does not fit "
                    f"in a {size}-byte file); it may be truncated or another format"
                )
            raw = f.read(length)
    except OSError as exc:
        raise LoraFileError(f"{path}: cannot read: {exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
        header.pop("__metadata__", None)
        data_size = size - 8 - length
        for key, entry in header.items():
            start, stop = entry["data_offsets"]
            if not 0 <= start <= stop <= data_size:
                raise ValueError(f"tensor {key!r} lies outside the file (truncated?)")
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise LoraFileError(f"{path}: corrupt safetensors file ({exc})") from exc
    return header, length


def addnet_hash(path: Path, header_length: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(8 + header_length)
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


_ZIMAGE_MARKERS = ("noise_refiner", "context_refiner", "cap_embedder")
_SDXL_MARKERS = ("text_encoder_2", "lora_te2_", "input_blocks_", "input_blocks.", "lora_te1_")
_CROSS_ATTN_KEY = re.compile(r"attn2[._]to_k.*(lora_down|lora_A|lora\.down|lora_linear_layer\.down)")


def guess_family(shapes: dict[str, list[int]]) -> str:
    """sd15 / sdxl / zimage / unknown, from key names first, then the cross-attention
    width (768/1024 -> SD1.x/2.x, 2048 -> SDXL) for a denoiser-only file."""
    keys = list(shapes)
    if any(m in k for k in keys for m in _ZIMAGE_MARKERS):
        return "zimage"
    if any(m in k for k in keys for m in _SDXL_MARKERS):
        return "sdxl"
    widths = {shapes[k][-1] for k in keys if _CROSS_ATTN_KEY.search(k) and len(shapes[k]) >= 2}
    if 2048 in widths:
        return "sdxl"
    unet_like = any(
        k.startswith(("lora_unet_", "unet.", "down_blocks", "mid_block", "up_blocks")) for k in keys
    )
    te_like = any(k.startswith(("lora_te_", "text_encoder.")) for k in keys)
    if unet_like or te_like:
        return "sd15"
    return "unknown"


def guess_rank(shapes: dict[str, list[int]]) -> int | None:
    ranks = [
        shape[0]
        for key, shape in shapes.items()
        if len(shape) >= 2 and re.search(r"(lora_down|lora_A|lora\.down|down)\.weight$", key)
    ]
    return max(ranks) if ranks else None


class LoraLibrary:
    """The LoRA files under some folders; listing is cached per file (size, mtime)."""

    def __init__(self, folders: list[Path] | None = None) -> None:
        self.folders = list(folders or [])
        self._cache: dict[Path, LoraInfo] = {}
        self._lock = threading.Lock()
        self.file_reads = 0  # full weight reads (tests assert adapters are read once)

    def scan(self) -> list[LoraInfo]:
        found: dict[str, LoraInfo] = {}
        for root in self.folders:
            if not root.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
                dirnames.sort()
                for filename in sorted(filenames):
                    path = Path(dirpath) / filename
                    suffix = path.suffix.lower()
                    if suffix != ".safetensors" and suffix not in PICKLE_SUFFIXES:
                        continue
                    name = path.relative_to(root).with_suffix("").as_posix()
                    if name not in found:  # the first folder (the user's) wins
                        found[name] = self._describe(path, name)
        return sorted(found.values(), key=lambda i: i.name.lower())

    def _describe(self, path: Path, name: str) -> LoraInfo:
        stat = path.stat()
        with self._lock:
            cached = self._cache.get(path)
        if (
            cached is not None
            and (cached.size, cached.mtime) == (stat.st_size, stat.st_mtime)
            and cached.name == name
        ):
            return cached
        info = LoraInfo(name, path, "unknown", None, "", stat.st_size, stat.st_mtime)
        if path.suffix.lower() in PICKLE_SUFFIXES:
            info.problem = f"{path}: {PICKLE_REFUSED}"
        else:
            try:
                header, length = read_header(path)
                shapes = {k: list(v.get("shape", [])) for k, v in header.items()}
                info.family, info.rank = guess_family(shapes), guess_rank(shapes)
                info.hash = addnet_hash(path, length)[:SHORT_HASH_LENGTH]
            except (LoraFileError, OSError) as exc:
                info.problem = str(exc)
        with self._lock:
            self._cache[path] = info
        return info

    def find(self, name: str) -> LoraInfo:
        """The LoRA called ``name`` (also by file name without folder, or by hash)."""
        infos = self.scan()
        wanted = name.strip()
        for match in (
            lambda i: i.name == wanted,
            lambda i: i.name.lower() == wanted.lower(),
            lambda i: i.path.stem.lower() == wanted.lower(),
            lambda i: bool(i.hash) and i.hash == wanted.lower(),
        ):
            hits = [i for i in infos if match(i)]
            if hits:
                return hits[0]
        known = ", ".join(i.name for i in infos) or f"none (put .safetensors files in models/{LORA_FOLDER})"
        raise LoraFileError(f"unknown LoRA {name!r}; available: {known}")

    def read(self, info: LoraInfo) -> dict[str, Any]:
        """The tensors of a LoRA file (safetensors only)."""
        if info.problem:
            raise LoraFileError(info.problem)
        from safetensors.torch import load_file

        self.file_reads += 1
        try:
            return load_file(str(info.path))
        except Exception as exc:  # safetensors raises its own error type for bad files
            raise LoraFileError(f"{info.path}: cannot read LoRA weights: {exc}") from exc
