"""The WebUI in a real headless Chromium against the real server (`easel serve`).

One server for the module (start-up loads torch, diffusers and Gradio once); each test
opens its own browser context, i.e. its own session. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.webui_server import ARTIFACTS_DIR, CHROMIUM_ARGS, chromium_path, running_server

pytestmark = pytest.mark.browser

GENERATION_TIMEOUT_MS = 180_000
STEPS = 12  # enough steps for the bar to be seen between 0 and 100 %
SEED_IN_INFO = re.compile(r"Seed: (\d+)")

# Records every distinct aria-valuenow of the bar and every preview image source, from
# the click until an image is in the gallery (polled every 50 ms in the page itself, so
# short-lived values are not missed between Python round trips).
WATCH_PROGRESS_JS = """
(prefix) => {
  window.__easel_watch = { values: [], previews: [], phases: [] };
  const watch = window.__easel_watch;
  const timer = setInterval(() => {
    const bar = document.querySelector(`#${prefix}_progress [role=progressbar]`);
    const value = bar && bar.getAttribute('aria-valuenow');
    if (value !== null && watch.values[watch.values.length - 1] !== value) watch.values.push(value);
    const img = document.querySelector(`#${prefix}_preview img`);
    const src = img && img.getAttribute('src');
    if (src && !watch.previews.includes(src)) watch.previews.push(src);
    const phase = document.querySelector(`#${prefix}_progress .easel-progress`);
    const named = phase && phase.getAttribute('data-phase');
    if (named && !watch.phases.includes(named)) watch.phases.push(named);
    if (document.querySelector(`#${prefix}_gallery img`)) clearInterval(timer);
  }, 50);
}
"""


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("webui")


@pytest.fixture(scope="module")
def server(scratch):
    with running_server(scratch) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (`make test` installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright  # a declared test dependency

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def open_page(browser, server, locale: str = "en-US"):
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url)
    page.wait_for_selector("#txt2img_prompt textarea")
    return context, page


def screenshot(page, name: str) -> Path:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    path = ARTIFACTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def set_number(page, selector: str, value: int) -> None:
    field = page.locator(selector)
    field.fill(str(value))
    field.press("Enter")
    field.blur()


def fill_form(page, server, prompt: str, seed: int, steps: int = STEPS) -> None:
    page.fill("#txt2img_prompt textarea", prompt)
    page.click("#txt2img_preset_128x128")
    page.wait_for_function(
        "document.querySelector('#txt2img_width input[type=number]').value === '128'"
        " && document.querySelector('#txt2img_height input[type=number]').value === '128'"
    )
    set_number(page, "#txt2img_steps input[type=number]", steps)
    set_number(page, "#txt2img_seed input", seed)
    # the model the server was given (the demo model, or the tiny test model)
    if page.input_value("#txt2img_model input") != server.model:
        page.click("#txt2img_model input")
        page.click(f"[role=option]:text-is('{server.model}')")
    page.wait_for_function(f"document.querySelector('#txt2img_model input').value === '{server.model}'")


def wait_for_result(page) -> str:
    page.wait_for_selector("#txt2img_gallery img", timeout=GENERATION_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelector('#txt2img_info textarea').value.includes('Seed: ')",
        timeout=GENERATION_TIMEOUT_MS,
    )
    return page.input_value("#txt2img_info textarea")


def test_generate_shows_progress_preview_and_image(browser, server):
    context, page = open_page(browser, server)
    fill_form(page, server, "a red circle on a blue background", seed=-1)
    assert page.input_value("#txt2img_late_cfg input") == ""  # empty: the model's own
    if server.model == "easel-demo":  # ... which the placeholder shows (its easel.json)
        assert page.get_attribute("#txt2img_late_cfg input", "placeholder") == "1.5"
    page.fill("#txt2img_late_cfg input", "2")
    page.evaluate(WATCH_PROGRESS_JS, "txt2img")
    page.click("#txt2img_generate")
    info = wait_for_result(page)
    page.wait_for_function(
        "document.querySelector('#txt2img_progress [role=progressbar]').getAttribute('aria-valuenow') === '100'"
    )
    watch = page.evaluate("window.__easel_watch")
    values = [int(v) for v in watch["values"]]
    # the bar moved through the sampling, not only from empty to full
    assert any(0 < v < 100 for v in values), f"no intermediate progress value: {values}"
    assert len(set(values)) >= 2
    assert "sampling" in watch["phases"], watch["phases"]  # the bar names the phase
    assert watch["previews"], "no live preview was shown"
    seed_match = SEED_IN_INFO.search(info)
    assert seed_match, info
    seed = int(seed_match.group(1))
    assert "a red circle on a blue background" in info
    assert "Steps: 12" in info and "Size: 128x128" in info
    # the start was left empty: the model's own (the demo model's easel.json: 0.3), else half way
    start = "0.3" if server.model == "easel-demo" else "0.5"
    assert "Late CFG scale: 2" in info and f"Late CFG start: {start}" in info
    # the image was kept in outputs/ with the same parameters
    saved = sorted(server.data_dir.joinpath("outputs").rglob("*.png"))
    assert saved, "no image written under outputs/"
    from PIL import Image

    with Image.open(saved[-1]) as image:
        assert image.size == (128, 128)
        assert f"Seed: {seed}" in image.info.get("parameters", "")
    # ♻️ puts the seed of the last image back into the form
    page.click("#txt2img_reuse_seed")
    page.wait_for_function(f"document.querySelector('#txt2img_seed input').value === '{seed}'")
    screenshot(page, "webui-txt2img")
    job_id = re.search(r"job ([0-9a-f]+)", page.inner_text("#txt2img_timing")).group(1)
    # 🎲 asks for a random seed again; clear the prompt so "send to txt2img" must refill both
    page.click("#txt2img_random_seed")
    page.wait_for_function("document.querySelector('#txt2img_seed input').value === '-1'")
    page.fill("#txt2img_prompt textarea", "")
    page.fill("#txt2img_late_cfg input", "")

    # the Queue tab lists the job as done (read from the SQLite queue)
    page.click("button#tab_queue-button")
    page.wait_for_function(
        f"document.querySelector('#queue_table').innerText.includes('{job_id}')", timeout=30_000
    )
    assert "done" in page.inner_text("#queue_table")

    # PNG Info reads the saved image's parameters and sends them to txt2img
    page.click("button#tab_png_info-button")
    page.set_input_files("#png_info_image input[type=file]", str(saved[-1]))
    page.wait_for_function(
        f"document.querySelector('#png_info_parameters textarea').value.includes('Seed: {seed}')"
    )
    page.click("#png_info_send_to_txt2img")
    page.wait_for_selector("#txt2img_prompt textarea", state="visible")
    page.wait_for_function(
        "document.querySelector('#txt2img_prompt textarea').value === 'a red circle on a blue background'"
    )
    assert page.input_value("#txt2img_seed input") == str(seed)
    assert float(page.input_value("#txt2img_late_cfg input")) == 2.0
    context.close()


def test_extension_tabs_and_error_panel(browser, server, scratch):
    context, page = open_page(browser, server)
    tab_names = [t.inner_text().strip() for t in page.query_selector_all("[role=tab]")]
    # core tabs first, then the extension's, in load order
    assert tab_names[:6] == ["txt2img", "img2img", "Queue", "PNG Info", "Extensions", "Settings"]
    assert tab_names.index("Test Tab") < tab_names.index("Broken Tab")
    page.click("button#webui_test_tab-button")
    page.wait_for_selector("#webui_test_hello", state="visible")
    page.click("#webui_test_ping")
    page.wait_for_function("document.querySelector('#webui_test_answer textarea').value === 'pong'")
    page.click("button#webui_broken_tab-button")
    panel = page.wait_for_selector("#webui_broken_tab_error", state="visible")
    text = panel.inner_text()
    assert "webui_test_tabs" in text and "builder exploded on purpose" in text
    # what the failing builder created before raising is not on the page
    assert page.query_selector("#webui_test_partial") is None
    screenshot(page, "webui-extension-error-panel")
    # the rest of the UI still works after the failed tab
    page.click("button#tab_extensions-button")
    page.wait_for_function(
        "document.querySelector('#extensions_table').innerText.includes('webui_test_tabs')"
    )
    # install a folder extension through the form (it loads at the next start)
    folder = scratch / "to_install" / "webui_installed_ext"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text('"""An extension installed by the browser test."""\n', "utf-8")
    page.fill("#extensions_source textarea", str(folder))
    page.click("#extensions_install_button")
    page.wait_for_function(
        "document.querySelector('#extensions_message textarea').value.startsWith('installed webui_installed_ext')"
    )
    assert (scratch / "extensions" / "webui_installed_ext" / "__init__.py").is_file()
    page.click("button#tab_settings-button")
    page.wait_for_selector("#setting_webui_test_tabs\\.greeting", state="visible")
    context.close()


def test_chinese_interface(browser, server):
    context, page = open_page(browser, server, locale="zh-CN")
    page.wait_for_selector("button#tab_txt2img-button:has-text('文生图')")
    assert page.inner_text("#txt2img_generate").strip() == "生成"
    assert "提示词" in page.inner_text("#txt2img_prompt")
    assert page.inner_text("button#tab_settings-button").strip() == "设置"
    screenshot(page, "webui-zh-CN")
    context.close()
    # an English browser sees English until the interface language setting says otherwise
    context, page = open_page(browser, server, locale="en-US")
    assert page.inner_text("#txt2img_generate").strip() == "Generate"
    choose_language(page, "zh-CN")
    page.reload()
    page.wait_for_selector("#txt2img_generate:has-text('生成')")
    choose_language(page, "auto")  # back to the browser's language for the other tests
    page.reload()
    page.wait_for_selector("#txt2img_generate:has-text('Generate')")
    context.close()


def test_interrupt_stops_the_running_job(browser, server):
    context, page = open_page(browser, server)
    fill_form(page, server, "an interrupted generation", seed=7, steps=150)
    page.click("#txt2img_generate")
    page.wait_for_function(
        "Number(document.querySelector('#txt2img_progress [role=progressbar]').getAttribute('aria-valuenow')) > 0",
        timeout=GENERATION_TIMEOUT_MS,
        polling=50,
    )
    page.click("#txt2img_interrupt")
    page.wait_for_selector("#txt2img_progress .easel-progress[data-status=interrupted]", timeout=60_000)
    value = int(page.get_attribute("#txt2img_progress [role=progressbar]", "aria-valuenow"))
    assert value < 100, "the job ran to the end despite the interrupt"
    context.close()


def choose_language(page, language: str) -> None:
    page.click("button#tab_settings-button")
    page.click("#setting_ui_language input")
    page.click(f"[role=option]:text-is('{language}')")
    page.click("#settings_save")
    page.wait_for_function("document.querySelector('#settings_message textarea').value.startsWith('saved')")


def test_send_to_img2img_and_generate(browser, server):
    context, page = open_page(browser, server)
    fill_form(page, server, "a purple star", seed=4242, steps=4)
    page.click("#txt2img_generate")
    wait_for_result(page)
    page.click("#txt2img_send_to_img2img")
    page.wait_for_selector("#img2img_init_image img", state="visible")
    assert page.input_value("#img2img_prompt textarea") == "a purple star"
    assert page.input_value("#img2img_seed input") == "4242"
    page.click("#img2img_generate")
    page.wait_for_selector("#img2img_gallery img", timeout=GENERATION_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelector('#img2img_info textarea').value.includes('Denoising strength')"
    )
    info = page.input_value("#img2img_info textarea")
    assert "a purple star" in info and "Seed: 4242" in info
    # all images of the result as one zip
    page.click("#img2img_download_zip")
    page.wait_for_function("document.querySelector('#img2img_download')?.innerText.includes('.zip')")
    screenshot(page, "webui-img2img")
    context.close()


def test_hires_fix_from_the_accordion(browser, server):
    context, page = open_page(browser, server)
    fill_form(page, server, "a blue circle", seed=77, steps=4)
    page.click("#txt2img_hires button")  # open the accordion
    page.check("#txt2img_enable_hr input[type=checkbox]")
    set_number(page, "#txt2img_hr_scale input[type=number]", 1.5)
    set_number(page, "#txt2img_hr_steps input[type=number]", 3)
    page.click("#txt2img_generate")
    info = wait_for_result(page)
    assert "Hires upscale: 1.5" in info and "Hires steps: 3" in info and "Hires upscaler: Latent" in info
    assert "Size: 128x128" in info  # the infotext keeps the first pass's size, as A1111's
    saved = max(server.data_dir.joinpath("outputs").rglob("*.png"), key=lambda p: p.stat().st_mtime)
    from PIL import Image

    with Image.open(saved) as image:
        assert image.size == (192, 192)
    # a scale the engine refuses: the error names the field, no job is queued
    set_number(page, "#txt2img_hr_scale input[type=number]", 1.01)
    page.fill("#txt2img_late_cfg input", "very")
    page.click("#txt2img_generate")
    page.wait_for_selector("text=late_cfg_scale", timeout=30_000)
    screenshot(page, "webui-hires")
    context.close()


def test_two_sessions_generate_at_once(browser, server):
    # the second session is a Chinese browser: its server-built progress label is Chinese
    sessions = [open_page(browser, server), open_page(browser, server, locale="zh-CN")]
    seeds = (1111, 2222)
    prompts = ("a green square", "a yellow triangle")
    for (_, page), prompt, seed in zip(sessions, prompts, seeds, strict=True):
        fill_form(page, server, prompt, seed=seed, steps=4)
    for _, page in sessions:
        page.click("#txt2img_generate")
    for index, ((context, page), prompt, seed) in enumerate(zip(sessions, prompts, seeds, strict=True)):
        info = wait_for_result(page)
        assert f"Seed: {seed}" in info
        assert prompt in info
        done_label = page.inner_text("#txt2img_progress .label")
        assert done_label == ("done" if index == 0 else "完成"), done_label
        screenshot(page, f"webui-session-{index + 1}")
        context.close()


def test_every_core_label_is_translatable(server):
    """Labels, buttons and tab titles of the core tabs are i18n keys (the frontend
    translates them), never plain English strings."""
    import json
    import urllib.request

    from ui.i18n import TEXTS

    with urllib.request.urlopen(server.url + "config", timeout=30) as response:
        config = json.load(response)
    components = {c["id"]: c for c in config["components"]}
    skipped = set()  # extension tabs and extension settings: the extension's own texts

    def skip_subtree(node):
        skipped.add(node["id"])
        for child in node.get("children", []):
            skip_subtree(child)

    def walk(node):
        props = components.get(node["id"], {}).get("props", {})
        elem_id = props.get("elem_id") or ""
        kind = components.get(node["id"], {}).get("type")
        if (kind == "tabitem" and not elem_id.startswith("tab_")) or (
            elem_id.startswith("setting_") and elem_id != "setting_ui_language"
        ):
            skip_subtree(node)
            return
        for child in node.get("children", []):
            walk(child)

    walk(config["layout"])
    checked = 0
    for component in config["components"]:
        props = component.get("props", {})
        elem_id = props.get("elem_id") or ""
        if component["id"] in skipped or "_preset_" in elem_id:
            continue  # size presets are numbers
        texts = [props.get("label")]
        if component["type"] in ("button", "tabitem", "markdown"):
            texts.append(props.get("value"))
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                continue
            match = re.search(r"__i18n__(\{.*\})", text)
            assert match, f"{component['type']} #{elem_id}: {text!r} is not translatable"
            assert json.loads(match.group(1))["key"] in TEXTS
            checked += 1
    assert skipped, "the extension tabs were not found in the layout"
    assert checked > 50


def queue_job_ids(page) -> set[str]:
    page.click("button#tab_queue-button")
    page.click("#queue_refresh")
    page.wait_for_function("/[0-9a-f]{32}/.test(document.querySelector('#queue_table').innerText)")
    return set(re.findall(r"\b[0-9a-f]{32}\b", page.inner_text("#queue_table")))


def test_queue_history_survives_a_restart(browser, server, scratch):
    """Last in this module: it stops the module's server."""
    context, page = open_page(browser, server)
    before = queue_job_ids(page)
    context.close()
    assert len(before) >= 4  # the generations of the tests above
    server.process.terminate()
    server.process.wait(timeout=30)
    with running_server(scratch) as restarted:
        context, page = open_page(browser, restarted)
        after = queue_job_ids(page)
        assert before <= after
        screenshot(page, "webui-queue-after-restart")
        context.close()
