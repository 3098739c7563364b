"""What a model listing needs from a checkpoint file, read once and cached by path, size and
modification time.

A listing needs a file's format, its tensor names and shapes (family detection) and the
statistics of a few small tensors (``core.models.prediction.PROBE_KEYS``). A safetensors
file gives the shapes from its header and the probes by reading just those tensors; a
pickle file (only with ``--allow-pickle``) has to be unpickled whole, which costs the
file's size in memory and seconds per file. So the summary is kept in memory and, for
pickle files, on disk in the data folder: a listing (every ``/sdapi/v1/sd-models``, every
WebUI refresh) unpickles nothing it has seen before, even after a restart. A file that
changes (size or mtime) is read again.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelError
from core.models import files
from core.models.prediction import PROBE_KEYS

CACHE_VERSION = 1


@dataclass
class CheckpointSummary:
    format: str  # safetensors | pickle
    shapes: dict[str, list[int]]
    probes: dict[str, float] = field(default_factory=dict)  # key -> population std


def _std(tensor: Any) -> float:
    return float(tensor.float().std(unbiased=False)) if tensor.numel() > 1 else 0.0


def read_summary(path: Path, allow_pickle: bool) -> CheckpointSummary:
    """The summary straight from the file (no cache)."""
    kind = files.sniff_format(path)
    if kind == "pickle" and allow_pickle:
        state = files.load_pickle_state_dict(path)
        shapes = {k: list(v.shape) for k, v in state.items() if hasattr(v, "shape")}
        probes = {k: _std(state[k]) for k in PROBE_KEYS if k in state and hasattr(state[k], "float")}
        return CheckpointSummary("pickle", shapes, probes)
    fmt, shapes = files.tensor_shapes(path, allow_pickle)  # raises the clear errors
    probes: dict[str, float] = {}
    present = [k for k in PROBE_KEYS if k in shapes]
    if present:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                probes = {k: _std(f.get_tensor(k)) for k in present}
        except Exception as exc:  # a header that parses but data that does not
            raise ModelError(f"{path}: cannot read tensor {present[0]}: {exc}") from exc
    return CheckpointSummary(fmt, shapes, probes)


class SummaryCache:
    """Summaries by (resolved path, size, mtime); pickle ones also in ``cache_file``."""

    def __init__(self, cache_file: Path | None) -> None:
        self.cache_file = cache_file
        self._lock = threading.Lock()
        self._memory: dict[str, tuple[list[int], CheckpointSummary]] = {}
        self._disk: dict[str, Any] = {}
        if cache_file is not None:
            try:
                data = json.loads(cache_file.read_text("utf-8"))
                if data.get("version") == CACHE_VERSION and isinstance(data.get("files"), dict):
                    self._disk = data["files"]
            except (OSError, ValueError, AttributeError):
                self._disk = {}
        self.reads = 0  # files actually read (tests: a second listing reads none)

    def get(self, path: Path, allow_pickle: bool) -> CheckpointSummary:
        stat = path.stat()
        key = str(path.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns]
        with self._lock:
            cached = self._memory.get(key)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            stored = self._disk.get(key)
            if allow_pickle and stored is not None and stored.get("stamp") == stamp:
                summary = CheckpointSummary("pickle", stored["shapes"], stored.get("probes", {}))
                self._memory[key] = (stamp, summary)
                return summary
        # errors are not cached: a refused pickle is refused again (the opt-in may change)
        summary = read_summary(path, allow_pickle)
        with self._lock:
            self.reads += 1
            self._memory[key] = (stamp, summary)
            if summary.format == "pickle":
                self._disk[key] = {"stamp": stamp, "shapes": summary.shapes, "probes": summary.probes}
                self._save()
        return summary

    def _save(self) -> None:
        if self.cache_file is None:
            return
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_file.with_name(f".{self.cache_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "files": self._disk}), "utf-8")
            os.replace(tmp, self.cache_file)
        except OSError:
            pass  # a cache that cannot be written only costs time
