"""The extension manager: load every extension in isolation, keep its record, and
dispatch hooks to it. Built-in features are registered through it too."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

import plugin_api
from core.config import BUNDLED_EXTENSION_NAMES, BUNDLED_EXTENSIONS_DIR, Settings
from core.plugins.discovery import (
    Candidate,
    find_entry_points,
    find_in_folder,
    order_by_constraints,
)
from core.plugins.dispatch import HookDispatcher, HookFailure
from plugin_api import hookspecs

log = logging.getLogger("easel.extensions")

# Modules of the core that implement hooks themselves (the default samplers...), loaded
# first and listed like any extension, as datasette does with its default plugins.
BUILTIN_PLUGINS: tuple[str, ...] = ("core.samplers", "core.upscalers_builtin", "core.builtin_settings")
USER_EXTENSIONS_PACKAGE = "easel_user_extensions"
MAX_FAILURES_KEPT = 20


@dataclass
class ExtensionRecord:
    """What `easel extensions list` shows for one extension."""

    name: str
    source: str  # builtin | bundled | user | entry-point
    path: str | None
    version: str = "0.0.0"
    description: str = ""
    enabled: bool = True
    state: str = "pending"  # loaded | disabled | failed | refused
    load_time_s: float = 0.0
    error: str | None = None
    failures: list[HookFailure] = field(default_factory=list)
    module: types.ModuleType | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "path": self.path,
            "version": self.version,
            "description": self.description,
            "enabled": self.enabled,
            "state": self.state,
            "load_time_s": round(self.load_time_s, 4),
            "error": self.error,
            "hook_failures": [{"hook": f.hook, "error": f.error, "at": f.at} for f in self.failures],
        }


class ExtensionManager:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, ExtensionRecord] = {}
        self._order: dict[str, int] = {}
        self.hooks = HookDispatcher(
            self.pm, lambda: self._order, self._record_failure, trace=settings.trace_hooks
        )

    # --- persistent enable/disable ---------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.settings.state_dir / "extensions.json"

    def persistently_disabled(self) -> set[str]:
        try:
            return set(json.loads(self.state_file.read_text("utf-8")).get("disabled", []))
        except (OSError, ValueError, AttributeError):
            return set()

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable an extension from the next start on (files are kept)."""
        known = {c.name for c in self.discover()}
        if name not in known:
            raise KeyError(f"no extension named {name!r}; known: {', '.join(sorted(known))}")
        disabled = self.persistently_disabled()
        disabled = disabled - {name} if enabled else disabled | {name}
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"disabled": sorted(disabled)}, indent=2), "utf-8")
        tmp.replace(self.state_file)

    # --- discovery and loading ----------------------------------------------------

    def discover(self) -> list[Candidate]:
        found = []
        for candidate in find_in_folder(BUNDLED_EXTENSIONS_DIR, "bundled"):
            if candidate.name not in BUNDLED_EXTENSION_NAMES:
                candidate.source = "user"  # installed by a user into extensions/
            if candidate.source == "bundled" or not self.settings.safe_mode:
                found.append(candidate)
        if not self.settings.safe_mode:
            for folder in self.settings.extension_dirs:
                found += find_in_folder(Path(folder), "user")
            found += find_entry_points()
        return order_by_constraints(found)

    def load_all(self) -> None:
        """Import and register every extension; never raises for an extension's fault."""
        for module_name in BUILTIN_PLUGINS:
            self._register_builtin(module_name)
        disabled = self.persistently_disabled() | self.settings.disabled_extensions
        for candidate in self.discover():
            self._load(candidate, enabled=candidate.name not in disabled)

    def _register_builtin(self, module_name: str) -> None:
        name = module_name.rsplit(".", 1)[-1]
        record = ExtensionRecord(name=f"builtin.{name}", source="builtin", path=module_name)
        started = time.perf_counter()
        module = importlib.import_module(module_name)  # a broken core should fail loudly
        self._register(record, module)
        record.load_time_s = time.perf_counter() - started

    def _load(self, candidate: Candidate, enabled: bool) -> None:
        record = ExtensionRecord(
            name=candidate.name,
            source=candidate.source,
            path=str(candidate.path) if candidate.path else str(candidate.entry_point),
            version=candidate.manifest.version,
            description=candidate.manifest.description,
            enabled=enabled,
        )
        if candidate.name in self.records:
            other = self.records[candidate.name]
            record.state, record.error = "failed", f"name already used by {other.path}"
            self.records[f"{candidate.name}@{record.path}"] = record
            log.error("extension %r at %s: %s", candidate.name, record.path, record.error)
            return
        self.records[candidate.name] = record
        if candidate.error:
            record.state, record.error = "failed", candidate.error
            log.error("extension %r: %s", candidate.name, candidate.error)
            return
        if not candidate.manifest.supports_api(plugin_api.API_VERSION):
            record.state = "refused"
            record.error = (
                f"needs host API {candidate.manifest.api}, this host provides "
                f"{plugin_api.API_VERSION}; update Easel or the extension"
            )
            log.error("extension %r refused: %s", candidate.name, record.error)
            return
        if not enabled:
            record.state = "disabled"
            return
        started = time.perf_counter()
        try:
            module = self._import(candidate)
        except BaseException as exc:  # SystemExit in an extension must not stop the host
            if isinstance(exc, KeyboardInterrupt):
                raise
            record.state = "failed"
            record.error = f"import failed: {type(exc).__name__}: {exc}"
            log.error("extension %r %s\n%s", candidate.name, record.error, traceback.format_exc())
            return
        finally:
            record.load_time_s = time.perf_counter() - started
        self._register(record, module)

    def _import(self, candidate: Candidate) -> Any:
        if candidate.entry_point is not None:
            return candidate.entry_point.load()
        path = candidate.path
        assert path is not None
        if candidate.source == "bundled":
            return importlib.import_module(f"extensions.{candidate.name}")
        # User extensions live under a synthetic package, so that a folder's relative
        # imports work and their names cannot clash with installed modules.
        if USER_EXTENSIONS_PACKAGE not in sys.modules:
            package = types.ModuleType(USER_EXTENSIONS_PACKAGE)
            package.__path__ = []
            sys.modules[USER_EXTENSIONS_PACKAGE] = package
        module_name = f"{USER_EXTENSIONS_PACKAGE}.{candidate.name}"
        if path.is_dir():
            spec = importlib.util.spec_from_file_location(
                module_name, path / "__init__.py", submodule_search_locations=[str(path)]
            )
        else:
            spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module

    def _register(self, record: ExtensionRecord, module: Any) -> None:
        """Register with pluggy; a misspelt hook or a wrong argument name is a load error."""
        self.records[record.name] = record
        try:
            self.pm.register(module, name=record.name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            record.state, record.error = "failed", f"invalid hook: {exc}"
            log.error("extension %r: %s", record.name, record.error)
            return
        record.module = module
        record.state = "loaded"
        self._order[record.name] = len(self._order)

    # --- failures ----------------------------------------------------------------------

    def _record_failure(self, failure: HookFailure) -> None:
        record = self.records.get(failure.extension)
        if record is not None:
            record.failures = [*record.failures[-(MAX_FAILURES_KEPT - 1) :], failure]

    def loaded(self) -> list[ExtensionRecord]:
        return [r for r in self.records.values() if r.state == "loaded"]

    def listing(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.records.values()]
