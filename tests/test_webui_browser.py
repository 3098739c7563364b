"""The WebUI in a real headless Chromium against the real server (`easel serve`).

One server for the module (start-up loads torch, diffusers and Gradio once); each test
opens its own browser context, i.e. its own session. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.webui_server import ARTIFACTS_DIR, launched_chromium, running_server

pytestmark = pytest.mark.browser

GENERATION_TIMEOUT_MS = 180_000
STEPS = 12  # enough steps for the bar to be seen between 0 and 100 %
SEED_IN_INFO = re.compile(r"Seed: (\d+)")

# Records every distinct aria-valuenow of the bar, every preview image source and every
# text of Gradio's own status tracker shown over the result panes ("processing | 1.2s", its
# ETA bar: Easel's bar is the one), from the click until an image
# is in the gallery (polled every 50 ms in the page itself, so short-lived values are not
# missed between Python round trips). A tracker hidden by Gradio has opacity 0.
WATCH_PROGRESS_JS = """
(prefix) => {
  window.__easel_watch = { values: [], previews: [], phases: [], gradio_status: [] };
  const watch = window.__easel_watch;
  const shown = (el) => {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) return false;
    for (let node = el; node; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.opacity === '0' || style.visibility === 'hidden' || style.display === 'none') return false;
    }
    return true;
  };
  const timer = setInterval(() => {
    // over the result panes (a form control's own change event may still be queued on a
    // loaded machine and show its tracker on that control: not what this checks)
    const panes = ['gallery', 'preview', 'info', 'timing', 'progress'].map((p) => `#${prefix}_${p}`).join(', ');
    for (const el of document.querySelectorAll('.progress-text, .meta-text, .meta-text-center, .eta-bar')) {
      const text = el.classList.contains('eta-bar') ? 'eta-bar' : el.textContent.trim();
      if (el.closest(panes) && shown(el) && !watch.gradio_status.includes(text)) watch.gradio_status.push(text);
    }
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
    with launched_chromium() as launched:
        yield launched


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
    page.click("#txt2img_preset_0")  # the demo model's first size: 128x128
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
    assert watch["gradio_status"] == [], f"Gradio's status tracker was shown: {watch['gradio_status']}"
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
    row = f"#queue_table tr[data-job-id='{job_id}']"  # the row shows a short id; the whole one is its key
    page.wait_for_selector(row, timeout=30_000)
    assert page.get_attribute(row, "data-status") == "done"
    assert job_id[:8] in page.inner_text(row)

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
    core_tabs = ["txt2img", "img2img", "Queue", "History", "PNG Info", "Extensions", "Settings"]
    assert tab_names[: len(core_tabs)] == core_tabs
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
    page.click("#settings_section_extensions > button.label-wrap")  # extensions' settings: closed at first
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
    from ui.settings_tab import LANGUAGE_NAMES  # languages are named in their own language

    page.click("button#tab_settings-button")
    page.click("#setting_ui_language input")
    names = {LANGUAGE_NAMES[language], "自动" if language == "auto" else LANGUAGE_NAMES[language]}
    page.click(", ".join(f"[role=option]:text-is('{name}')" for name in names))
    page.click("#settings_save")
    # the reply is in the language just saved (the setting is read after saving)
    page.wait_for_function(
        "/^1 settings changed: ui.language.$|^已更改 1 项设置：ui.language。$/"
        ".test(document.querySelector('#settings_message textarea').value)"
    )


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
    translates them), never plain English strings: a ``TEXTS`` key or an English text of
    the core's localization table (ui/localizations/zh-CN.json)."""
    import json
    import urllib.request

    from ui.i18n import TEXTS
    from ui.localization import load_localizations

    known = set(TEXTS) | set(load_localizations(None).tables["zh-CN"])

    with urllib.request.urlopen(server.url + "config", timeout=30) as response:
        config = json.load(response)
    components = {c["id"]: c for c in config["components"]}
    from ui.form_sections import SECTION_CLASS

    skipped = set()  # extension tabs, settings, form sections and script controls: the extension's own texts

    def skip_subtree(node):
        skipped.add(node["id"])
        for child in node.get("children", []):
            skip_subtree(child)

    def walk(node):
        props = components.get(node["id"], {}).get("props", {})
        elem_id = props.get("elem_id") or ""
        kind = components.get(node["id"], {}).get("type")
        if (
            (kind == "tabitem" and not elem_id.startswith("tab_"))
            or (elem_id.startswith("setting_") and elem_id != "setting_ui_language")
            or SECTION_CLASS in (props.get("elem_classes") or [])  # extensions' form sections
            or elem_id.startswith(("txt2img_script_", "img2img_script_"))  # a script's own controls
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
            assert json.loads(match.group(1))["key"] in known
            checked += 1
    assert skipped, "the extension tabs were not found in the layout"
    assert checked > 50


# Inpainting from the canvas: pixels farther than the mask blur's reach (4 sigma: PIL's
# radius is the Gaussian's sigma, beyond 4 sigma its weight is under 1/255) from the painted
# area must equal the source's exactly; the engine pastes the original back outside the
# blurred mask and the canvas sends its image as PNG (lossless).
INPAINT_BLUR = 4
INPAINT_OUTSIDE_TOLERANCE = 0  # of 255, measured: 0
# "latent noise" at denoising 1 redraws the painted area: most of it changes (the demo model
# draws red again over red, so the mean difference is modest: 11.6 measured)
INPAINT_INSIDE_MIN_MEAN = 5.0
INPAINT_INSIDE_MIN_CHANGED = 0.3  # measured: 63 %


def test_img2img_result_to_inpaint_with_a_drawn_mask(browser, server):
    """txt2img -> img2img -> its result sent to Inpaint; a mask drawn with the mouse on the
    canvas; the result changed only inside it."""
    import numpy as np

    from tests.inpaint_canvas import (
        CANVAS_READY_JS,
        capture,
        grow,
        new_output,
        outputs_in,
        painted_pixels,
        shrink,
    )

    size, folder = 128, server.data_dir / "outputs" / "img2img-images"
    context, page = open_page(browser, server)
    fill_form(page, server, "a red circle", seed=321, steps=4)
    page.click("#txt2img_generate")
    wait_for_result(page)
    page.click("#txt2img_send_to_img2img")
    page.wait_for_selector("#img2img_init_image img", state="visible")
    listed = outputs_in(folder)
    page.click("#img2img_generate")
    page.wait_for_function(
        "document.querySelector('#img2img_info textarea').value.includes('Denoising strength')",
        timeout=GENERATION_TIMEOUT_MS,
    )
    source = new_output(folder, listed)
    page.click("#img2img_send_to_inpaint")
    page.wait_for_function(CANVAS_READY_JS, arg="img2img_inpaint")
    assert page.is_visible("#img2img_inpaint_options")  # the inpainting options come with the mode
    assert page.input_value("#img2img_seed input") == "321"  # and the image's parameters

    # a few strokes with a small brush, with the mouse
    editor = page.locator("#img2img_inpaint")
    canvas = editor.locator("canvas").first
    zoom = float(re.search(r"(\d+)%", editor.inner_text()).group(1)) / 100
    editor.locator("button[aria-label=Brush]").click()
    editor.locator("button[aria-label='Brush Size']").click()
    editor.locator("input[type=range]").fill("6")
    editor.locator("button[aria-label='Brush Size']").click()
    page.mouse.move(0, 0)
    page.wait_for_timeout(300)
    before = capture(canvas)
    box = canvas.bounding_box()
    centre_x, centre_y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for y in range(48, 73, 6):
        page.mouse.move(centre_x + (44 - size / 2) * zoom, centre_y + (y - size / 2) * zoom)
        page.mouse.down()
        page.mouse.move(centre_x + (80 - size / 2) * zoom, centre_y + (y - size / 2) * zoom, steps=8)
        page.mouse.up()
    page.mouse.move(0, 0)
    page.wait_for_timeout(300)
    painted = painted_pixels(before, capture(canvas), zoom, size)
    assert 400 < painted.sum() < size * size // 2, painted.sum()

    set_number(page, "#img2img_mask_blur input[type=number]", INPAINT_BLUR)
    page.click("#img2img_masked_content label:has-text('latent noise')")
    set_number(page, "#img2img_denoising input[type=number]", 1)
    listed = outputs_in(folder)
    page.click("#img2img_generate")
    page.wait_for_function(
        f"document.querySelector('#img2img_info textarea').value.includes('Mask blur: {INPAINT_BLUR}')",
        timeout=GENERATION_TIMEOUT_MS,
    )
    result = new_output(folder, listed)
    screenshot(page, "webui-inpaint")
    context.close()

    assert result.size == source.size == (size, size)
    difference = np.abs(np.asarray(result).astype(int) - np.asarray(source).astype(int)).max(axis=2)
    outside, core = ~grow(painted, 4 * INPAINT_BLUR), shrink(painted, 2)
    assert outside.sum() > 2000 and core.sum() > 100, (outside.sum(), core.sum())
    outside_max, inside_mean = int(difference[outside].max()), float(difference[core].mean())
    inside_changed = float((difference[core] > 0).mean())
    print(
        f"inpaint: painted {int(painted.sum())} px; {int(outside.sum())} px outside: max diff {outside_max}; "
        f"{int(core.sum())} px inside: mean diff {inside_mean:.1f}, {inside_changed:.0%} changed"
    )
    assert outside_max <= INPAINT_OUTSIDE_TOLERANCE
    assert inside_mean > INPAINT_INSIDE_MIN_MEAN and inside_changed > INPAINT_INSIDE_MIN_CHANGED


def test_send_to_extras_saves_and_shows_the_whole_image(browser, server):
    """A txt2img result sent to Extras is upscaled, saved as A1111 names it
    (outputs/extras-images/NNNNN.png) and shown whole (object-fit: contain, not cropped)."""
    from PIL import Image

    context, page = open_page(browser, server)
    fill_form(page, server, "a blue square", seed=99, steps=4)
    page.click("#txt2img_generate")
    wait_for_result(page)
    page.click("#txt2img_send_to_extras")
    page.wait_for_selector("#extras_image img", state="visible")
    page.click("#extras_run")
    page.wait_for_function("document.querySelector('#extras_info')?.innerText.includes('saved')")
    info = page.inner_text("#extras_info")
    (name,) = re.findall(r"\d{5}\.png", info)
    with Image.open(server.data_dir / "outputs" / "extras-images" / name) as saved:
        assert saved.size == (256, 256)  # the 128 px result at the default scale 2
        assert "Seed: 99" in saved.text["parameters"]  # the source's parameters kept
        assert saved.text["extras"].startswith("Postprocess upscale by: 2.0, Postprocess upscaler: ")
    fit = page.evaluate("getComputedStyle(document.querySelector('#extras_result img')).objectFit")
    assert fit == "contain"
    screenshot(page, "webui-extras")
    context.close()


def test_xyz_plot_from_the_txt2img_form_makes_a_labelled_grid_and_four_images(browser, server):
    """The txt2img form's "Script" dropdown (A1111's place for X/Y/Z plot): seed x CFG,
    2x2, one job; the grid (first) and the four cells in the gallery, the grid saved in
    txt2img-grids with the plot in its infotext, each cell as an ordinary image."""
    from PIL import Image

    context, page = open_page(browser, server)
    fill_form(page, server, "a small green star at the top left, white background", seed=-1, steps=4)
    set_number(page, "#txt2img_width input[type=number]", 64)
    set_number(page, "#txt2img_height input[type=number]", 64)
    assert not page.is_visible("#txt2img_xyz_x_values")  # the plot's controls show once it is chosen
    page.click("#txt2img_script input")
    page.click("[role=option]:text-is('X/Y/Z plot')")
    page.wait_for_selector("#txt2img_xyz_x_values textarea", state="visible")
    page.fill("#txt2img_xyz_x_values textarea", "1, 2")  # X type: Seed (the default)
    page.fill("#txt2img_xyz_y_values textarea", "3, 7")  # Y type: CFG Scale (the form's default)
    outputs = server.data_dir / "outputs"
    grids, cells = outputs / "txt2img-grids", outputs / "txt2img-images"
    before = set(outputs.rglob("*.png")) if outputs.is_dir() else set()
    page.click("#txt2img_generate")
    page.wait_for_function(
        "document.querySelector('#txt2img_info textarea').value.includes('Script: X/Y/Z plot')",
        timeout=GENERATION_TIMEOUT_MS,
    )
    info = page.input_value("#txt2img_info textarea")  # the grid's infotext (the first image)
    assert 'X Values: "1, 2"' in info and 'Y Values: "3, 7"' in info
    page.wait_for_function("document.querySelectorAll('#txt2img_gallery img').length >= 5")
    shot = screenshot(page, "webui-xyz-plot")
    shots = Path("/tmp/shots-xyzform")
    shots.mkdir(exist_ok=True)
    (shots / "txt2img-xyz-grid.png").write_bytes(shot.read_bytes())
    context.close()
    new = set(outputs.rglob("*.png")) - before
    (grid_path,) = [path for path in new if path.is_relative_to(grids)]
    assert grid_path.name.startswith("xyz_grid-")
    with Image.open(grid_path) as grid:
        assert "Script: X/Y/Z plot" in grid.info["parameters"]
        # two 64-pixel columns after the row labels' margin (3/4 of a cell), two rows under the labels
        assert grid.width == 48 + 2 * 64 and 2 * 64 < grid.height < 3 * 64
    cell_texts = []
    for path in sorted(p for p in new if p.is_relative_to(cells)):
        with Image.open(path) as cell:
            cell_texts.append(cell.info["parameters"])
    assert len(cell_texts) == 4
    assert sorted(int(re.search(r"Seed: (\d+)", t).group(1)) for t in cell_texts) == [1, 1, 2, 2]
    assert sorted(float(re.search(r"CFG scale: ([\d.]+)", t).group(1)) for t in cell_texts) == [3, 3, 7, 7]


def test_jpeg_output_carries_its_infotext_into_png_info(browser, server):
    """Issue #25: with samples_format "jpg" saved in the Settings tab, the next image is a
    JPEG whose EXIF UserComment holds the parameters (A1111's place), and PNG Info reads
    them back; the quick-settings bar shows checkpoint, VAE and clip skip; a size far above
    the model's own gets a hint."""
    from PIL import Image

    from core.saving.writer import read_infotext

    context, page = open_page(browser, server)
    for key in ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers"):
        assert page.is_visible(f"#setting_quick_{key}"), key
    assert not page.is_visible("#setting_quick_samples_format")  # not in quicksettings_list
    try:
        page.click("button#tab_settings-button")
        page.click("#setting_samples_format input")
        page.click("[role=option]:text-is('jpg')")
        page.click("#settings_save")
        page.wait_for_function(
            "document.querySelector('#settings_message textarea').value === '1 settings changed: samples_format.'"
        )
        screenshot(page, "webui-settings")
        page.click("button#tab_txt2img-button")
        fill_form(page, server, "a small green star at the top left, white background", seed=77, steps=4)
        set_number(page, "#txt2img_width input[type=number]", 512)
        page.wait_for_function("document.querySelector('#txt2img_size_hint').innerText.includes('far above')")
        page.click("#txt2img_preset_0")
        page.wait_for_function("document.querySelector('#txt2img_size_hint').innerText.trim() === ''")
        page.click("#txt2img_generate")
        info = wait_for_result(page)
        saved = sorted(server.data_dir.joinpath("outputs").rglob("*.jpg"), key=lambda p: p.stat().st_mtime)
        assert saved, "no JPEG written under outputs/"
        with Image.open(saved[-1]) as image:
            assert image.format == "JPEG"
        assert read_infotext(saved[-1]) == info and "Seed: 77" in info
        page.click("button#tab_png_info-button")
        page.set_input_files("#png_info_image input[type=file]", str(saved[-1]))
        page.wait_for_function(
            "document.querySelector('#png_info_parameters textarea').value.includes('Seed: 77')"
        )
        assert page.input_value("#png_info_parameters textarea") == info
    finally:
        page.click("button#tab_settings-button")
        page.click("#setting_samples_format input")
        page.click("[role=option]:text-is('png')")
        page.click("#settings_save")
        page.wait_for_function(
            "document.querySelector('#settings_message textarea').value === '1 settings changed: samples_format.'"
        )
        context.close()


def queue_job_ids(page) -> set[str]:
    page.click("button#tab_queue-button")
    page.click("#queue_refresh")
    page.wait_for_selector("#queue_table tr[data-job-id]")
    return set(
        page.eval_on_selector_all("#queue_table tr[data-job-id]", "rows => rows.map(r => r.dataset.jobId)")
    )


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
