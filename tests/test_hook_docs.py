"""Every hook is documented, the reference cannot drift, and every hook is exercised."""

import inspect
import re
from pathlib import Path

import pytest

from plugin_api import docs, hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = docs.hook_names()


def test_all_design_hooks_exist():
    assert set(HOOKS) == {
        "register_samplers", "register_upscalers", "register_preprocessors", "register_interrogators",
        "register_api_routes", "ui_tabs", "register_settings", "validate_request", "transform_prompt",
        "model_loaded", "before_sample", "denoiser_kwargs", "on_step", "after_sample",
        "image_saved", "startup", "shutdown",
    }  # fmt: skip


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_docstring_that_says_how_results_combine(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 40, f"{name} needs a real docstring"
    assert re.search(r"[Rr]eturn|chain|merged|concatenated", doc), f"{name}: say what is returned"


def test_generated_reference_matches_the_hookspecs():
    text = (ROOT / "docs" / "extensions.md").read_text("utf-8")
    assert docs.render() in text, "docs/extensions.md is stale: run python -m plugin_api.docs"


def recorder_source() -> str:
    """An extension implementing every hook of the hookspecs, each recording its call."""
    lines = ["from plugin_api import hookimpl", "", "CALLS = []", ""]
    for name in HOOKS:
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)
        lines += ["@hookimpl", f"def {name}({', '.join(params)}):", f"    CALLS.append({name!r})", ""]
    return "\n".join(lines)


def test_the_real_host_calls_every_hook(make_host, tmp_path):
    """Not "some test defines it": an extension implementing every hook is loaded by the
    real host, which starts, builds the API and the WebUI tabs, generates one saved image
    and stops; every hook must have been called."""
    import gradio as gr

    from core.api.app import create_app
    from core.config import BUNDLED_EXTENSION_NAMES
    from core.engine import Engine
    from core.jobs import JobService, SqliteJobQueue
    from plugin_api import GenerationRequest

    folder = tmp_path / "extensions"
    folder.mkdir()
    (folder / "records_every_hook.py").write_text(recorder_source())
    host = make_host(
        extension_dirs=[folder], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    record = host.extensions.records["records_every_hook"]
    assert record.state == "loaded", record.error
    engine = Engine(host)
    service = JobService.for_engine(engine, SqliteJobQueue(tmp_path / "queue.db"), settings=host.settings)
    create_app(host, service, engine=engine)
    with gr.Blocks():
        host.ui_tabs()
    engine.generate(GenerationRequest(prompt="p", seed=1, steps=1, width=64, height=64, model="tiny-sd15"))
    host.stop()
    called = set(record.module.CALLS)
    assert called == set(HOOKS), f"never called: {sorted(set(HOOKS) - called)}"
