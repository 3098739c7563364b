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
        "register_api_routes", "ui_tabs", "register_settings", "register_extra_networks", "validate_request",
        "transform_prompt",
        "model_loaded", "before_sample", "denoiser_kwargs", "on_step", "after_sample",
        "image_saved", "startup", "shutdown", "patch_denoiser", "prepare_noise", "before_denoiser",
        "after_denoiser", "after_cfg",
    }  # fmt: skip


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_docstring_that_says_how_results_combine(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 40, f"{name} needs a real docstring"
    assert re.search(r"[Rr]eturn|chain|merged|concatenated", doc), f"{name}: say what is returned"


def test_generated_reference_matches_the_hookspecs():
    text = (ROOT / "docs" / "extensions.md").read_text("utf-8")
    assert docs.render() in text, "docs/extensions.md is stale: run python -m plugin_api.docs"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_is_implemented_by_some_test_extension(name):
    sources = [p.read_text("utf-8") for p in (ROOT / "tests").rglob("*.py") if p.name != Path(__file__).name]
    assert any(re.search(rf"def {name}\(", s) for s in sources), f"no test exercises {name}"
