"""An extension that raises a plain exception in EVERY per-generation hook: the host goes
on, the picture is exactly the one made without the extension, and each failure is
recorded under the extension's name and the hook's.

The extension is written from the hookspecs themselves (every hook that takes ``ctx``, plus
``validate_request``), so a hook added later is covered without editing this file; the
hooks a plain txt2img generation must reach are listed below.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from core.config import BUNDLED_EXTENSION_NAMES
from core.engine import Engine
from plugin_api import GenerationRequest, hookspecs

NAME = "raises_everywhere"
# the hooks one saved txt2img image passes through (DESIGN.md, "The way a request travels")
GENERATION_HOOKS = {
    "validate_request",
    "transform_prompt",
    "model_loaded",
    "before_sample",
    "denoiser_kwargs",
    "on_step",
    "after_sample",
    "image_saved",
}


def generation_specs() -> dict[str, list[str]]:
    specs = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if not hasattr(function, "easel_spec"):  # pluggy's mark: only the hookspecs
            continue
        params = list(inspect.signature(function).parameters)
        if "ctx" in params or name == "validate_request":
            specs[name] = params
    return specs


def extension_source() -> str:
    lines = ["from plugin_api import hookimpl", ""]
    for name, params in generation_specs().items():
        lines += [
            "@hookimpl",
            f"def {name}({', '.join(params)}):",
            f"    raise RuntimeError('{NAME} broke in {name}')",
            "",
        ]
    return "\n".join(lines)


def request(**overrides) -> GenerationRequest:
    values = dict(prompt="a red circle", seed=9, steps=2, width=64, height=64, model="tiny-sd15")
    values.update(overrides)
    return GenerationRequest(**values)


@pytest.fixture(scope="module")
def broken_host(make_host, tmp_path_factory):
    folder = tmp_path_factory.mktemp("raising-extension")
    (folder / f"{NAME}.py").write_text(extension_source())
    host = make_host(
        extension_dirs=[folder], safe_mode=False, disabled_extensions=set(BUNDLED_EXTENSION_NAMES)
    )
    assert host.extensions.records[NAME].state == "loaded", host.extensions.records[NAME].error
    return host


def test_the_extension_implements_every_generation_hook():
    assert set(generation_specs()) >= GENERATION_HOOKS


def test_the_host_goes_on_and_names_the_extension_in_every_hook(broken_host, make_host):
    result = Engine(broken_host).generate(request())
    assert len(result.images) == 1 and len(result.paths) == 1

    # the reference: the same request on a host without the extension
    clean = make_host(disabled_extensions=set(BUNDLED_EXTENSION_NAMES))
    expected = Engine(clean).generate(request(save_images=False))
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(expected.images[0]))

    failures = broken_host.extensions.records[NAME].failures
    assert {f.hook for f in failures} >= GENERATION_HOOKS
    for failure in failures:
        assert failure.extension == NAME
        assert failure.error == f"RuntimeError: {NAME} broke in {failure.hook}"
    # per-step hooks fail once per generation, not once per step
    assert [f.hook for f in failures].count("on_step") == 1
    assert [f.hook for f in failures].count("denoiser_kwargs") == 1
    assert any(NAME in warning for warning in result.warnings)
