"""The Chinese WebUI, walked in a real Chromium (locale zh-CN) against the real server.

Every tab (core, bundled extensions, a fixture extension that ships its own
``localizations/zh-CN.json``) is opened, with its accordions and inner tabs, and every
dropdown's choices; every visible text (text nodes, placeholders, dropdown values,
table headers) must be Chinese, or a name on the allow-list: the names the server itself
lists (models, samplers, upscalers, preprocessors, extensions...), proper names and
acronyms kept untranslated in Chinese A1111 localizations (CFG, VAE, LoRA...), units,
numbers, paths and code. The failure lists each English text exactly as it appears, so
adding it to a localizations/zh-CN.json is a copy and paste.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from tests.webui_server import launched_chromium, running_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS_DIR = Path("/tmp/shots-zhui")

# A user extension with a tab and a setting in English and its own Chinese table.
FIXTURE_EXTENSION = """
import gradio as gr
from plugin_api import hookimpl
from plugin_api.types import SettingSpec, Tab


def _tab():
    gr.Markdown("Greetings from the fixture extension", elem_id="zh_fixture_hello")
    with gr.Row():
        gr.Slider(0, 10, value=3, label="Fixture strength", info="How strong the fixture is", elem_id="zh_fixture_strength")
        gr.Radio(["Gentle", "Bold"], value="Gentle", label="Fixture style", elem_id="zh_fixture_style")
    gr.Button("Run the fixture", elem_id="zh_fixture_run")


@hookimpl
def ui_tabs():
    return [Tab(title="Fixture tab", build=_tab, elem_id="zh_fixture_tab")]


@hookimpl
def register_settings(register):
    register(SettingSpec(key="zh_fixture.greeting", default="hello", label="Fixture greeting",
                         description="What the fixture says"))
