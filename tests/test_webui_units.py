"""WebUI pieces that need no browser: translations, downloads, request building, the
language setting, and the isolation of a failing extension tab."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import gradio as gr
import pytest

from core.config import Settings
from core.errors import RequestError
from core.host import Host
from plugin_api.types import Tab
from ui.extension_tabs import build_extension_tab
from ui.generation_run import build_request
from ui.i18n import I18N, LANGUAGES, TEXTS
from ui.language import LANGUAGE_SETTING, LanguageMiddleware, language_script, register_language_setting
from ui.results import build_zip, seed_from_infotext

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_text_has_english_and_chinese():
    assert set(I18N.translations) == set(LANGUAGES)
    for key, (english, chinese) in TEXTS.items():
        assert english.strip() and chinese.strip(), key
        assert I18N.translations["en"][key] == english
        assert I18N.translations["zh-CN"][key] == chinese
        if re.search(r"[A-Za-z]{3,}", english) and not english.startswith(("txt2img", "img2img")):
            assert CJK.search(chinese), f"{key}: {chinese!r} is not translated"


def test_zip_holds_every_image_even_with_equal_names(tmp_path):
    paths = []
    for index, folder in enumerate(("a", "b")):
        (tmp_path / folder).mkdir()
        path = tmp_path / folder / "00000-1.png"
        path.write_bytes(bytes([index]) * 10)
        paths.append(str(path))
    archive = Path(build_zip(paths, "job1"))
    assert archive.name == "easel-job1.zip"
    with zipfile.ZipFile(archive) as opened:
        names = opened.namelist()
        assert len(names) == 2 and len(set(names)) == 2
        assert sorted(opened.read(n) for n in names) == [b"\0" * 10, b"\1" * 10]
    assert not list(archive.parent.glob(".partial-*"))


def test_seed_is_read_from_infotext():
    text = "a cat\nNegative prompt: dog\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 12345, Size: 64x64"
    assert seed_from_infotext(text) == 12345
    assert seed_from_infotext("no parameters") is None


def test_form_values_become_a_request():
    request = build_request("p", "n", "tiny", "Euler", 4.0, 6.5, 2.0, 0.4, 128.0, 64.0, 7.0, 2.0, 3.0)
    assert (request.prompt, request.negative_prompt, request.model, request.sampler) == (
        "p",
        "n",
        "tiny",
        "Euler",
    )
    assert (request.steps, request.cfg_scale, request.width, request.height) == (4, 6.5, 128, 64)
    assert (request.late_cfg_scale, request.late_cfg_start) == (2.0, 0.4)
    assert (request.seed, request.batch_size, request.batch_count) == (7, 2, 3)
    assert request.mode == "txt2img" and request.scheduler is None  # no dropdown value: Automatic
    assert (
        build_request("p", "", None, None, 4, 7, "", "", 64, 64, None, 1, 1, scheduler="Karras").scheduler
        == "Karras"
    )
    assert build_request("p", "", None, None, 4, 7, "", "", 64, 64, None, 1, 1, styles=["a"]).styles == ["a"]
    empty = build_request("p", "", None, None, 4, 7, "", " ", 64, 64, None, 1, 1)
    assert empty.seed == -1
    assert (empty.late_cfg_scale, empty.late_cfg_start) == (None, None)  # the model's own
    assert build_request("p", "", None, None, 4, 7, "1.5", "0.25", 64, 64, None, 1, 1).late_cfg_start == 0.25
    with pytest.raises(RequestError) as caught:
        build_request("p", "", None, None, 4, 7, "strong", "", 64, 64, None, 1, 1)
    assert caught.value.field == "late_cfg_scale"


def test_failing_extension_tab_leaves_nothing_behind():
    def broken():
        box = gr.Textbox(elem_id="half_built")
        gr.Button("never wired", elem_id="half_button").click(lambda: "x", outputs=[box])
        raise ValueError("nope")

    def working():
        gr.Textbox(elem_id="fine_box")

    with gr.Blocks() as blocks, gr.Tabs():
        failed = build_extension_tab("bad_ext", Tab(title="Bad", build=broken), 0)
        ok = build_extension_tab("good_ext", Tab(title="Good", build=working), 1)
    assert failed.error == "ValueError: nope" and ok.error is None
    config = blocks.get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert "half_built" not in ids and "half_button" not in ids
    assert {"fine_box", "ext_bad_ext_0_error"} <= ids
    assert config["dependencies"] == []  # the failed tab's click handler is gone
    error_html = next(c for c in config["components"] if c["props"].get("elem_id") == "ext_bad_ext_0_error")
    assert "bad_ext" in error_html["props"]["value"] and "nope" in error_html["props"]["value"]


def test_tab_build_gets_the_host_and_generate_by_name():
    """API 1.8: a ``build`` with a parameter named ``host`` gets the host; the other
    parameter still gets ``generate``; a build without parameters gets nothing."""
    seen = {}
    fake_host, generate = object(), object()

    def with_host(host):
        seen["host"] = host
        gr.Textbox(elem_id="host_box")

    def with_both(generate, host):
        seen["both"] = (generate, host)

    def plain():
        seen["plain"] = True

    with gr.Blocks(), gr.Tabs():
        built = [
            build_extension_tab("ext", Tab(title=str(i), build=build), i, generate, fake_host)
            for i, build in enumerate((with_host, with_both, plain))
        ]
    assert all(tab.error is None for tab in built)
    assert seen == {"host": fake_host, "both": (generate, fake_host), "plain": True}


@pytest.fixture
def host(tmp_path):
    host = Host(Settings.from_env(data_dir=tmp_path, safe_mode=True)).start()
    register_language_setting(host)
    yield host
    host.stop()


def test_language_setting_injects_the_locale_before_gradio(host):
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse
    from fastapi.testclient import TestClient

    app = FastAPI()

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return "<html><head><script src='bundle.js'></script></head><body></body></html>"

    app.add_middleware(LanguageMiddleware, host=host)
    client = TestClient(app)
    assert "navigator" not in client.get("/").text  # auto: the browser decides
    host.user_settings.set(LANGUAGE_SETTING, "zh-CN")
    page = client.get("/").text
    assert page.index('"zh-CN"') < page.index("bundle.js")
    assert int(client.get("/").headers["content-length"]) == len(page.encode())
    with pytest.raises(ValueError):
        host.user_settings.set(LANGUAGE_SETTING, "fr")
    assert "navigator" not in language_script("auto")


@pytest.mark.parametrize(
    ("listen", "allow", "offered"),
    [("127.0.0.1", False, True), ("0.0.0.0", False, False), ("0.0.0.0", True, True)],
)
def test_install_form_only_where_installing_is_allowed(tmp_path, listen, allow, offered):
    from ui.extensions_tab import build_extensions_tab, install

    host = Host(Settings.from_env(data_dir=tmp_path, safe_mode=True, host=listen, allow_remote_install=allow))
    host.start()
    with gr.Blocks() as blocks:
        build_extensions_tab(host)
    ids = {c["props"].get("elem_id") for c in blocks.get_config_file()["components"]}
    assert ("extensions_source" in ids) is offered
    assert ("extensions_install_disabled" in ids) is not offered
    if not offered:  # and a request crafted without the form is refused too
        assert "off" in install(host, str(tmp_path))
    host.stop()


def test_settings_are_saved_and_a_bad_value_is_named(host):
    from plugin_api.types import SettingSpec
    from ui.settings_tab import save_settings

    host.setting_specs.add(SettingSpec(key="t.count", default=3, label="Count"), "t")
    host.setting_specs.add(SettingSpec(key="t.mode", default="a", choices=("a", "b")), "t")
    specs = [host.setting_specs.get("t.count"), host.setting_specs.get("t.mode")]
    message = save_settings(host, specs, [5.0, "zzz"])
    assert message.startswith("1 settings changed: t.count.") and "Not saved: t.mode" in message
    assert host.user_settings.get("t.count") == 5
    assert host.user_settings.get("t.mode") == "a"


def test_png_info_fields_from_a_saved_image(tmp_path):
    from PIL import Image, PngImagePlugin

    from ui.png_info import form_fields, open_image, parse, read_parameters

    text = (
        "a castle, (masterpiece:1.2)\nNegative prompt: blurry\n"
        "Steps: 12, Sampler: Euler a, CFG scale: 6.5, Late CFG scale: 2, Late CFG start: 0.5, Seed: 987654, "
        "Size: 128x96, Model hash: abc, Model: easel-demo"
    )
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    path = tmp_path / "00000-987654.png"
    Image.new("RGB", (128, 96)).save(path, pnginfo=info)
    assert read_parameters(open_image(str(path))) == text
    fields = form_fields(parse(text))
    assert fields == {
        "prompt": "a castle, (masterpiece:1.2)",
        "negative_prompt": "blurry",
        "steps": 12,
        "sampler": "Euler a",
        "cfg_scale": 6.5,
        "late_cfg_scale": 2.0,
        "late_cfg_start": 0.5,
        "seed": 987654,
        "width": 128,
        "height": 96,
        "model": "easel-demo",
    }
    assert read_parameters(None) == "" and parse("") == {}
    # A1111 1.10 writes the schedule type apart; before 1.9 it was part of the sampler name
    assert (
        form_fields(parse("x\nSteps: 2, Sampler: DPM++ 2M, Schedule type: Karras, Seed: 1"))["scheduler"]
        == "Karras"
    )
    old = form_fields(parse("x\nSteps: 2, Sampler: DPM++ 2M SDE Exponential, Seed: 1"))
    assert (old["sampler"], old["scheduler"]) == ("DPM++ 2M SDE", "Exponential")


def test_progress_label_speaks_the_page_language():
    from ui.i18n import language_of
    from ui.job_client import JobSnapshot
    from ui.progress_view import render_progress

    assert language_of("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN"
    assert language_of("en-US,en;q=0.9") == "en"
    assert language_of("zh-TW") == "en"
    assert language_of("en-US", setting="zh-CN") == "zh-CN"
    running = JobSnapshot("j", "running", step=3, total_steps=12, fraction=0.25, elapsed_s=1.0, eta_s=3.0)
    assert 'aria-valuenow="25"' in render_progress(running)
    assert "step 3/12" in render_progress(running) and "ETA" in render_progress(running)
    assert "步数 3/12" in render_progress(running, "zh-CN")
    assert "已中止" in render_progress(JobSnapshot("j", "interrupted", error="interrupted"), "zh-CN")
    assert 'aria-valuenow="100"' in render_progress(JobSnapshot("j", "done"))


def test_hires_controls_fill_the_request_only_when_ticked():
    from plugin_api.types import GenerationRequest
    from ui.hires_controls import apply_hires

    off = apply_hires(GenerationRequest(prompt="p"), False, "Latent", 2.0, 5, 0.5)
    assert not off.enable_hr and off.denoising_strength == 0.75
    on = apply_hires(GenerationRequest(prompt="p"), True, "Latent (nearest)", 1.5, 5.0, 0.55)
    assert (on.enable_hr, on.hr_upscaler, on.hr_scale, on.hr_second_pass_steps) == (
        True,
        "Latent (nearest)",
        1.5,
        5,
    )
    assert on.denoising_strength == 0.55


def test_late_cfg_placeholders_show_the_models_own_setting(make_host):
    """Empty late-CFG fields send nothing, so the model's easel.json decides; the fields'
    placeholders say what that is, and follow a model switch."""
    from types import SimpleNamespace

    from core.engine import Engine
    from ui.choices import late_cfg_placeholders, model_defaults
    from ui.generation_run import _on_model_change

    engine = Engine(make_host())  # the tiny models and the shipped demo model
    service = SimpleNamespace(engine=engine)
    demo = model_defaults(service, "easel-demo")  # its easel.json: CFG 4, late 1.5 from 0.3
    assert (demo["cfg_scale"], demo["late_cfg_scale"], demo["late_cfg_start"]) == (4.0, 1.5, 0.3)
    assert late_cfg_placeholders(demo) == ("1.5", "0.3")
    assert late_cfg_placeholders(model_defaults(service, "tiny-sd15")) == ("—", "0.5")  # no easel.json

    _, scale, start = _on_model_change(engine.host, service, "easel-demo", "Euler")
    assert (scale["placeholder"], start["placeholder"]) == ("1.5", "0.3")
    _, scale, start = _on_model_change(engine.host, service, "tiny-sd15", "Euler")
    assert (scale["placeholder"], start["placeholder"]) == ("—", "0.5")


def test_queue_tab_lists_the_queues_workers(tmp_path):
    import time

    from core.jobs import JobService, SqliteJobQueue
    from core.jobs.queue import WorkerInfo
    from ui.job_client import JobClient
    from ui.queue_tab import WORKER_COLUMNS, worker_rows

    queue = SqliteJobQueue(tmp_path / "queue.db")
    service = JobService(queue, runner=lambda *a, **k: None, transient_dir=tmp_path / "t", lease_s=30)
    queue.worker_seen(WorkerInfo(id="gpu1", host="box", pid=7, device="cuda:1", model="m", job_id="j"))
    queue.worker_seen(WorkerInfo(id="old", host="box", pid=8, device="cuda:0", started_at=time.time()))
    queue.worker_seen(WorkerInfo(id="draining", host="b", pid=9, device="cpu", draining=True))
    rows = worker_rows(JobClient(service))
    assert len(WORKER_COLUMNS) == len(rows[0])
    by_id = {row[0]: row for row in rows}
    assert by_id["gpu1"][1:6] == ["box", 7, "cuda:1", "m", "j"] and by_id["gpu1"][7] == "alive"
    assert by_id["draining"][7] == "draining"
    # with a lease of 0.05 s, 0.2 s without a heartbeat is more than two: a dead worker
    short = JobService(queue, runner=lambda *a, **k: None, transient_dir=tmp_path / "t", lease_s=0.05)
    time.sleep(0.2)
    stale = {row[0]: row for row in worker_rows(JobClient(short))}
    assert stale["gpu1"][7].startswith("stale: no heartbeat for 0.") and stale["draining"][7] == "draining"
    queue.close()


def test_styles_picker_lists_and_applies_styles_csv(host):
    from ui.styles_picker import build_styles_picker, wire_styles_picker

    (host.settings.data_dir / "styles.csv").write_text(
        'name,prompt,negative_prompt\nframed,"{prompt}, framed",blurry\n', encoding="utf-8"
    )
    with gr.Blocks() as blocks:
        prompt, negative = gr.Textbox(), gr.Textbox()
        picker = build_styles_picker("t2i", host)
        wire_styles_picker(picker, prompt, negative, host)
    config = blocks.get_config_file()
    dropdown = next(c for c in config["components"] if c["props"].get("elem_id") == "t2i_styles")
    assert [choice[0] for choice in dropdown["props"]["choices"]] == ["framed"]
    apply = blocks.fns[0].fn  # "apply to prompt": styles written into the boxes, choice cleared
    styled, styled_negative, cleared = apply("a cat", "", ["framed"])
    assert (styled, styled_negative) == ("a cat, framed", "blurry") and cleared["value"] == []


def test_shift_is_sent_and_shown_for_flow_matching_models_only():
    from types import SimpleNamespace

    from ui import choices

    def request(shift):
        return build_request("p", "", None, None, 4, 7, "", "", 64, 64, None, 1, 1, shift=shift)

    assert request("3").shift == 3.0 and request("").shift is None and request(None).shift is None
    with pytest.raises(RequestError) as error:
        request("lots")
    assert error.value.field == "shift"
    infos = [SimpleNamespace(name="z", family="zimage"), SimpleNamespace(name="s", family="sd15")]
    service = SimpleNamespace(engine=SimpleNamespace(models=SimpleNamespace(list=lambda: infos)))
    assert choices.is_flow_model(service, "z") and not choices.is_flow_model(service, "s")
    assert not choices.is_flow_model(service, None)
