"""The zh_prompt extension through the real host loader: settings, transform_prompt as
the engine calls it, per-request modes, the neural fallback and the WebUI tab."""

from __future__ import annotations

import os

import pytest

from core.config import Settings
from core.host import Host
from plugin_api.types import GenerationContext, GenerationRequest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def host(tmp_path):
    # the models folder is where zh_prompt.model_dir may point (settings are confined)
    h = Host(Settings.from_env(data_dir=tmp_path, models_dir=tmp_path / "models")).start()
    yield h
    h.stop()


def run_transform(host, prompt, negative="", family="sd15", extension_args=None):
    request = GenerationRequest(prompt=prompt, negative_prompt=negative, extension_args=extension_args or {})
    ctx = GenerationContext(
        request=request, original_prompt=prompt, original_negative_prompt=negative, family=family
    )
    host.generation_hooks.transform_prompt(request, ctx)
    return request, ctx


def test_bundled_extension_is_loaded_with_its_settings(host):
    record = host.extensions.records["zh_prompt"]
    assert record.state == "loaded", record.error
    assert host.get_setting("zh_prompt.mode") == "auto"
    assert host.get_setting("zh_prompt.model_dir") == ""


def test_transform_prompt_translates_and_is_recorded(host):
    request, ctx = run_transform(host, "蓝色背景上的红色圆形", negative="模糊，水印")
    assert request.prompt == "red circle on blue background"
    assert request.negative_prompt == "blurry, watermark"
    [link] = ctx.prompt_transforms
    assert link.extension == "zh_prompt"
    assert link.prompt_before == "蓝色背景上的红色圆形"
    assert link.prompt_after == "red circle on blue background"
    assert link.negative_before == "模糊，水印"
    assert ctx.original_prompt == "蓝色背景上的红色圆形"
    assert ctx.extra_params["ZH prompt"] == "translate"


def test_english_prompt_is_not_touched(host):
    request, ctx = run_transform(host, "a red circle on a blue background")
    assert request.prompt == "a red circle on a blue background"
    assert ctx.prompt_transforms == []


def test_zimage_family_defaults_to_augment(host):
    request, _ = run_transform(host, "赛博朋克城市，高清", family="zimage")
    assert request.prompt == "赛博朋克城市，高清, cyberpunk, high definition"


def test_mode_setting_and_request_overrides(host):
    host.set_setting("zh_prompt.mode", "translate_keep")
    request, _ = run_transform(host, "一只猫")
    assert request.prompt == "一只猫, a cat"
    request, _ = run_transform(host, "一只猫", extension_args={"zh_prompt": {"mode": "off"}})
    assert request.prompt == "一只猫"
    request, _ = run_transform(host, "一只猫", extension_args={"zh_prompt": {"args": ["translate"]}})
    assert request.prompt == "a cat"
    request, ctx = run_transform(host, "一只猫", extension_args={"zh_prompt": {"mode": "yell"}})
    assert request.prompt == "一只猫, a cat"  # the setting, with a warning
    assert any("unknown mode 'yell'" in w for w in ctx.warnings)


@pytest.mark.parametrize("make_folder", ["missing", "corrupt"])
def test_neural_model_falls_back_to_the_dictionary(host, tmp_path, make_folder):
    folder = tmp_path / "models" / "opus-mt-zh-en"
    if make_folder == "corrupt":
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{not json", "utf-8")
    host.set_setting("zh_prompt.model_dir", str(folder))
    request, ctx = run_transform(host, "一只猫")
    assert request.prompt == "a cat"
    assert any("neural translation unavailable" in w and str(folder) in w for w in ctx.warnings)
    assert ctx.state["zh_prompt"]["backend"] == "dictionary"


def test_user_lexicon_in_the_data_folder(host, tmp_path):
    from extensions.zh_prompt import tab

    path = tmp_path / "zh_prompt" / "user_lexicon.tsv"
    assert tab.user_lexicon_path() == path
    assert "chinese<TAB>english" in tab.read_user_lexicon()
    status = tab.save_user_lexicon("小黄人\tminion\tperson\n")
    assert status.startswith("Saved 1 entries")
    assert path.read_text("utf-8") == "小黄人\tminion\tperson\n"
    request, _ = run_transform(host, "小黄人")
    assert request.prompt == "minion"
    # a malformed lexicon is refused and the saved file kept
    assert tab.save_user_lexicon("坏行没有英文\n").startswith("Not saved")
    assert path.read_text("utf-8") == "小黄人\tminion\tperson\n"


def test_ui_tab_builds_and_translates(host):
    import gradio as gr

    from extensions.zh_prompt import tab

    [ui_tab] = [t for e, t in host.ui_tabs() if e == "zh_prompt"]
    assert ui_tab.title == "Chinese prompt"  # 中文提示词 in a zh browser (localizations/zh-CN.json)
    with gr.Blocks() as demo:
        ui_tab.build()
    ids = {getattr(block, "elem_id", None) for block in demo.blocks.values()}
    assert {"zh_prompt_source", "zh_prompt_mode", "zh_prompt_translate", "zh_prompt_result"} <= ids
    assert {"zh_prompt_lexicon", "zh_prompt_save"} <= ids
    result, notes = tab.translate_for_ui("（猫：1.2），水彩", "translate")
    assert result == "(cat:1.2), watercolor"
    assert "backend: dictionary" in notes