"""
FIXTURE_TABLE = {
    "Greetings from the fixture extension": "来自测试扩展的问候",
    "Fixture strength": "测试强度",
    "How strong the fixture is": "测试扩展的强度",
    "Fixture style": "测试风格",
    "Gentle": "温和",
    "Bold": "大胆",
    "Run the fixture": "运行测试扩展",
    "Fixture tab": "测试标签页",
    "Fixture greeting": "测试问候语",
    "What the fixture says": "测试扩展说的话",
}

# Proper names, acronyms and units that Chinese A1111/Forge localizations keep as they are.
ALLOWED_WORDS = {
    # model kinds, formats, techniques
    "SD",
    "SDXL",
    "VAE",
    "CFG",
    "LoRA",
    "ControlNet",
    "ESRGAN",
    "Real-ESRGAN",
    "CLIP",
    "BLIP",
    "Z-Image",
    "Flux",
    # "Stable Diffusion" is a model's name: A1111's zh-CN keeps it
    "Stable",
    "Diffusion",
    "TAESD",
    "taesd",
    "taesdxl",
    "taef1",
    "PNG",
    "JPEG",
    "EXIF",
    "WebP",
    "JSON",
    "API",
    "URL",
    "git",
    "zip",
    "ID",
    "A1111",
    "MarianMT",
    "NLLB",
    "TAB",
    "UNet",
    "DeepCache",
    "deepcache",
    "fbcache",
    "magcache",
    "taylorseer",
    "Lanczos",
    "Karras",
    "DDIM",
    "Beta",
    "Align",
    "Your",
    "Steps",
    "AYS",
    "KL",
    "SGM",
    "Euler",
    "safetensors",
    "pickle",
    "diffusers",
    "Easel",
    "Gradio",
    "WebUI",
    # model family ids (the card browser's badges, `easel models`)
    "sd15",
    "sdxl",
    "zimage",
    # devices
    "cpu",
    "cuda",
    "CPU",
    "GPU",
    "mps",
    # units
    "s",
    "px",
    "MB",
    "GB",
    "KB",
    "min",
    "x",
    "it",
}
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'+.-]*")
# a run of text between spaces and Chinese characters or punctuation
CHUNK = re.compile(r"[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")
# paths, file names, identifiers (setting keys, API fields), <placeholders>, the [tags]
# of file name patterns and command-line options (--format) are names
IDENTIFIER_LIKE = re.compile(r"[_/<>\\\[\]]|\w\.\w|^--\w")

# Visible texts of the page: text nodes (not in code, editors or data cells), placeholders,
# the shown value of dropdowns; each with the nearest elem_id for the report.
COLLECT_JS = r"""
() => {
  const visible = (el) => {
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none' && st.opacity !== '0';
  };
  const where = (el) => { const owner = el.closest('[id]'); return owner ? owner.id : el.tagName.toLowerCase(); };
  const data = 'script, style, textarea, code, pre, .cm-editor, .codemirror-wrapper, td, .body-cell';
  const out = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.nodeValue.trim();
    const el = node.parentElement;
    if (!text || !el || !visible(el)) continue;
    const cell = el.closest('td, .body-cell');
    // data cells are skipped, except those of columns marked as UI words (translated_columns)
    const column = cell && cell.getAttribute('data-col');
    const marked = column !== null && cell && cell.closest(`[class~="easel-translate-col-${column}"]`);
    if (el.closest(data) && !marked) continue;
    out.push([text, where(el)]);
  }
  for (const el of document.querySelectorAll('input[placeholder], textarea[placeholder]')) {
    if (visible(el) && el.placeholder.trim()) out.push([el.placeholder.trim(), where(el) + ' (placeholder)']);
  }
  for (const el of document.querySelectorAll('input[role=listbox]')) {
    if (visible(el) && el.value.trim()) out.push([el.value.trim(), where(el) + ' (dropdown value)']);
  }
  return out;
}
"""


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def listed_names(base: str) -> set[str]:
    """Everything the server lists by name: shown as is in any language."""
    names: set[str] = set()
    sources = [
        ("sdapi/v1/sd-models", ("model_name", "title")),
        ("sdapi/v1/samplers", ("name",)),
        ("sdapi/v1/upscalers", ("name",)),
        ("sdapi/v1/latent-upscale-modes", ("name",)),
        ("sdapi/v1/sd-vae", ("model_name",)),
        ("sdapi/v1/loras", ("name",)),
        ("sdapi/v1/prompt-styles", ("name",)),
        ("api/v1/extensions", ("name",)),
    ]
    for route, fields in sources:
        for item in _get_json(base + route):
            names.update(str(item[f]) for f in fields if item.get(f))
    for route in ("controlnet/model_list", "controlnet/module_list"):
        payload = _get_json(base + route)
        for values in payload.values():
            names.update(str(v) for v in values)
    return names


# Gradio's own ImageEditor texts: its zh-CN table (gradio 6.31) has no image_editor entries
GRADIO_UNTRANSLATED = {"Upload an image", "select the draw tool to start"}


def english_leftovers(text: str, names: set[str]) -> bool:
    """Whether ``text`` still holds an English word that is neither a name nor allowed."""
    if text in names or text in GRADIO_UNTRANSLATED:
        return False
    text = CHUNK.sub(lambda chunk: " " if IDENTIFIER_LIKE.search(chunk.group()) else chunk.group(), text)
    for name in sorted(names, key=len, reverse=True):
        if len(name) > 1 and name in text:
            text = text.replace(name, " ")
    words = (word.rstrip(".'-") for word in LATIN_WORD.findall(text))
    # a single letter is a symbol (threshold A, 4x)
    return any(len(word) > 1 and word not in ALLOWED_WORDS for word in words)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("zh-walk")
    extension = scratch / "extensions" / "zh_fixture"
    (extension / "localizations").mkdir(parents=True)
    (extension / "__init__.py").write_text(FIXTURE_EXTENSION, "utf-8")
    (extension / "localizations" / "zh-CN.json").write_text(
        json.dumps(FIXTURE_TABLE, ensure_ascii=False), "utf-8"
    )
    # a user extension whose table is not flat: skipped and reported, the UI still starts
    broken = scratch / "extensions" / "zh_broken_table"
    (broken / "localizations").mkdir(parents=True)
    (broken / "__init__.py").write_text('"""An extension with a malformed localization."""\n', "utf-8")
    (broken / "localizations" / "zh-CN.json").write_text('{"Run": {"nested": "不行"}}', "utf-8")
    with running_server(scratch, test_extension=False) as running:
        yield running


@pytest.fixture(scope="module")
def page(server):
    with launched_chromium() as browser:
        context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
        opened = context.new_page()
        opened.set_default_timeout(30_000)
        opened.goto(server.url)
        opened.wait_for_selector("#txt2img_prompt textarea")
        yield opened


def _open_everything(page) -> list[list[str]]:
    """Open the shown tab's accordions and inner tabs and its dropdowns; the texts seen."""
    seen: list[list[str]] = []
    for _ in range(3):  # an accordion may hold another
        closed = [b for b in page.query_selector_all(".label-wrap:not(.open)") if b.is_visible()]
        if not closed:
            break
        for button in closed:
            button.click()
    page.wait_for_timeout(200)
    inner_tabs = [t for t in page.query_selector_all("[role=tabpanel] [role=tab]") if t.is_visible()]
    for tab in inner_tabs or [None]:
        if tab is not None:
            tab.click()
            page.wait_for_timeout(150)
        seen += page.evaluate(COLLECT_JS)
        for dropdown in [d for d in page.query_selector_all("input[role=listbox]") if d.is_visible()]:
            dropdown.click()
            page.wait_for_timeout(120)
            options = [
                o.inner_text().strip() for o in page.query_selector_all("[role=option]") if o.is_visible()
            ]
            owner = dropdown.evaluate("el => (el.closest('[id]') || {}).id || ''")
            seen += [[text, f"{owner} (choice)"] for text in options if text]
            page.keyboard.press("Escape")
            dropdown.evaluate("el => el.blur()")
    return seen


