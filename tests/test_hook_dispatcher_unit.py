"""core.plugins.dispatch.HookDispatcher on a bare pluggy PluginManager: call order
(tryfirst, load order, unknown extensions, trylast), each failure reported with the
extension, hook, error and traceback, refusals passed on only from refusing hooks, the
trace log and the slow per-step hook warning."""

from __future__ import annotations

import logging
import time

import pluggy
import pytest

from core.plugins import dispatch
from core.plugins.dispatch import HookDispatcher
from plugin_api import PROJECT_NAME, hookimpl, hookspecs
from plugin_api.errors import InvalidRequest


def plugin(name: str, *, raises: BaseException | None = None, sleep: float = 0.0, **marks):
    class Extension:
        @hookimpl(**marks)
        def on_step(self, ctx, step):
            time.sleep(sleep)
            if raises is not None:
                raise raises
            return name

        @hookimpl(**marks)
        def before_sample(self, ctx):
            time.sleep(sleep)
            if raises is not None:
                raise raises
            return name

    return Extension()


def dispatcher(plugins: dict, load_order: list[str], trace: bool | None = None):
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, instance in plugins.items():
        pm.register(instance, name=name)
    failures = []
    order = {name: index for index, name in enumerate(load_order)}
    kwargs = {} if trace is None else {"trace": trace}
    return HookDispatcher(pm, lambda: order, failures.append, **kwargs), failures


def test_order_is_tryfirst_then_load_order_then_unknown_then_trylast():
    plugins = {
        "late": plugin("late", trylast=True),
        "b": plugin("b"),
        "stranger": plugin("stranger"),  # not in the load order: after the known ones
        "a": plugin("a"),
        "early": plugin("early", tryfirst=True),
    }
    hooks, _ = dispatcher(plugins, ["late", "a", "b", "early"])
    assert [i.plugin_name for i in hooks.implementations("on_step")] == [
        "early",
        "a",
        "b",
        "stranger",
        "late",
    ]
    assert hooks.call("on_step", ctx=None, step=None) == [
        (n, n) for n in ("early", "a", "b", "stranger", "late")
    ]
    assert hooks.call("on_step", skip=["a", "late"], ctx=None, step=None) == [
        ("early", "early"), ("b", "b"), ("stranger", "stranger"),
    ]  # fmt: skip


def test_a_failure_is_reported_with_extension_hook_error_and_traceback(caplog):
    hooks, failures = dispatcher(
        {"good": plugin("good"), "bad": plugin("bad", raises=ValueError("boom"))}, ["bad", "good"]
    )
    with caplog.at_level(logging.ERROR, logger="easel.hooks"):
        assert hooks.call("on_step", ctx=None, step=None) == [("good", "good")]
    (failure,) = failures
    assert (failure.extension, failure.hook, failure.error) == ("bad", "on_step", "ValueError: boom")
    assert failure.traceback.startswith("Traceback") and "ValueError: boom" in failure.traceback
    assert "extension 'bad' failed in on_step: ValueError: boom" in caplog.messages


def test_invalid_request_is_passed_on_only_from_refusing_hooks(caplog):
    refusal = InvalidRequest("prompt", "not allowed")
    hooks, failures = dispatcher({"judge": plugin("judge", raises=refusal)}, ["judge"])
    with caplog.at_level(logging.INFO, logger="easel.hooks"), pytest.raises(InvalidRequest):
        hooks.call("before_sample", ctx=None)
    assert "extension 'judge' refused the request in before_sample" in caplog.messages
    assert failures == []
    assert hooks.call("on_step", ctx=None, step=None) == []  # not a refusing hook: a failure
    assert [(f.extension, f.hook) for f in failures] == [("judge", "on_step")]


def test_trace_logs_each_call_in_milliseconds_only_when_asked(caplog):
    quiet, _ = dispatcher({"x": plugin("x")}, ["x"])
    with caplog.at_level(logging.INFO, logger="easel.hooks"):
        quiet.call("before_sample", ctx=None)
    assert not [m for m in caplog.messages if m.startswith("hook ")]
    traced, _ = dispatcher({"x": plugin("x", sleep=0.02)}, ["x"], trace=True)
    with caplog.at_level(logging.INFO, logger="easel.hooks"):
        traced.call("before_sample", ctx=None)
    (line,) = [m for m in caplog.messages if m.startswith("hook ")]
    assert line.startswith("hook before_sample -> x (") and line.endswith(" ms)")
    assert 15.0 <= float(line.split("(")[1].split()[0]) < 5000.0  # 20 ms of sleep, in ms


def test_a_slow_per_step_hook_is_warned_about(caplog, monkeypatch):
    monkeypatch.setattr(dispatch, "SLOW_STEP_HOOK_S", 0.05)
    hooks, _ = dispatcher({"slow": plugin("slow", sleep=0.1), "fast": plugin("fast")}, ["slow", "fast"])
    with caplog.at_level(logging.WARNING, logger="easel.hooks"):
        hooks.call("on_step", ctx=None, step=None)
        hooks.call("before_sample", ctx=None)  # not a per-step hook: never warned
    slow = [m for m in caplog.messages if "is slow" in m]
    assert len(slow) == 1 and slow[0].startswith("extension 'slow' is slow in on_step: 0.")
    assert slow[0].endswith(" s per call")


class FakeClock:
    """time.perf_counter for dispatch: each call ``step`` seconds after the last."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_trace_and_slow_warning_measure_exactly(caplog, monkeypatch):
    monkeypatch.setattr(dispatch.time, "perf_counter", FakeClock(0.25))
    monkeypatch.setattr(dispatch, "SLOW_STEP_HOOK_S", 0.25)
    hooks, _ = dispatcher({"x": plugin("x")}, ["x"], trace=True)
    with caplog.at_level(logging.INFO, logger="easel.hooks"):
        hooks.call("on_step", ctx=None, step=None)
    assert "hook on_step -> x (250.00 ms)" in caplog.messages
    assert not [m for m in caplog.messages if "is slow" in m]  # exactly the limit is not over it
