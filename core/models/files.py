"""Reading model files safely: formats judged by content, safetensors headers, hashes.

Listing a model reads only its safetensors header (8-byte little-endian length + JSON),
never the weights. Pickle files (``.ckpt``/``.pt``/``.bin``/``.pth``, or anything whose
bytes say pickle or zip) can run code when unpickled, so they are refused unless the
user opts in, and then read only with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import math
import struct
import threading
from pathlib import Path
from typing import Any

from core.errors import ModelError
from plugin_api import files as plugin_files
from plugin_api.scanning import scan_model_files

CHECKPOINT_SUFFIXES = (".safetensors", ".gguf", ".ckpt", ".pt", ".pth", ".bin")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
MAX_HEADER_BYTES = plugin_files.MAX_HEADER_BYTES
PICKLE_OPT_IN = (
    "pickle checkpoints can run arbitrary code when loaded, so they are refused by default; "
    "to load it anyway (with torch.load(weights_only=True)), start Easel with --allow-pickle "
    "or set EASEL_ALLOW_PICKLE=1, or better, convert it to .safetensors"
)


def sniff_format(path: Path) -> str:
    """'safetensors', 'gguf', 'pickle' (a zip-based torch file or a raw pickle) or 'unknown'."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc}") from exc
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return "pickle"
    if len(head) >= 9:
        (length,) = struct.unpack("<Q", head[:8])
        if 0 < length <= MAX_HEADER_BYTES and head[8:9] == b"{":
            return "safetensors"
    return "unknown"


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The tensor table of a safetensors file: ``{key: {"dtype", "shape", "data_offsets"}}``
    (``__metadata__`` removed). Checks that the file is complete, so a truncated
    download is reported here and never half-loaded (``plugin_api.files`` does the work)."""
    try:
        return plugin_files.read_safetensors_header(path).tensors
    except plugin_files.SafetensorsHeaderError as exc:
        raise ModelError(str(exc)) from exc


def tensor_shapes(path: Path, allow_pickle: bool) -> tuple[str, dict[str, list[int]]]:
    """``(format, {key: shape})`` for a checkpoint file, judged by its content."""
    kind = sniff_format(path)
    if kind == "safetensors":
        header = read_safetensors_header(path)
        return "safetensors", {k: v["shape"] for k, v in header.items()}
    if kind == "gguf":
        return "gguf", {name: info[0] for name, info in read_gguf_tensors(path).items()}
    if kind == "pickle":
        if not allow_pickle:
            hint = "" if path.suffix in PICKLE_SUFFIXES else f" (despite its {path.suffix} name)"
            raise ModelError(f"{path}: is a pickle checkpoint{hint}; {PICKLE_OPT_IN}")
        state = load_pickle_state_dict(path)
        return "pickle", {k: list(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    raise ModelError(f"{path}: unknown file format (neither safetensors nor a torch checkpoint)")


def read_gguf_tensors(path: Path) -> dict[str, tuple[list[int], str]]:
    """``{name: (shape, type)}`` of a GGUF file's tensors, shapes in torch's order (GGUF
    stores them fastest dimension first), types as GGML names ("Q8_0", "F16"...)."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        return {
            t.name: ([int(d) for d in reversed(t.shape.tolist())], t.tensor_type.name) for t in reader.tensors
        }
    except Exception as exc:  # a truncated or malformed file
        raise ModelError(f"{path}: unreadable GGUF file: {type(exc).__name__}: {exc}") from exc


# safetensors dtypes as users name precisions
PRECISION_NAMES = {"F32": "fp32", "F16": "fp16", "BF16": "bf16", "F8_E4M3": "fp8", "F8_E5M2": "fp8"}


