"""Localization tables (A1111's ``localizations/<lang>.json``): reading untrusted files,
merging the core's and the extensions', turning built labels into i18n keys, and
server-built messages in the page's language. No browser: see test_webui_zh_walk."""

from __future__ import annotations

import json
import re
from pathlib import Path

import gradio as gr
import pytest
from gradio.i18n import I18nData

from ui.i18n import TEXTS, Message, build_i18n, say, use_localizations
from ui.localization import (
    CORE_DIR,
    MAX_FILE_BYTES,
    LocalizationError,
    Localizations,
    load_localizations,
    read_localization,
)
from ui.translated_blocks import translate_blocks

CJK = re.compile(r"[\u4e00-\u9fff]")
BUNDLED_TABLES = sorted(Path("extensions").glob("*/localizations/zh-CN.json"))


class FakeExtensions:
    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def listing(self) -> list[dict]:
        return self.items


class FakeHost:
    def __init__(self, items: list[dict]) -> None:
        self.extensions = FakeExtensions(items)


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, "utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[1, 2]", "must be a JSON object"),
        ('{"Run": {"nested": "x"}}', "not a string"),
        ('{"Run": 3}', "not a string"),
        ("{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("[" * 5000 + "]" * 5000, "not valid JSON"),  # too deep for the parser
    ],
)
def test_a_bad_file_is_refused_naming_it(tmp_path, content, reason):
    path = write(tmp_path / "ext" / "localizations" / "zh-CN.json", content)
    with pytest.raises(LocalizationError) as raised:
        read_localization(path)
    assert str(path) in str(raised.value) and reason in str(raised.value)


def test_a_file_over_the_cap_is_not_read(tmp_path):
    path = write(tmp_path / "zh-CN.json", '{"a": "' + "x" * 100 + '"}')
    with pytest.raises(LocalizationError, match="more than the 50 allowed"):
        read_localization(path, max_bytes=50)
    assert MAX_FILE_BYTES <= 2 * 1024 * 1024


def test_core_and_extension_tables_merge_and_bad_files_are_reported(tmp_path):
    core = tmp_path / "core"
    write(core / "zh-CN.json", json.dumps({"Prompt": "提示词"}))
    good = tmp_path / "good"
    write(good / "__init__.py", "")
    write(good / "localizations" / "zh-CN.json", json.dumps({"Prompt": "别的", "Weight": "权重"}))
    write(good / "localizations" / "not a language.json", "{}")
    bad = tmp_path / "bad"
    write(bad / "__init__.py", "")
    write(bad / "localizations" / "zh-CN.json", '{"Run": ["x"]}')
    disabled = tmp_path / "disabled"
    write(disabled / "localizations" / "zh-CN.json", json.dumps({"Off": "关"}))
    host = FakeHost(
        [
            {"name": "good", "state": "loaded", "enabled": True, "path": str(good / "__init__.py")},
            {"name": "bad", "state": "loaded", "enabled": True, "path": str(bad)},
            {"name": "disabled", "state": "disabled", "enabled": False, "path": str(disabled)},
            {"name": "single", "state": "loaded", "enabled": True, "path": str(tmp_path / "single.py")},
            {"name": "builtin.core", "state": "loaded", "enabled": True, "path": "core.samplers"},
        ]
    )
    loaded = load_localizations(host, core_dir=core)
    assert loaded.tables["zh-CN"] == {"Prompt": "提示词", "Weight": "权重"}  # the core wins
    assert "Off" not in loaded.tables["zh-CN"]  # a disabled extension's table is not used
    assert len(loaded.problems) == 2
    assert any(
        p.startswith("bad: ") and str(bad / "localizations" / "zh-CN.json") in p for p in loaded.problems
    )
    assert any("not a language code" in p and "not a language.json" in p for p in loaded.problems)


def test_shipped_tables_are_flat_chinese_and_valid():
    for path in [CORE_DIR / "zh-CN.json", *BUNDLED_TABLES]:
        table = read_localization(path)
        assert table, path
        for english, chinese in table.items():
            if re.search(r"[A-Za-z]{3,}", english) and not english.startswith("common."):
                assert CJK.search(chinese), f"{path}: {english!r} -> {chinese!r} is not Chinese"
            fields = set(re.findall(r"\{(\w*)\}", english))
            assert set(re.findall(r"\{(\w*)\}", chinese)) == fields, f"{path}: {english!r} fields differ"
    assert {p.parent.parent.name for p in BUNDLED_TABLES} >= {"controlnet", "esrgan", "lora", "zh_prompt"}


