"""Call hook implementations one by one, so one extension's failure hurts no other.

pluggy's own ``pm.hook.x(...)`` stops at the first exception; here each implementation
runs in its own try/except, the failure is reported with the extension's name, and the
call goes on with the next implementation.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from core.plugins.crash_marker import CrashMarker
from core.plugins.hook_guard import ExtensionHookAbandoned, ExtensionHookTimeout, HookRunner
from plugin_api.errors import InvalidRequest

log = logging.getLogger("easel.hooks")

# A per-step hook slower than this is reported: it makes every generation slower.
SLOW_STEP_HOOK_S = 1.0
PER_STEP_HOOKS = frozenset({"on_step", "denoiser_kwargs", "before_denoiser", "after_denoiser", "after_cfg"})
# Hooks whose InvalidRequest refuses the request (passed on to the caller) instead of
# counting as the extension's failure.
REFUSING_HOOKS = frozenset({"validate_request", "transform_prompt", "before_sample"})


@dataclass
class HookFailure:
    extension: str
    hook: str
    error: str  # "ValueError: message"
    traceback: str = field(repr=False, default="")
    at: float = field(default_factory=time.time)


class HookDispatcher:
    """Runs hooks with isolation, load order and optional tracing."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        load_order: Callable[[], dict[str, int]],
        on_failure: Callable[[HookFailure], None],
        trace: bool = False,
        marker: CrashMarker | None = None,
        on_hang: Callable[[str, str, str | None], None] | None = None,
    ) -> None:
        self._pm = pm
        self._load_order = load_order
        self._on_failure = on_failure
        self._trace = trace
        # during a job (``job``): hook calls are written to the crash marker and run
        # under a time limit on a helper thread (core/plugins/hook_guard.py)
        self.marker = marker
        self._on_hang = on_hang
        self.runner = HookRunner()
        # extensions that hung or crashed too often: never called again in this process
        self.quarantined: set[str] = set()

    def job(self, job_id: str | None, cancel: Any, timeout_s: float) -> Any:
        """Context manager: hooks called on this thread inside it belong to job ``job_id``."""
        return self.runner.job(job_id, cancel, timeout_s)

    def implementations(self, hook: str) -> list[pluggy.HookImpl]:
        """Implementations in call order: tryfirst ones, then load order, then trylast."""
        order = self._load_order()
        impls = [
            i for i in getattr(self._pm.hook, hook).get_hookimpls() if i.plugin_name not in self.quarantined
        ]

        def key(impl: pluggy.HookImpl) -> tuple[int, int]:
            band = 0 if impl.tryfirst else 2 if impl.trylast else 1
            return band, order.get(impl.plugin_name, len(order))

        return sorted(impls, key=key)

    def call(self, hook: str, skip: Iterable[str] = (), **kwargs: Any) -> list[tuple[str, Any]]:
        """Call every implementation of ``hook``; return ``(extension, result)`` pairs of
        those that succeeded. Extensions named in ``skip`` are not called."""
        skipped = set(skip)
        results = []
        for impl in self.implementations(hook):
            name = impl.plugin_name
            if name in skipped:
                continue
            ok, result = self.call_one(hook, impl, kwargs)
            if ok:
                results.append((name, result))
        return results

    def call_one(self, hook: str, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> tuple[bool, Any]:
        name = impl.plugin_name
        started = time.perf_counter()
        args = tuple(kwargs[arg] for arg in impl.argnames)
        guard = self.runner.guard
        try:
            if guard is None:
                result = impl.function(*args)
            else:
                result = self._guarded(guard, name, hook, impl.function, args)
        except (ExtensionHookTimeout, ExtensionHookAbandoned):
            raise  # the job ends: the extension would not return
        except InvalidRequest:
            if hook not in REFUSING_HOOKS:
                return self._failed(name, hook)
            log.info("extension %r refused the request in %s", name, hook)
            raise
        except Exception:  # an extension's bug must not escape into the host
            return self._failed(name, hook)
        except SystemExit:  # sys.exit() in a hook is the extension's fault, not a shutdown
            return self._failed(name, hook)
        except KeyboardInterrupt:
            if guard is None:
                raise  # on the main thread this may be the user's Ctrl-C
            return self._failed(name, hook)  # raised on the helper thread: the extension's
        elapsed = time.perf_counter() - started
        if self._trace:
            log.info("hook %s -> %s (%.2f ms)", hook, name, elapsed * 1000)
        if hook in PER_STEP_HOOKS and elapsed > SLOW_STEP_HOOK_S:
            log.warning("extension %r is slow in %s: %.2f s per call", name, hook, elapsed)
        return True, result

    def _guarded(self, guard: Any, name: str, hook: str, fn: Callable[..., Any], args: tuple) -> Any:
        if self.marker is not None:
            self.marker.running(name, hook, guard.job_id)
        try:
            return self.runner.call(guard, name, hook, fn, args)
        except ExtensionHookTimeout:
            log.error("extension %r hung in %s (job %s): stopped waiting for it", name, hook, guard.job_id)
            self.quarantined.add(name)  # its thread is still in there: no more calls this run
            if self._on_hang is not None:
                self._on_hang(name, hook, guard.job_id)
            raise
        finally:
            if self.marker is not None:
                self.marker.idle()

    def report(self, name: str, hook: str, error: str) -> None:
        """Report ``name``'s failure in ``hook`` found by the caller (a result the host
        could not use), as a raised exception would be."""
        log.error("extension %r failed in %s: %s", name, hook, error)
        self._on_failure(HookFailure(extension=name, hook=hook, error=error))

    def _failed(self, name: str, hook: str) -> tuple[bool, None]:
        """Report the exception being handled as ``name``'s failure in ``hook``."""
        exc = sys.exc_info()[1]
        failure = HookFailure(
            extension=name,
            hook=hook,
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
        log.error("extension %r failed in %s: %s", name, hook, failure.error)
        self._on_failure(failure)
        return False, None
