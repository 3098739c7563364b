"""User settings registered by extensions (``register_settings``), stored as JSON in the
data folder and written atomically.

Settings are data, and any web page can try to set them (loopback is no trust boundary),
so every value is checked here, where the API, the WebUI and the CLI all pass: strings
carry no control characters, and a setting that names a file or folder
(``SettingSpec.path``) stays inside its folder. A value stored before these checks (or
edited into the file by hand) is checked again when read and replaced by the default.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.plugins.registries import Registry
from plugin_api.paths import UnsafePathError, confine, is_plain_name, refuse_control_characters
from plugin_api.types import SettingSpec

log = logging.getLogger("easel.settings")

PATH_KINDS = ("file", "folder")
MAX_VALUE_DEPTH = 8  # a setting without a typed default may hold a list or mapping


def _check_nested(value: Any, what: str) -> None:
    """No control characters in any string of ``value``, keys included, and no deep
    nesting (a setting whose default is None accepts any JSON). Iterative on purpose."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            refuse_control_characters(item, what)
        elif isinstance(item, dict | list):
            if depth >= MAX_VALUE_DEPTH:
                raise ValueError(f"{what} is nested deeper than {MAX_VALUE_DEPTH} levels")
            children = list(item.items()) if isinstance(item, dict) else [(None, v) for v in item]
            for child_key, child in children:
                if child_key is not None:
                    stack.append((str(child_key), depth + 1))
                stack.append((child, depth + 1))


class UserSettings:
    def __init__(
        self,
        path: Path,
        specs: Registry[SettingSpec],
        roots: dict[str, Path] | None = None,
        checks: dict[str, Callable[[Any], None]] | None = None,
    ) -> None:
        self.path = path
        self.specs = specs
        # by key: checks beyond type and choices (ranges, folders inside the outputs
        # folder...); each raises ValueError naming the setting
        self.checks = dict(checks or {})
        # where path settings may point: "data" (a folder per extension) and "models"
        self.roots = roots or {"data": path.parent}
        self._lock = threading.Lock()

    def _stored(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _spec(self, key: str) -> SettingSpec:
        spec = self.specs.get(key) if isinstance(key, str) else None
        if spec is None:
            raise KeyError(f"unknown setting {key!r}")
        return spec

    def root_for(self, spec: SettingSpec) -> Path:
        """The folder a path setting is confined to."""
        if spec.path not in PATH_KINDS:
            raise ValueError(f"setting {spec.key!r} does not name a file or folder")
        if spec.path_root in ("models", "outputs"):
            return Path(self.roots[spec.path_root])
        if spec.path_root != "data":
            raise ValueError(f"setting {spec.key!r}: unknown path_root {spec.path_root!r}")
        namespace = spec.key.partition(".")[0]
        if not is_plain_name(namespace):
            raise ValueError(f"setting {spec.key!r}: its namespace is not a plain folder name")
        return Path(self.roots["data"]) / namespace

    def check(self, spec: SettingSpec, value: Any) -> None:
        """``ValueError`` naming the key when ``value`` is not acceptable for ``spec``."""
        key = spec.key
        if spec.choices is not None and value not in spec.choices:
            raise ValueError(f"setting {key!r} must be one of {list(spec.choices)}, not {value!r}")
        if spec.default is not None and not isinstance(value, type(spec.default)):
            raise ValueError(f"setting {key!r} must be a {type(spec.default).__name__}, not {value!r}")
        _check_nested(value, f"setting {key!r}")
        extra = self.checks.get(key)
        if extra is not None:
            extra(value)
        if spec.path is not None and isinstance(value, str) and value.strip():
            confine(self.root_for(spec), value, f"setting {key!r}")

    def get(self, key: str) -> Any:
        spec = self._spec(key)
        return self._checked(spec, self._stored())

    def _checked(self, spec: SettingSpec, stored: dict[str, Any]) -> Any:
        if spec.key not in stored:
            return spec.default
        value = stored[spec.key]
        try:
            self.check(spec, value)
        except (UnsafePathError, ValueError) as exc:
            log.warning("ignoring the stored value of %s (using the default): %s", spec.key, exc)
            return spec.default
        return value

    def resolved_path(self, key: str) -> Path | None:
        """A path setting's value resolved inside its folder; None when it is empty. It is
        resolved again on every call, so a symlink swapped in later cannot lead outside."""
        spec = self._spec(key)
        value = self.get(key)
        if not isinstance(value, str) or not value.strip():
            return None
        return confine(self.root_for(spec), value, f"setting {key!r}")

    def all(self) -> dict[str, Any]:
        stored = self._stored()
        return {spec.key: self._checked(spec, stored) for spec in self.specs}

    def set(self, key: str, value: Any) -> None:
        spec = self._spec(key)
        self.check(spec, value)
        with self._lock:
            data = self._stored()
            data[spec.key] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), "utf-8")
            tmp.replace(self.path)