def test_built_labels_become_i18n_keys_and_the_rest_stays():
    loaded = Localizations(
        tables={"zh-CN": {"Weight": "权重", "Run": "运行", "Hello **there**": "你好", "A {x}": "甲"}}
    )
    with gr.Blocks() as blocks:
        slider = gr.Slider(label="Weight", info="Untranslated info")
        button = gr.Button("Run")
        markdown = gr.Markdown("Hello **there**")
        keyed = gr.Textbox(label=I18nData("gen.prompt"))
        template = gr.Textbox(label="A {x}")
    assert translate_blocks(blocks, loaded) == 3
    assert isinstance(slider.label, I18nData) and slider.label.key == "Weight"
    assert slider.info == "Untranslated info"
    assert "__i18n__" in button.value and '"key": "Run"' in button.value
    assert '"key": "Hello **there**"' in markdown.value
    assert keyed.label.key == "gen.prompt"  # already a key: untouched
    assert template.label == "A {x}"  # a template is not given to the frontend's formatter
    blocks.config  # noqa: B018 - the config still serializes


def test_messages_are_said_in_the_page_language():
    use_localizations(load_localizations(None))
    message = Message("job {job_id} is already {status}", job_id="abc", status=Message("done"))
    assert message == "job abc is already done"  # still the plain English string
    assert say(message, "en") == "job abc is already done"
    assert say(message, "zh-CN") == "任务 abc 已是完成状态"
    assert say("Generate an image first.", "zh-CN") == "请先生成一张图像。"
    assert say("no such entry", "zh-CN") == "no such entry"
    broken = Localizations(
        tables={"zh-CN": {"saved {count}": "已保存 {number}", "job {job_id}": "{job_id.__class__.__mro__}"}}
    )
    use_localizations(broken)
    try:
        assert say(Message("saved {count}", count=2), "zh-CN") == "saved 2"  # the English, never a crash
        # a translation file may not reach into the values (attribute or index look-ups)
        assert say(Message("job {job_id}", job_id="abc"), "zh-CN") == "job abc"
    finally:
        use_localizations(load_localizations(None))


def test_the_frontend_gets_keyed_texts_and_plain_tables_without_templates():
    i18n = build_i18n(load_localizations(None))
    zh = i18n.translations["zh-CN"]
    assert zh["gen.prompt"] == TEXTS["gen.prompt"][1]
    assert zh["Localization files skipped"] == "未能使用的本地化文件"
    assert not [key for key in zh if "{" in key]


class FakeRequest:
    def __init__(self, accept_language: str) -> None:
        self.headers = {"accept-language": accept_language}


def test_an_extension_message_follows_the_request_language():
    from extensions.zh_prompt.tab import translate_for_ui
    from plugin_api.localization import set_translator, translate
    from ui.language import request_language

    set_translator(None)  # a WebUI built by an earlier test installed its own
    assert translate("Upload a control image first.", FakeRequest("zh-CN")) == "Upload a control image first."
    loaded = load_localizations(None)
    loaded.add_folder(Path("extensions/zh_prompt/localizations"), "zh_prompt")
    # what the WebUI installs when it is built (ui/app.py)
    set_translator(lambda text, request: loaded.translate(text, request_language(request)))
    try:
        _result, notes = translate_for_ui("猫", "translate", FakeRequest("zh-CN,zh;q=0.9"))
        assert notes.splitlines()[0] == "翻译后端：dictionary"
        _result, notes = translate_for_ui("猫", "translate", FakeRequest("en-US"))
        assert notes.splitlines()[0] == "backend: dictionary"
        assert translate("{n} apples", FakeRequest("zh-CN"), n=2) == "2 apples"  # no entry: English
        set_translator(lambda text, request: 1 / 0)  # a broken translator never breaks a handler
        assert translate("Saved {count} entries to {path}", FakeRequest("zh-CN"), count=1, path="p") == (
            "Saved 1 entries to p"
        )
    finally:
        set_translator(None)
