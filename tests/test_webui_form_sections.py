"""Form sections in a real headless Chromium against the real server (`easel serve`):

- the ControlNet accordion in txt2img: a unit enabled with an uploaded control image
  (a red circle at the LEFT) steers the demo model against its prompt (RIGHT), judged
  by tools/demo_model/judge.py as in tests/test_controlnet_demo.py, and the image is
  pixel for pixel the one /sdapi/v1 gives for the same sd-webui-controlnet unit;
- the tint fixture (docs/extensions.md's example, tests/fixture_extensions/tint): the
  values set in its accordion arrive in its hook exactly as /sdapi/v1's alwayson_scripts
  deliver them, and both give the same image.

One server for the module (with the tint extension in its extensions folder); each test
opens its own browser context. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.saving import parse_infotext, read_infotext
from tests.webui_server import ARTIFACTS_DIR, DEMO_MODEL, launched_chromium, running_server
from tools.demo_model import judge, scenes

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXTURES = Path(__file__).parent / "fixture_extensions"
GENERATION_TIMEOUT_MS = 180_000
# tests/test_controlnet_demo.py's setting: without ControlNet the demo model puts this
# circle on the right for seeds 1-4, with the left edge map on the left
PROMPT = "a red circle on the right on a blue background"
SEED, STEPS, CFG = 2, 20, 6


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("webui-sections")
    (scratch / "extensions").mkdir()
    shutil.copytree(FIXTURES / "tint", scratch / "extensions" / "tint")
    with running_server(scratch) as running:
        if running.model != DEMO_MODEL:
            pytest.fail("the shipped demo model is missing (models/Stable-diffusion/easel-demo)")
        yield running


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as launched:
        yield launched


def open_page(browser, server):
    context = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url)
    page.wait_for_selector("#txt2img_prompt textarea")
    return context, page


def set_number(page, selector: str, value: float) -> None:
    field = page.locator(selector)
    field.fill(str(value))
    field.press("Enter")
    field.blur()


def fill_form(page, prompt: str, seed: int, steps: int, cfg: float) -> None:
    page.fill("#txt2img_prompt textarea", prompt)
    page.fill("#txt2img_neg_prompt textarea", "")
    # set directly: the size presets follow the model, their buttons are numbered slots
    set_number(page, "#txt2img_width input[type=number]", 128)
    set_number(page, "#txt2img_height input[type=number]", 128)
    set_number(page, "#txt2img_steps input[type=number]", steps)
    set_number(page, "#txt2img_cfg input[type=number]", cfg)
    set_number(page, "#txt2img_seed input", seed)
    assert page.input_value("#txt2img_model input") == DEMO_MODEL


def generate(page, server) -> tuple[Image.Image, str]:
    """Click Generate; the saved image (new under outputs/) and its infotext."""
    before = set(server.data_dir.joinpath("outputs").rglob("*.png"))
    page.click("#txt2img_generate")
    page.wait_for_selector("#txt2img_gallery img", timeout=GENERATION_TIMEOUT_MS)
    page.wait_for_function(
        "document.querySelector('#txt2img_info textarea').value.includes('Seed: ')",
        timeout=GENERATION_TIMEOUT_MS,
    )
    (path,) = set(server.data_dir.joinpath("outputs").rglob("*.png")) - before
    with Image.open(path) as image:
        return image.convert("RGB"), read_infotext(path)


def sdapi_txt2img(server, prompt: str, seed: int, steps: int, cfg: float, scripts: dict) -> dict:
    body = {
        "prompt": prompt, "negative_prompt": "", "seed": seed, "steps": steps, "cfg_scale": cfg,
        "sampler_name": "Euler", "width": 128, "height": 128, "alwayson_scripts": scripts,
        "override_settings": {"sd_model_checkpoint": DEMO_MODEL}, "save_images": False,
    }  # fmt: skip
    request = urllib.request.Request(
        server.url + "sdapi/v1/txt2img",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=GENERATION_TIMEOUT_MS / 1000) as response:
        return json.loads(response.read())


def decoded(answer: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(answer["images"][0]))).convert("RGB")


def screenshot(page, name: str) -> None:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS_DIR / f"{name}.png"), full_page=True)


def test_controlnet_unit_in_the_txt2img_form_conditions_the_image(browser, server, tmp_path):
    scene = scenes.Scene("blue", (scenes.make_shape("circle", "red", "left", "large"),))
    control = scenes.render(scene, 128)
    control_path = tmp_path / "left-circle.png"
    control.save(control_path)
    context, page = open_page(browser, server)
    fill_form(page, PROMPT, SEED, STEPS, CFG)
    assert page.query_selector("button#controlnet_tab-button") is None  # no separate tab any more
    page.click("#txt2img_section_controlnet > button.label-wrap")
    page.set_input_files("#txt2img_controlnet_image_0 input[type=file]", str(control_path))
    page.wait_for_selector("#txt2img_controlnet_image_0 img")
    page.check("#txt2img_controlnet_enabled_0 input[type=checkbox]")
    assert page.input_value("#txt2img_controlnet_model_0 input") == "easel-demo-canny"
    image, infotext = generate(page, server)
    screenshot(page, "webui-controlnet-section")
    context.close()

    assert judge.judge(image).position == "left"  # the edge map decided, not the prompt
    params = parse_infotext(infotext)
    assert params["ControlNet 0"].startswith("Module: canny, Model: easel-demo-canny, Weight: 1")
    assert (params["Sampler"], params["CFG scale"], params["Size-1"]) == ("Euler", "6", "128")
    unit = {"input_image": base64.b64encode(control_path.read_bytes()).decode(), "module": "canny",
            "model": "easel-demo-canny", "weight": 1.0, "resize_mode": "Crop and Resize"}  # fmt: skip
    api = sdapi_txt2img(server, PROMPT, SEED, STEPS, CFG, {"controlnet": {"args": [unit]}})
    assert np.array_equal(np.asarray(decoded(api)), np.asarray(image))  # one path: WebUI = API
    plain = sdapi_txt2img(server, PROMPT, SEED, STEPS, CFG, {})
    assert judge.judge(decoded(plain)).position == "right"  # the prompt alone says right


def test_a_documented_section_sends_what_alwayson_scripts_send(browser, server):
    context, page = open_page(browser, server)
    fill_form(page, "a green square on a white background", seed=7, steps=4, cfg=4)
    page.click("#txt2img_section_tint > button.label-wrap")
    page.check("#txt2img_tint_enabled input[type=checkbox]")
    page.check("#txt2img_tint_color input[value=cool]")
    set_number(page, "#txt2img_tint_strength input[type=number]", 0.5)
    image, infotext = generate(page, server)
    screenshot(page, "webui-tint-section")
    context.close()

    from_webui = json.loads(parse_infotext(infotext)["tint"])  # what the hook received
    assert from_webui == {"args": ["cool", 0.5]}
    api = sdapi_txt2img(server, "a green square on a white background", 7, 4, 4, {"tint": from_webui})
    assert json.loads(api["info"])["extra_generation_params"]["tint"] == from_webui
    assert np.array_equal(np.asarray(decoded(api)), np.asarray(image))
    # and the hook did act: the colour is blended over the untinted image
    plain = decoded(sdapi_txt2img(server, "a green square on a white background", 7, 4, 4, {}))
    expected = Image.blend(plain, Image.new("RGB", plain.size, (60, 140, 255)), 0.5)
    assert np.array_equal(np.asarray(image), np.asarray(expected))
