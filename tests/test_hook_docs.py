"""Every hook is documented (what it returns, how often it is called), and the reference
cannot drift. That every hook is called by the real host: tests/api/test_every_hook_called.py."""

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
        "register_api_routes", "ui_tabs", "ui_form_sections", "register_settings", "register_extra_networks",
        "register_scripts", "validate_request",
        "transform_prompt",
        "model_loaded", "before_sample", "denoiser_kwargs", "on_step", "after_sample",
        "image_saved", "startup", "shutdown", "patch_denoiser", "prepare_noise", "before_denoiser",
        "after_denoiser", "after_cfg", "generation_finished",
        "generation_failed",
    }  # fmt: skip


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_docstring_that_says_how_results_combine(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 40, f"{name} needs a real docstring"
    assert re.search(r"[Rr]eturn|chain|merged|concatenated", doc), f"{name}: say what is returned"


def test_generated_reference_matches_the_hookspecs():
    text = (ROOT / "docs" / "extensions.md").read_text("utf-8")
    assert docs.render() in text, "docs/extensions.md is stale: run python -m plugin_api.docs"


# "Called once per request", "Called twice per queued request", "Called once per sampling
# step of every batch"...: when, and how often, in one sentence
CALL_FREQUENCY = re.compile(r"\bCalled (once|twice|\w+ times) (per|each|every|for)\b[^.]*\.", re.S)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_says_how_often_it_is_called(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert CALL_FREQUENCY.search(doc), f"{name}: its docstring needs a 'Called once per ...' sentence"


def test_porting_table_names_only_what_exists():
    """Every hook call and ``ctx.`` field the A1111 porting table names exists."""
    from plugin_api.types import GenerationContext

    fields = set(GenerationContext.__dataclass_fields__)
    for _, easel, _ in docs.PORTING_TABLE:
        for hook in re.findall(r"`(\w+)\(", easel):
            assert hook in HOOKS or hook in {"InvalidRequest"}, f"porting table: no hook {hook!r}"
        for field in re.findall(r"ctx\.(\w+)", easel):
            assert field in fields or hasattr(GenerationContext, field), f"porting table: no ctx.{field}"
