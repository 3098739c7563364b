"""The WebUI's Extensions tab over the real server: its remove endpoint (callable by any
page that passes the Origin check) takes names, never paths (issue #23, point 3)."""

from __future__ import annotations

import pytest

from tests.api.conftest import gradio_call


@pytest.mark.parametrize("name", ["..", "../victim", "./keep_ext", "keep_ext/../../victim"])
def test_remove_endpoint_refuses_paths(easel_webui, name):
    [installed] = easel_webui.settings.extension_dirs
    (installed / "keep_ext").mkdir(parents=True, exist_ok=True)
    victim = installed.parent / "victim"
    victim.mkdir(exist_ok=True)
    (victim / "precious.txt").write_text("keep me")
    with easel_webui.client() as client:
        result = gradio_call(client, "remove_extension", [name])
    # Gradio may refuse a value that is not one of the dropdown's choices before the
    # handler runs; either way nothing outside is touched
    assert (isinstance(result, dict) and "error" in result) or "remove refused" in result[0], result
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (installed / "keep_ext").is_dir() and installed.parent.is_dir()
