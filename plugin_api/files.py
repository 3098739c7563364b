"""Reading safetensors headers safely, for the core and for extensions.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor table
plus an optional ``__metadata__`` string map) and the tensor data. Listing a model or a
LoRA reads only the header, never the weights; the header is checked against the file size
so a truncated download is reported here and never half-loaded.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit


class SafetensorsHeaderError(ValueError):
    """A file that is not a complete, valid safetensors file; the message names the file."""


@dataclass
class SafetensorsHeader:
    tensors: dict[str, dict[str, Any]]  # key -> {"dtype", "shape" (ints), "data_offsets"}
    header_length: int  # bytes of JSON after the 8-byte length; the data starts at 8 + this
    metadata: dict[str, str] = field(default_factory=dict)  # the ``__metadata__`` map

    def shapes(self) -> dict[str, list[int]]:
        return {key: entry["shape"] for key, entry in self.tensors.items()}


def read_safetensors_header(path: str | Path) -> SafetensorsHeader:
    """The tensor table, header length and metadata of a safetensors file.

    Raises ``SafetensorsHeaderError`` (naming the file) for a file that cannot be read, is
    not safetensors, has a corrupt header, or is shorter or longer than its header says."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw_length = f.read(8)
            if len(raw_length) < 8:
                raise SafetensorsHeaderError(f"{path}: not a safetensors file (only {size} bytes)")
            (length,) = struct.unpack("<Q", raw_length)
            if length == 0 or length > MAX_HEADER_BYTES or length > size - 8:
                raise SafetensorsHeaderError(
                    f"{path}: not a valid safetensors file (header length {length} does not fit "
                    f"in a {size}-byte file); it may be truncated or another format"
                )
            raw = f.read(length)
    except OSError as exc:
        raise SafetensorsHeaderError(f"{path}: cannot read: {exc}") from exc
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SafetensorsHeaderError(f"{path}: corrupt safetensors header ({exc})") from exc
    if not isinstance(header, dict):
        raise SafetensorsHeaderError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict):
        metadata = {}
    data_size = size - 8 - length
    end = 0
    for key, entry in header.items():
        try:
            start, stop = (int(v) for v in entry["data_offsets"])
            entry["shape"] = [int(d) for d in entry["shape"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise SafetensorsHeaderError(f"{path}: corrupt safetensors header entry {key!r}") from exc
        if not 0 <= start <= stop:
            raise SafetensorsHeaderError(f"{path}: corrupt safetensors header entry {key!r}")
        end = max(end, stop)
    if end != data_size:
        raise SafetensorsHeaderError(
            f"{path}: truncated or corrupt safetensors file: the header describes {end} bytes "
            f"of tensors but the file holds {data_size}"
        )
    return SafetensorsHeader(header, length, {str(k): str(v) for k, v in metadata.items()})
