"""plugin_api.testing: an extension author's pytest helper runs the real engine."""

from __future__ import annotations

import types

from plugin_api import GenerationRequest, hookimpl
from plugin_api.testing import run_generation


def test_run_generation_with_an_extension_module(tmp_path, tiny_sd15_dir):
    module = types.ModuleType("shout")
    seen = []

    @hookimpl
    def transform_prompt(request, ctx):
        request.prompt = request.prompt.upper()

    @hookimpl
    def on_step(ctx, step):
        seen.append(step.step)

    module.transform_prompt = transform_prompt
    module.on_step = on_step
    result = run_generation(
        [module], GenerationRequest(prompt="a cat", seed=1), tmp_path, model_dir=tiny_sd15_dir
    )
    assert result.prompt == "A CAT" and result.original_prompt == "a cat"
    assert seen == [0, 1] and len(result.paths) == 1