def open_accordion(page, elem_id: str) -> None:
    """Open accordion ``elem_id`` unless it is open (the walk opens every accordion it sees:
    a plain click would close it again)."""
    header = page.locator(f"#{elem_id} > button.label-wrap")
    if "open" not in (header.get_attribute("class") or "").split():
        header.click()


def test_every_tab_is_chinese(server, page):
    started = time.monotonic()
    names = listed_names(server.url)
    tab_ids = []
    for tab in page.query_selector_all("[role=tab]"):
        tab_id = tab.get_attribute("id") or ""
        if tab_id.endswith("-button") and tab_id not in tab_ids:
            tab_ids.append(tab_id)
    assert {"tab_txt2img-button", "zh_fixture_tab-button"} <= set(tab_ids), tab_ids
    found: dict[str, str] = {}
    for tab_id in tab_ids:
        button = page.query_selector(f"button#{tab_id}")
        if button is None or not button.is_visible():
            continue  # an inner tab: opened with its parent
        button.click()
        page.wait_for_timeout(400)
        if tab_id == "tab_txt2img-button":
            SHOTS_DIR.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS_DIR / "zh-txt2img.png"), full_page=True)
        for text, where in _open_everything(page):
            if english_leftovers(text, names):
                found.setdefault(text, f"{tab_id.removesuffix('-button')} #{where}")
    elapsed = time.monotonic() - started
    print(f"zh walk: {len(tab_ids)} tabs in {elapsed:.1f} s")
    listing = "\n".join(
        f'  {json.dumps(text, ensure_ascii=False)}: "",  // {where}' for text, where in found.items()
    )
    assert not found, (
        f"{len(found)} English texts in the zh-CN WebUI (add them to a localizations/zh-CN.json):\n{listing}"
    )


def test_extension_tables_and_bad_files(server, page):
    page.click("button#zh_fixture_tab-button")
    page.wait_for_selector("#zh_fixture_run:has-text('运行测试扩展')")
    assert "测试强度" in page.inner_text("#zh_fixture_strength")
    page.click("button#tab_settings-button")
    label = page.inner_text("#setting_zh_fixture\\.greeting")
    assert "测试问候语 (zh_fixture.greeting)" in label and "测试扩展说的话" in label, label
    # table headers, and the columns of UI words (state, enabled, source), are translated
    open_accordion(page, "settings_host_section")  # the host's read-only block is collapsed
    page.wait_for_function("document.querySelector('#settings_host').innerText.includes('数据目录')")
    page.click("button#tab_extensions-button")
    page.wait_for_function(
        "['名称', '已加载', '随附', '是'].every(w => document.querySelector('#extensions_table').innerText.includes(w))"
    )
    table = page.inner_text("#extensions_table")
    assert "loaded" not in table and "bundled" not in table and "zh_fixture" in table, table
    problems = page.input_value("#extensions_localization_problems textarea")
    assert "zh_broken_table" in problems and "zh-CN.json" in problems and "not a string" in problems, problems


def test_messages_speak_chinese(server, page):
    """Texts built by handlers: the core's (Extensions tab) and an extension's (ControlNet,
    through plugin_api.localization.translate)."""
    page.click("button#tab_extensions-button")
    page.fill("#extensions_source textarea", "")
    page.click("#extensions_install_button")  # nothing to install: say so
    page.wait_for_function(
        "document.querySelector('#extensions_message textarea').value === '请输入 git 地址、文件夹或 zip 文件'"
    )
    page.click("button#tab_txt2img-button")
    open_accordion(page, "txt2img_section_controlnet")  # a form section, closed at first
    page.click("button#txt2img_controlnet_unit_0-button")  # the walk left the last unit's tab shown
    page.click("#txt2img_controlnet_preview_0")  # the ControlNet section, unit 0, no image
    page.wait_for_selector("#txt2img_controlnet_unit_0 :text('请先上传一张控制图像。')")
