"""User settings registered by extensions (``register_settings``), stored as JSON in the
data folder and written atomically."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from core.plugins.registries import Registry
from plugin_api.types import SettingSpec


class UserSettings:
    def __init__(self, path: Path, specs: Registry[SettingSpec]) -> None:
        self.path = path
        self.specs = specs
        self._lock = threading.Lock()

    def _stored(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Any:
        spec = self.specs.get(key)
        if spec is None:
            raise KeyError(f"unknown setting {key!r}")
        return self._stored().get(spec.key, spec.default)

    def all(self) -> dict[str, Any]:
        stored = self._stored()
        return {spec.key: stored.get(spec.key, spec.default) for spec in self.specs}

    def set(self, key: str, value: Any) -> None:
        spec = self.specs.get(key)
        if spec is None:
            raise KeyError(f"unknown setting {key!r}")
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"setting {key!r} must be one of {list(spec.choices)}, not {value!r}")
        if spec.default is not None and not isinstance(value, type(spec.default)):
            raise ValueError(f"setting {key!r} must be a {type(spec.default).__name__}, not {value!r}")
        with self._lock:
            data = self._stored()
            data[spec.key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), "utf-8")
            tmp.replace(self.path)
