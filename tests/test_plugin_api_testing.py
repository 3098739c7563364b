"""plugin_api.testing: an extension author's pytest helper runs the real engine."""

from __future__ import annotations

import types

import pytest

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


def _blocklist_module() -> types.ModuleType:
    """An extension with a setting, a refusal in transform_prompt and a route."""
    from plugin_api import InvalidRequest, SettingSpec

    module = types.ModuleType("words")

    @hookimpl
    def register_settings(register):
        register(SettingSpec(key="words.blocked", default=""))

    @hookimpl
    def transform_prompt(request, ctx):
        blocked = ctx.settings["words.blocked"]
        if blocked and blocked in request.prompt:
            raise InvalidRequest("prompt", f"{blocked!r} is blocked")
        ctx.results["words"] = {"checked": blocked}

    @hookimpl
    def register_api_routes(router):
        @router.get("/words/ping")
        def ping():
            return {"pong": True}

    module.register_settings = register_settings
    module.transform_prompt = transform_prompt
    module.register_api_routes = register_api_routes
    return module


@pytest.mark.slow
def test_run_generation_takes_settings_and_refusals_are_invalid_requests(tmp_path, tiny_sd15_dir):
    from plugin_api import GenerationResult, InvalidRequest

    module = _blocklist_module()
    with pytest.raises(InvalidRequest) as refused:
        run_generation(
            [module],
            GenerationRequest(prompt="a dog"),
            tmp_path,
            model_dir=tiny_sd15_dir,
            settings={"words.blocked": "dog"},
        )
    assert refused.value.field == "prompt"
    result = run_generation(
        [module],
        GenerationRequest(prompt="a cat", seed=3),
        tmp_path,
        model_dir=tiny_sd15_dir,
        settings={"words.blocked": "dog"},
    )
    assert isinstance(result, GenerationResult)
    assert result.results == {"words": {"checked": "dog"}} and result.seeds == [3]


@pytest.mark.slow
def test_serve_runs_routes_settings_and_auth(tmp_path, tiny_sd15_dir):
    import base64

    from plugin_api.testing import serve

    module = _blocklist_module()
    with serve(
        [module], tmp_path, model_dir=tiny_sd15_dir, settings={"words.blocked": "dog"}, api_auth="me:secret"
    ) as client:
        assert client.get("/words/ping").status_code == 401  # behind --api-auth, as the host's routes
        client.headers["Authorization"] = "Basic " + base64.b64encode(b"me:secret").decode()
        assert client.get("/words/ping").json() == {"pong": True}
        assert client.host.get_setting("words.blocked") == "dog"
        refused = client.post(
            "/sdapi/v1/txt2img", json={"prompt": "a dog", "steps": 2, "width": 64, "height": 64}
        )
        assert refused.status_code == 422 and refused.json()["errors"] == "prompt: 'dog' is blocked"
        made = client.post(
            "/sdapi/v1/txt2img", json={"prompt": "a cat", "steps": 2, "width": 64, "height": 64}
        )
        assert made.status_code == 200, made.text[:300]
