"""LoRA files on disk: listing (name, family, rank, A1111 hash) and reading.

Only ``.safetensors`` files are read. Pickle files (``.pt``/``.ckpt``/``.bin``/``.pth``)
can run code when unpickled, so they are listed as refused, never opened. Listing reads
only the safetensors header; the weights are read when a LoRA is first used.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugin_api.files import SafetensorsHeader, SafetensorsHeaderError, read_safetensors_header
from plugin_api.scanning import LORA_SUFFIXES, scan_model_files

LORA_FOLDER = "Lora"
PICKLE_SUFFIXES = (".pt", ".ckpt", ".bin", ".pth")
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
    family: str  # sd15 | sdxl | zimage | flux | qwen_image | unknown
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


def read_header(path: Path) -> SafetensorsHeader:
    """The tensor table, header length and metadata of a safetensors file; the whole file
    is checked against the header (a truncated download is caught here)."""
    try:
        return read_safetensors_header(path)
    except SafetensorsHeaderError as exc:
        raise LoraFileError(str(exc)) from exc


def addnet_hash(path: Path, header_length: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(8 + header_length)
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


_ZIMAGE_MARKERS = ("noise_refiner", "context_refiner", "cap_embedder")
# FLUX.2's own layers (diffusers' names): its fused single-block input, gated MLP and shared
# modulations. A LoRA on FLUX.1-named layers only (double_blocks.*.img_attn.qkv) reads as
# "flux" and may still go onto a FLUX.2 model: the layer shapes decide (adapters._check_keys)
_FLUX2_MARKERS = ("to_qkv_mlp_proj", "stream_modulation", ".linear_in.", ".linear_out.")
# FLUX.1's blocks in every LoRA layout (kohya's lora_unet_double_blocks_..., BFL's and
# ComfyUI's double_blocks., diffusers' single_transformer_blocks. and ff_context)
_FLUX_MARKERS = (
    "double_blocks",
    "single_blocks",
    "single_transformer_blocks",
    "ff_context",
    "context_embedder",
)
# Qwen-Image's block layers in every LoRA layout (checked after FLUX.1's: BFL's double
# blocks use img_mod/img_mlp too)
_QWEN_IMAGE_MARKERS = ("img_mod", "txt_mod", "img_mlp", "txt_mlp")
_SDXL_MARKERS = ("text_encoder_2", "lora_te2_", "input_blocks_", "input_blocks.", "lora_te1_")
_CROSS_ATTN_KEY = re.compile(r"attn2[._]to_k.*(lora_down|lora_A|lora\.down|lora_linear_layer\.down)")


# what kohya (ss_base_model_version), the SAI model spec (modelspec.architecture) and Easel's
# own trainer (easel_family) write into a LoRA file's metadata
_METADATA_FAMILIES = (
    (
        "easel_family",
        {"sd15": "sd15", "sdxl": "sdxl", "zimage": "zimage", "flux": "flux", "qwen_image": "qwen_image"},
    ),
    ("ss_base_model_version", {"sdxl": "sdxl", "sd_v1": "sd15", "flux1": "flux"}),
    (
        "modelspec.architecture",
        {"stable-diffusion-xl": "sdxl", "stable-diffusion-v1": "sd15", "z-image": "zimage", "flux-1": "flux"},
    ),
)


def family_from_metadata(metadata: dict[str, str]) -> str | None:
    """The family a LoRA file says it is for, if its metadata says so."""
    for field_name, prefixes in _METADATA_FAMILIES:
        value = metadata.get(field_name, "").lower()
        for prefix, family in prefixes.items():
            if value.startswith(prefix):
                return family
    return None


def guess_family(shapes: dict[str, list[int]], metadata: dict[str, str] | None = None) -> str:
    """sd15 / sdxl / zimage / flux / flux2 / qwen_image / unknown: from the file's metadata if it names the base model,
    else from key names, then the cross-attention width (768/1024 -> SD1.x/2.x, 2048 ->
    SDXL) for a denoiser-only file."""
    declared = family_from_metadata(metadata or {})
    if declared is not None:
        return declared
    keys = list(shapes)
    if any(m in k for k in keys for m in _ZIMAGE_MARKERS):
        return "zimage"
    if any(m in k for k in keys for m in _FLUX2_MARKERS):
        return "flux2"
    if any(m in k for k in keys for m in _FLUX_MARKERS):
        return "flux"
    if any(m in k for k in keys for m in _QWEN_IMAGE_MARKERS):
        return "qwen_image"
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
            # the scanner /sdapi/v1/loras uses too: regular files only, links followed
            # once (a loop in Lora/ used to break every LoRA), a bounded walk
            for item in scan_model_files(root, LORA_SUFFIXES):
                name = Path(item.relative).with_suffix("").as_posix()
                if name not in found:  # the first folder (the user's) wins
                    found[name] = self._describe(item.path, name)
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
                header = read_header(path)
                shapes = header.shapes()
                info.family, info.rank = guess_family(shapes, header.metadata), guess_rank(shapes)
                info.hash = addnet_hash(path, header.header_length)[:SHORT_HASH_LENGTH]
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
