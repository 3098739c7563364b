"""Hooks called during a job run under a time limit, and a cancel reaches past them.

A thread cannot be killed in Python. So during a job the worker thread does not run a
hook itself: it hands the call to a helper thread (one, reused for every call, so an
extension sees the same thread throughout) and waits for it, checking the job's cancel
token while it waits. If the hook does not return within the time limit, or the job is
cancelled and the hook still has not returned after a short grace, the worker stops
waiting: the helper thread is abandoned (it runs on until the hook returns, and whatever
it returns is dropped), a new helper takes the next call, and the job ends (failed,
naming the extension, or interrupted). The worker, and the lock on the models it holds,
are free for the next job.

What this does not promise: the abandoned thread still runs the extension's code in this
process and may still touch what it was given; the extension is therefore counted as
misbehaving and, at the crash limit, quarantined. Only a separate process can be stopped
for certain (``easel worker``: its supervisor restarts it).
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from core.results import GenerationInterrupted

# How long a cancelled job waits for a hook that is running anyway: most return within
# this (a LoRA being applied, a short upscale), so cancel rarely leaves a thread behind.
CANCEL_GRACE_S = 2.0
_POLL_S = 0.05


class ExtensionHookTimeout(RuntimeError):
    """A hook ran past the time limit; the job fails with this message."""

    def __init__(self, extension: str, hook: str, limit_s: float) -> None:
        super().__init__(
            f"extension {extension!r} did not return from {hook} within {limit_s:g} s "
            "(EASEL_EXTENSION_HOOK_TIMEOUT_S); the job was stopped and the extension reported"
        )
        self.extension, self.hook, self.limit_s = extension, hook, limit_s


class ExtensionHookAbandoned(GenerationInterrupted):
    """The job was cancelled while a hook would not return: it ends interrupted."""


@dataclass
class JobGuard:
    """Set on the worker thread for the length of one job."""

    job_id: str | None
    cancel: Any  # core.results.CancelToken (duck-typed: ``.interrupted``)
    timeout_s: float


class _Call:
    __slots__ = ("args", "done", "error", "fn", "grad", "inference", "result")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        # torch's grad and inference modes are per thread: the hook gets the worker's
        torch = sys.modules.get("torch")
        self.grad = torch.is_grad_enabled() if torch else None
        self.inference = torch.is_inference_mode_enabled() if torch else None


class _HelperThread(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="easel-hook", daemon=True)
        self.calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()

    def run(self) -> None:
        while (call := self.calls.get()) is not None:
            try:
                torch = sys.modules.get("torch")
                if torch is not None and call.grad is not None:
                    with torch.inference_mode(bool(call.inference)), torch.set_grad_enabled(call.grad):
                        call.result = call.fn(*call.args)
                else:
                    call.result = call.fn(*call.args)
            except BaseException as exc:  # handed back to the worker thread as it was
                call.error = exc
            finally:
                call.done.set()


class HookRunner:
    """Runs hook calls on a helper thread with a time limit (one runner per dispatcher)."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._helper: _HelperThread | None = None
        self._lock = threading.Lock()

    @contextmanager
    def job(self, job_id: str | None, cancel: Any, timeout_s: float) -> Iterator[None]:
        """Hooks called on this thread inside the block are guarded."""
        previous = getattr(self._local, "guard", None)
        self._local.guard = JobGuard(job_id, cancel, timeout_s)
        try:
            yield
        finally:
            self._local.guard = previous

    @property
    def guard(self) -> JobGuard | None:
        return getattr(self._local, "guard", None)

    def _helper_thread(self) -> _HelperThread:
        with self._lock:
            if self._helper is None or not self._helper.is_alive():
                self._helper = _HelperThread()
                self._helper.start()
            return self._helper

    def _abandon(self, helper: _HelperThread) -> None:
        with self._lock:
            if self._helper is helper:
                self._helper = None
            helper.calls.put(None)  # it ends after the stuck call, if that ever returns

    def call(self, guard: JobGuard, extension: str, hook: str, fn: Callable[..., Any], args: tuple) -> Any:
        """``fn(*args)`` on the helper thread; raises what it raised, or
        ExtensionHookTimeout / ExtensionHookAbandoned when the worker stops waiting."""
        helper = self._helper_thread()
        call = _Call(fn, args)
        helper.calls.put(call)
        started = time.monotonic()
        cancelled_at: float | None = None
        while not call.done.wait(_POLL_S):
            now = time.monotonic()
            if guard.timeout_s > 0 and now - started >= guard.timeout_s:
                self._abandon(helper)
                raise ExtensionHookTimeout(extension, hook, guard.timeout_s)
            if cancelled_at is None and getattr(guard.cancel, "interrupted", False):
                cancelled_at = now
            if cancelled_at is not None and now - cancelled_at >= CANCEL_GRACE_S:
                self._abandon(helper)
                raise ExtensionHookAbandoned(
                    f"cancelled while extension {extension!r} was still running {hook}; "
                    "its thread was left to finish on its own"
                )
        if call.error is not None:
            raise call.error
        return call.result
