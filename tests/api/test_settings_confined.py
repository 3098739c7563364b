"""Settings are data, not paths (issue #23, point 1): over every registered setting, a
value with control characters is refused with a 422 naming the key; a setting that names
a file or folder stays inside its folder, whether it comes from ``POST /sdapi/v1/options``,
the WebUI's Settings tab or a settings file written before these checks; and the WebUI's
user-lexicon endpoints only ever touch <data dir>/zh_prompt/."""

from __future__ import annotations

import json
import re

import pytest

from core.user_settings import PATH_KINDS
from tests.api.conftest import gradio_call

CONTROL_VALUES = ["a\x00b", "x\x1b[2Jy", "line\nbreak", "c1\x85"]
ESCAPES = ["../../../../../../etc/passwd", "/etc/passwd", "..", "a/../../b.tsv", "../zh_prompt_x/y"]
# words that say a setting names something on disk: such a setting must declare
# SettingSpec.path, or the confinement below would silently not apply to it
PATH_WORDS = re.compile(r"dir|file|path|folder|lexicon", re.IGNORECASE)
# the host's saving settings that name no path: a format, switches and the two name
# patterns (checked by core/saving/filenames.py check_pattern; tests/test_output_settings.py)
NOT_PATHS = {
    "samples_format", "save_to_dirs", "save_images_add_number", "samples_filename_pattern",
    "directories_filename_pattern",
}  # fmt: skip


def options(client) -> dict:
    response = client.get("/sdapi/v1/options")
    assert response.status_code == 200
    return response.json()


def test_every_registered_setting_refuses_control_characters(easel):
    specs = list(easel.host.setting_specs)
    assert len(specs) >= 5  # the bundled extensions' settings are all here
    with easel.client() as client:
        before = options(client)
        for spec in specs:
            for value in CONTROL_VALUES:
                response = client.post("/sdapi/v1/options", json={spec.key: value})
                assert response.status_code == 422, (spec.key, value, response.text)
                assert spec.key in response.text
            assert options(client)[spec.key] == before[spec.key], spec.key


def test_every_setting_that_names_a_file_declares_it(easel):
    """Guards the test below: a new path setting without ``path=`` would escape it."""
    specs = list(easel.host.setting_specs)
    path_specs = [s for s in specs if s.path is not None]
    assert {s.key for s in path_specs} >= {"zh_prompt.user_lexicon", "zh_prompt.model_dir"}
    for spec in specs:
        if PATH_WORDS.search(f"{spec.key} {spec.label}") and spec.key not in NOT_PATHS:
            assert spec.path in PATH_KINDS, f"{spec.key} names a file or folder but does not say so"


def test_every_path_setting_is_confined_to_its_folder(easel):
    path_specs = [s for s in easel.host.setting_specs if s.path is not None]
    assert path_specs
    with easel.client() as client:
        before = options(client)
        for spec in path_specs:
            escapes = [*ESCAPES, str(easel.settings.data_dir.parent / "elsewhere.tsv")]
            for value in escapes:
                response = client.post("/sdapi/v1/options", json={spec.key: value})
                assert response.status_code == 422, (spec.key, value, response.text)
                assert spec.key in response.json()["detail"][0]["loc"] or spec.key in response.text
            assert options(client)[spec.key] == before[spec.key]
            # a plain name inside the folder is fine, and so is going back to the default
            assert client.post("/sdapi/v1/options", json={spec.key: "mine/inside.tsv"}).status_code == 200
            assert options(client)[spec.key] == "mine/inside.tsv"
            assert client.post("/sdapi/v1/options", json={spec.key: spec.default}).status_code == 200


def test_a_refused_request_changes_nothing(easel):
    with easel.client() as client:
        before = options(client)
        response = client.post(
            "/sdapi/v1/options", json={"zh_prompt.mode": "off", "zh_prompt.user_lexicon": "../../x"}
        )
        assert response.status_code == 422 and "zh_prompt.user_lexicon" in response.text
        assert options(client)["zh_prompt.mode"] == before["zh_prompt.mode"]


def test_a_symlink_inside_the_folder_cannot_lead_out(easel, tmp_path):
    folder = easel.settings.data_dir / "zh_prompt"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "escape"
    link.symlink_to(tmp_path, target_is_directory=True)
    try:
        with easel.client() as client:
            response = client.post("/sdapi/v1/options", json={"zh_prompt.user_lexicon": "escape/lexicon.tsv"})
            assert response.status_code == 422 and "zh_prompt.user_lexicon" in response.text
    finally:
        link.unlink()


