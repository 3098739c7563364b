"""The extension manager: load every extension in isolation, keep its record, and
dispatch hooks to it. Built-in features are registered through it too."""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

import plugin_api
from core.config import BUNDLED_EXTENSION_NAMES, BUNDLED_EXTENSIONS_DIR, Settings
from core.plugins.crash_marker import CrashMarker, collect_crashes
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
    state: str = "pending"  # loaded | disabled | failed | refused | quarantined
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
        # what extension code runs now, so the next start can name one that killed us
        self.marker = CrashMarker(settings.state_dir / "crash-markers")
        self.hooks = HookDispatcher(
            self.pm,
            lambda: self._order,
            self._record_failure,
            trace=settings.trace_hooks,
            marker=self.marker,
            on_hang=lambda name, hook, job_id: self.strike(name, hook, job_id, "hung in"),
        )
        # extensions that were running when an earlier process died (load_all finds them)
        self.crashes: list[dict[str, Any]] = []
        self._user_interrupt = False

    # --- persistent enable/disable ---------------------------------------------------

    @property
    def state_file(self) -> Path:
        return self.settings.state_dir / "extensions.json"

    def _state(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_file.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_state(self, data: dict[str, Any]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_name(f".{self.state_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True), "utf-8")
        tmp.replace(self.state_file)

    def persistently_disabled(self) -> set[str]:
        disabled = self._state().get("disabled", [])
        return {n for n in disabled if isinstance(n, str)} if isinstance(disabled, list) else set()

    def quarantined(self) -> dict[str, str]:
        """Extensions not loaded because they killed or hung the host too often: name -> why."""
        found = self._state().get("quarantined", {})
        return {k: str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def set_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable an extension from the next start on (files are kept).
        Enabling also lifts a quarantine and forgets the extension's crashes."""
        known = {c.name for c in self.discover()}
        if name not in known:
            raise KeyError(f"no extension named {name!r}; known: {', '.join(sorted(known))}")
        data = self._state()
        disabled = self.persistently_disabled()
        data["disabled"] = sorted(disabled - {name} if enabled else disabled | {name})
        if enabled:
            for key in ("quarantined", "strikes"):
                if isinstance(data.get(key), dict):
                    data[key].pop(name, None)
        self._save_state(data)

    def strike(self, name: str, hook: str, job_id: str | None, what: str) -> bool:
        """Count one crash or hang of ``name`` (``what``: "killed the host in", "hung in");
        at the limit (``EASEL_EXTENSION_CRASH_LIMIT``; one for a crash at import, which
        happens at every start) it is quarantined. Returns True if it is quarantined now."""
        data = self._state()
        strikes = data.setdefault("strikes", {})
        if not isinstance(strikes, dict):
            strikes = data["strikes"] = {}
        mine = [s for s in strikes.get(name, []) if isinstance(s, dict)]
        mine.append({"hook": hook, "job_id": job_id, "what": what, "at": time.time()})
        strikes[name] = mine[-MAX_FAILURES_KEPT:]
        limit = 1 if hook == "import" else max(1, int(self.settings.extension_crash_limit))
        job = f" (job {job_id})" if job_id else ""
        log.error("extension %r %s %s%s: %d of %d before quarantine", name, what, hook, job, len(mine), limit)
        quarantine = len(mine) >= limit
        if quarantine:
            reason = (
                f"quarantined: {what} {hook}{job} ({len(mine)} time(s)); "
                f"'easel extensions enable {name}' loads it again"
            )
            quarantined = data.setdefault("quarantined", {})
            if isinstance(quarantined, dict):
                quarantined[name] = reason
            self.hooks.quarantined.add(name)
            record = self.records.get(name)
            if record is not None:
                record.state, record.error = "quarantined", reason
        self._save_state(data)
        return quarantine

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
        # first, name whoever killed an earlier process, so a quarantine holds from now on
        self.crashes = collect_crashes(self.marker.folder)
        for crash in self.crashes:
            what = "killed the process at" if crash["hook"] == "import" else "killed the process in"
            self.strike(crash["extension"], crash["hook"], crash.get("job_id"), what)
        for module_name in BUILTIN_PLUGINS:
            self._register_builtin(module_name)
        disabled = self.persistently_disabled() | self.settings.disabled_extensions
        quarantined = self.quarantined()
        with self._watch_ctrl_c():
            for candidate in self.discover():
                quarantine = quarantined.get(candidate.name)
                self._load(candidate, enabled=candidate.name not in disabled, quarantine=quarantine)

    @contextmanager
    def _watch_ctrl_c(self) -> Iterator[None]:
        """Tell the user's Ctrl-C (a SIGINT: stop loading) from an extension that raises
        KeyboardInterrupt at import (its fault: reported, not fatal)."""
        self._user_interrupt = False
        if threading.current_thread() is not threading.main_thread():
            yield  # no signal reaches this thread: any KeyboardInterrupt is an extension's
            return

        def on_sigint(signum: int, frame: Any) -> None:
            self._user_interrupt = True
            raise KeyboardInterrupt

        try:
            previous = signal.signal(signal.SIGINT, on_sigint)
        except ValueError:
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def close(self) -> None:
        """A clean stop: no extension code runs any more."""
        self.marker.close()

    def _register_builtin(self, module_name: str) -> None:
        name = module_name.rsplit(".", 1)[-1]
        record = ExtensionRecord(name=f"builtin.{name}", source="builtin", path=module_name)
        started = time.perf_counter()
        module = importlib.import_module(module_name)  # a broken core should fail loudly
        self._register(record, module)
        record.load_time_s = time.perf_counter() - started

    def _load(self, candidate: Candidate, enabled: bool, quarantine: str | None = None) -> None:
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
        if quarantine is not None:
            record.state, record.error = "quarantined", quarantine
            log.error("extension %r not loaded: %s", candidate.name, quarantine)
            return
        started = time.perf_counter()
        self.marker.running(candidate.name, "import")
        try:
            module = self._import(candidate)
        except BaseException as exc:  # SystemExit in an extension must not stop the host
            if isinstance(exc, KeyboardInterrupt) and self._user_interrupt:
                raise
            record.state = "failed"
            record.error = f"import failed: {type(exc).__name__}: {exc}"
            log.error("extension %r %s\n%s", candidate.name, record.error, traceback.format_exc())
            return
        finally:
            self.marker.idle()
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