def weight_precision(path: Path) -> str:
    """The precision most of a checkpoint's weights are stored in ("bf16", "fp8", "Q8_0"...),
    by parameter count; "" when the file does not say (pickles)."""
    counts: dict[str, int] = {}
    kind = sniff_format(path)
    if kind == "safetensors":
        for info in read_safetensors_header(path).values():
            name = PRECISION_NAMES.get(info["dtype"], info["dtype"].lower())
            counts[name] = counts.get(name, 0) + math.prod(info["shape"])
    elif kind == "gguf":
        tensors = read_gguf_tensors(path).values()
        # a quantised file keeps its norms and biases (some of its small layers) in F32/F16:
        # it is named by its quantisation
        quantized = [(shape, qtype) for shape, qtype in tensors if qtype not in PRECISION_NAMES]
        for shape, qtype in quantized or tensors:
            name = PRECISION_NAMES.get(qtype, qtype)
            counts[name] = counts.get(name, 0) + math.prod(shape)
    return max(counts, key=lambda k: counts[k]) if counts else ""


def pickle_weights_in_folder(folder: Path) -> list[Path]:
    """Pickle weight files a diffusers folder would load: a component folder whose weights
    are ``.bin``/``.pt``/``.ckpt``/``.pth`` (or pickles by content) and that has no
    ``.safetensors`` beside them (with one, diffusers reads only the safetensors, as Easel
    asks it to with ``use_safetensors=True``)."""
    by_folder: dict[Path, list[Path]] = {}
    for item in scan_model_files(folder, CHECKPOINT_SUFFIXES, max_depth=4):
        by_folder.setdefault(item.path.parent, []).append(item.path)
    pickles = []
    for files in by_folder.values():
        if any(f.suffix.lower() == ".safetensors" and sniff_format(f) == "safetensors" for f in files):
            continue
        pickles += [f for f in files if f.suffix.lower() in PICKLE_SUFFIXES or sniff_format(f) == "pickle"]
    return sorted(pickles)


def refuse_pickle_folder(folder: Path, allow_pickle: bool) -> None:
    """ModelError naming the first pickle weight file in ``folder`` unless allowed."""
    if allow_pickle:
        return
    pickles = pickle_weights_in_folder(folder)
    if pickles:
        more = f" (and {len(pickles) - 1} more)" if len(pickles) > 1 else ""
        raise ModelError(f"{pickles[0]}{more}: pickle weights in a diffusers folder; {PICKLE_OPT_IN}")


def load_pickle_state_dict(path: Path) -> dict[str, Any]:
    """Only for users who opted in: tensors only, no arbitrary objects."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses anything but tensors and containers
        raise ModelError(f"{path}: cannot load as a weights-only torch checkpoint: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path}: the checkpoint holds no state dict")
    return state


# --- hashes ---------------------------------------------------------------------------


class HashCache:
    """A1111's short hash (first 10 hex of the file's sha256), cached on disk by path,
    size and modification time, so a 6 GB checkpoint is hashed once."""

    def __init__(self, cache_file: Path | None) -> None:
        self.cache_file = cache_file
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, Any]] = {}
        if cache_file is not None:
            try:
                self._data = json.loads(cache_file.read_text("utf-8"))
            except (OSError, ValueError):
                self._data = {}

    def short_hash(self, path: Path) -> str:
        stat = path.stat()
        key = str(path.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns]
        with self._lock:
            cached = self._data.get(key)
            if cached and cached.get("stamp") == stamp:
                return cached["sha256"][:10]
        digest = folder_digest(path) if path.is_dir() else file_sha256(path)
        with self._lock:
            self._data[key] = {"stamp": stamp, "sha256": digest}
            self._save()
        return digest[:10]

    def _save(self) -> None:
        if self.cache_file is None:
            return
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_name(f".{self.cache_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._data, indent=1), "utf-8")
            os.replace(tmp, self.cache_file)
        except OSError:
            pass  # a cache that cannot be written only costs time


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_digest(path: Path) -> str:
    """A cheap, stable hash for a diffusers folder: every config file's bytes plus every
    weight file's name and size (weights are not read: folders can be tens of GB)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path).as_posix()
        digest.update(relative.encode())
        if file.suffix in {".json", ".txt"} and file.stat().st_size < 4 * 1024 * 1024:
            digest.update(file.read_bytes())
        else:
            digest.update(str(file.stat().st_size).encode())
    return digest.hexdigest()
