"""Every hookspec is called by the real host: an extension generated from the hookspecs
(one implementation per hook, taking every argument, recording each call) is loaded by the
production loader into a real server, which is then driven the way users drive it: start,
the API (submit, a generation of two batches, a refused one), the WebUI's tab collection,
stop. A hookspec the host never calls fails here, whoever adds it.

The counts check the "Called ..." sentences of the hooks whose frequency users rely on.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from core.config import BUNDLED_EXTENSION_NAMES
from plugin_api import docs, hookspecs
from tests.api.conftest import TINY_MODEL, serving

# a server of its own (a model load and extension folders): ~20 s on 2 cores
pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).resolve().parents[1] / "fixture_extensions"
SMALL = {"steps": 2, "width": 64, "height": 64, "model": TINY_MODEL}


def recorder_source() -> str:
    """An extension implementing every hookspec with all of its arguments; each call is
    recorded as (hook, job id or None, ctx.dry_run or None)."""
    lines = ["from plugin_api import hookimpl", "", "CALLS = []", ""]
    for name in docs.hook_names():
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        lines += [
            "@hookimpl",
            f"def {name}({', '.join(params)}):",
            "    ctx = locals().get('ctx')",
            f"    CALLS.append(({name!r}, getattr(ctx, 'job_id', None), getattr(ctx, 'dry_run', None), "
            f"{{k: v for k, v in locals().items() if k != 'ctx'}}))",
            "",
        ]
    return "\n".join(lines)


def test_every_hookspec_is_called_through_the_real_host(tmp_path, tiny_models_dir):
    extensions = tmp_path / "extensions"
    extensions.mkdir()
    (extensions / "hook_recorder.py").write_text(recorder_source())
    # the blocklist fixture refuses in before_sample once its setting names the model
    (extensions / "blocklist").symlink_to(FIXTURES / "blocklist", target_is_directory=True)
    with serving(
        tmp_path / "data",
        tiny_models_dir,
        safe_mode=False,
        extension_dirs=[extensions],
        disabled_extensions=set(BUNDLED_EXTENSION_NAMES),
    ) as running:
        assert running.host.extensions.records["hook_recorder"].state == "loaded"
        calls = sys.modules["easel_user_extensions.hook_recorder"].CALLS
        running.host.ui_tabs()  # what the WebUI does when it is built
        for tab in ("txt2img", "img2img"):  # ... and once per generation form
            running.host.ui_form_sections(tab)
        with running.client() as client:
            ok = client.post("/api/v1/jobs", json={"prompt": "a cat", "batch_count": 2, **SMALL})
            assert ok.status_code == 202, ok.text
            done = running.service.wait(ok.json()["id"], timeout=120)
            assert done.status == "done", done.error
            running.host.set_setting("blocklist.models", TINY_MODEL)
            refused = client.post("/api/v1/jobs", json={"prompt": "a dog", **SMALL})
            failed = running.service.wait(refused.json()["id"], timeout=120)
            assert failed.status == "failed" and "blocklist.models" in failed.error
        snapshot = list(calls)  # before the host stops: shutdown comes after
    called = {call[0] for call in calls}
    missing = sorted(set(docs.hook_names()) - called)
    assert not missing, f"hookspecs the host never called: {missing}"

    per_job = Counter((name, job) for name, job, _, _ in snapshot)
    job = done.id
    # once per request, whatever the batch count
    assert per_job[("before_sample", job)] == 1
    assert per_job[("generation_finished", job)] == 1
    assert per_job[("generation_failed", job)] == 0
    assert per_job[("generation_failed", failed.id)] == 1
    assert per_job[("generation_finished", failed.id)] == 0
    # once per batch / image / step of every batch
    assert per_job[("after_sample", job)] == 2
    assert per_job[("image_saved", job)] == 2
    assert per_job[("on_step", job)] == per_job[("denoiser_kwargs", job)] == 2 * 2
    # transform_prompt: a dry run at submit (no job yet), the real one in the job
    dry = [c for c in snapshot if c[0] == "transform_prompt" and c[2] is True]
    real = [c for c in snapshot if c[0] == "transform_prompt" and c[1] == job]
    assert len(real) == 1 and real[0][2] is False and len(dry) == 2  # one per submitted request
    validate = [c[3] for c in snapshot if c[0] == "validate_request"]
    assert validate and all(dict(args["settings"]).get("blocklist.models") is not None for args in validate)
    ui_tabs = [c[3] for c in snapshot if c[0] == "ui_tabs"]
    assert ui_tabs[0]["host"] is running.host  # API 1.8: tab builders reach settings without a global
    sections = [c[3] for c in snapshot if c[0] == "ui_form_sections"]
    assert [(s["host"], s["tab"]) for s in sections] == [(running.host, "txt2img"), (running.host, "img2img")]
    for name in ("register_samplers", "register_settings", "startup", "register_api_routes", "ui_tabs"):
        assert sum(1 for c in snapshot if c[0] == name) == 1, name
    assert sum(1 for c in calls if c[0] == "shutdown") == 1


def test_the_recorder_names_every_argument():
    source = recorder_source()
    for name in docs.hook_names():
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"def {name}({params}):" in textwrap.dedent(source)