def test_the_settings_tab_refuses_the_same_values(easel):
    from ui.settings_tab import save_settings

    spec = easel.host.setting_specs.get("zh_prompt.user_lexicon")
    message = save_settings(easel.host, [spec], ["../../../etc/passwd"])
    assert message.startswith("Nothing changed. Not saved:") and "zh_prompt.user_lexicon" in message
    message = save_settings(easel.host, [spec], ["nul\x00.tsv"])
    assert message.startswith("Nothing changed. Not saved:") and "control characters" in message
    assert easel.host.get_setting("zh_prompt.user_lexicon") == ""


@pytest.fixture
def zh_prompt_host(easel_webui):
    """The zh_prompt extension keeps its host in module state, and other tests in this
    process start hosts of their own: point it back at the WebUI server's host."""
    from extensions import zh_prompt

    zh_prompt.startup(easel_webui.host)
    return easel_webui


def test_stored_escapes_are_ignored_and_the_lexicon_endpoints_stay_inside(zh_prompt_host):
    easel_webui = zh_prompt_host
    """A settings file from before these checks (or edited by hand) points outside: the
    value reads as the default, and the WebUI's read/save endpoints (which any page could
    call) read and write <data dir>/zh_prompt/user_lexicon.tsv only."""
    data_dir = easel_webui.settings.data_dir
    secret = data_dir.parent / f"{data_dir.name}-secret.tsv"
    secret.write_text("秘密\tTOP SECRET\n", "utf-8")
    settings_file = easel_webui.settings.state_dir / "settings.json"
    saved = settings_file.read_text("utf-8") if settings_file.exists() else None
    for planted in (f"../../{secret.name}", str(secret), "bad\x00name.tsv"):
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(json.dumps({"zh_prompt.user_lexicon": planted}), "utf-8")
        try:
            with easel_webui.client() as client:
                assert options(client)["zh_prompt.user_lexicon"] == ""
                [text] = gradio_call(client, "read_user_lexicon", [])
                assert "TOP SECRET" not in text
                [status] = gradio_call(client, "save_user_lexicon", ["小黄人\tminion\n"])
                assert status.startswith("Saved 1 entries"), status
                assert secret.read_text("utf-8") == "秘密\tTOP SECRET\n"
                inside = data_dir / "zh_prompt" / "user_lexicon.tsv"
                assert inside.read_text("utf-8") == "小黄人\tminion\n"
                assert str(inside) in status
        finally:
            if saved is None:
                settings_file.unlink(missing_ok=True)
            else:
                settings_file.write_text(saved, "utf-8")
    secret.unlink()


@pytest.mark.parametrize("value", ["mine.tsv", "sub/mine.tsv"])
def test_a_confined_lexicon_name_is_used_by_the_endpoints(zh_prompt_host, value):
    easel_webui = zh_prompt_host
    data_dir = easel_webui.settings.data_dir
    with easel_webui.client() as client:
        assert client.post("/sdapi/v1/options", json={"zh_prompt.user_lexicon": value}).status_code == 200
        try:
            [status] = gradio_call(client, "save_user_lexicon", ["小黄人\tminion\n"])
            assert (data_dir / "zh_prompt" / value).read_text("utf-8") == "小黄人\tminion\n", status
            [text] = gradio_call(client, "read_user_lexicon", [])
            assert "minion" in text
        finally:
            client.post("/sdapi/v1/options", json={"zh_prompt.user_lexicon": ""})


def test_settings_without_a_typed_default_are_checked_inside(easel):
    """A setting whose default is None takes any JSON: its strings are still checked."""
    from plugin_api.types import SettingSpec

    specs = easel.host.setting_specs
    specs.add(SettingSpec(key="test_any.value", default=None), "test_any")
    try:
        with easel.client() as client:
            for value in (["ok", "bad\x00"], {"k\x1b": 1}, {"a": [[[[[[[[["deep"]]]]]]]]]}):
                response = client.post("/sdapi/v1/options", json={"test_any.value": value})
                assert response.status_code == 422 and "test_any.value" in response.text, response.text
            fine = ["fine", {"a": 1}]
            assert client.post("/sdapi/v1/options", json={"test_any.value": fine}).status_code == 200
            assert options(client)["test_any.value"] == fine
    finally:  # the registry has no public removal: other tests see the bundled settings only
        specs._items.pop("test_any.value", None)
        specs._owners.pop("test_any.value", None)
        specs._aliases.pop("test_any.value", None)
