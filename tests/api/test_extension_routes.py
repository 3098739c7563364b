"""Extensions reach the API through hooks only: routes from register_api_routes, and
A1111 alwayson_scripts arguments delivered to the extension of that name."""

from __future__ import annotations

import json
import sys
import textwrap

from tests.api.conftest import start_easel

EXTENSION = textwrap.dedent(
    """
    from plugin_api import hookimpl

    seen_args = []

    @hookimpl
    def register_api_routes(router):
        @router.get("/echo_ext/hello")
        def hello():
            return {"hello": "from an extension"}

    @hookimpl
    def before_sample(ctx):
        seen_args.append(ctx.request.extension_args.get("echo_ext"))
    """
)


def test_extension_routes_and_alwayson_scripts(tmp_path, tiny_models_dir):
    extensions = tmp_path / "extensions"
    extensions.mkdir()
    (extensions / "echo_ext.py").write_text(EXTENSION)
    running, live = start_easel(
        tmp_path / "data",
        tiny_models_dir,
        safe_mode=False,
        extension_dirs=[extensions],
        disabled_extensions={"zh_prompt"},
    )
    try:
        with running.client() as client:
            assert client.get("/echo_ext/hello").json() == {"hello": "from an extension"}
            # no CORS unless asked for: a browser page elsewhere gets no permission
            response = client.get("/api/v1/health", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in response.headers
            assert "echo_ext" in client.get("/sdapi/v1/scripts").json()["txt2img"]
            body = client.post(
                "/sdapi/v1/txt2img",
                json={
                    "prompt": "with arguments",
                    "steps": 2,
                    "width": 64,
                    "height": 64,
                    "alwayson_scripts": {"echo_ext": {"args": [1, "two", {"three": 3}]}},
                },
            )
            assert body.status_code == 200, body.text
            info = json.loads(body.json()["info"])
            assert info["all_seeds"] == [info["seed"]] and f"Seed: {info['seed']}," in info["infotexts"][0]
        module = sys.modules["easel_user_extensions.echo_ext"]
        assert module.seen_args == [{"args": [1, "two", {"three": 3}]}]
    finally:
        live.stop()
        running.service.stop()
        running.host.stop()
