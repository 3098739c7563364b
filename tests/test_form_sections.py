"""Form sections (``ui_form_sections``, API 1.9): extensions' accordions in the txt2img and
img2img forms, whose values become ``request.extension_args[<name>]`` in the shape
``/sdapi/v1``'s ``alwayson_scripts`` gives.

The tint fixture (tests/fixture_extensions/tint) is docs/extensions.md's example, word for
word; here its values go through ``plugin_api.testing.form_section_args`` (the WebUI's own
mapping) and through ``/sdapi/v1`` to its hook. The WebUI in a real browser:
tests/test_webui_form_sections.py.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from plugin_api import FormSection, InvalidRequest
from plugin_api.form_sections import section_extension_args
from plugin_api.testing import form_section_args, serve
from plugin_api.types import GenerationRequest
from ui.form_sections import FormSections, apply_form_sections, build_form_section

ROOT = Path(__file__).resolve().parents[1]
TINT = ROOT / "tests" / "fixture_extensions" / "tint" / "__init__.py"


def load_tint():
    spec = importlib.util.spec_from_file_location("tint", TINT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_fixture_is_the_documented_example_word_for_word():
    doc = (ROOT / "docs" / "extensions.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert TINT.read_text("utf-8") in blocks


def test_section_values_map_to_alwayson_args():
    tint = load_tint()
    assert form_section_args(tint, [True, "cool", 0.5]) == {"args": ["cool", 0.5]}
    assert form_section_args(tint, [False, "cool", 0.5]) is None
    assert form_section_args(tint) is None  # the initial values: unticked
    with pytest.raises(ValueError, match="3 components, got 2 values"):
        form_section_args(tint, [True, "cool"])
    # tint is for both forms; one limited to txt2img is not offered to img2img
    assert form_section_args(tint, [True, "warm", 1], tab="img2img") == {"args": ["warm", 1]}


def test_images_become_base64_png_and_dicts_stay_native():
    image = Image.new("RGB", (8, 4), (10, 200, 30))
    section = FormSection(
        title="t", build=lambda: None, to_args=lambda values: {"units": [{"image": values[0]}]}
    )
    args = section_extension_args(section, [image], "ext")
    decoded = Image.open(io.BytesIO(base64.b64decode(args["units"][0]["image"])))
    assert np.array_equal(np.asarray(decoded.convert("RGB")), np.asarray(image))
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    listed = section_extension_args(FormSection(title="t", build=lambda: None), [array, (1, 2)], "ext")
    assert isinstance(listed["args"][0], str) and listed["args"][1] == [1, 2]
    json.dumps(listed)  # only JSON types, as a client's body
    with pytest.raises(TypeError, match=re.escape("extension_args.ext.args.0")):
        section_extension_args(FormSection(title="t", build=lambda: None), [object()], "ext")
    with pytest.raises(TypeError, match="returned a str"):
        section_extension_args(FormSection(title="t", build=lambda: None, to_args=lambda v: "x"), [], "ext")


def _built(sections: list[tuple[str, FormSection]], family: str | None = "sd15"):
    with gr.Blocks() as blocks:
        built = FormSections([build_form_section("txt2img", ext, sec, None, family) for ext, sec in sections])
    return blocks, built


def test_a_failing_build_is_an_error_panel_and_the_others_keep_their_slices():
    def broken():
        box = gr.Textbox(elem_id="half_built")
        gr.Button("never wired").click(lambda: "x", outputs=[box])
        raise RuntimeError("section exploded")

    def two(tab):
        return [gr.Checkbox(True, elem_id=f"{tab}_two_a"), gr.Number(3, elem_id=f"{tab}_two_b")]

    blocks, built = _built(
        [
            ("one", FormSection(title="One", build=lambda: gr.Slider(0, 1, value=0.5))),
            ("bad", FormSection(title="Bad", build=broken)),
            ("two", FormSection(title="Two", build=two, to_args=lambda v: {"on": v[0], "n": v[1]})),
        ]
    )
    assert [b.error for b in built.sections] == [None, "RuntimeError: section exploded", None]
    config = blocks.get_config_file()
    ids = {c["props"].get("elem_id") for c in config["components"]}
    assert "half_built" not in ids and {"txt2img_section_bad_error", "txt2img_two_a"} <= ids
    assert config["dependencies"] == []  # the failed build's click handler is gone
    panel = next(c for c in config["components"] if c["props"].get("elem_id") == "txt2img_section_bad_error")
    assert "bad" in panel["props"]["value"] and "section exploded" in panel["props"]["value"]
    assert len(built.inputs()) == 3  # the failed section has none
    request = GenerationRequest()
    apply_form_sections(built, request, (0.25, False, 7), "sd15")
    assert request.extension_args == {"one": {"args": [0.25]}, "two": {"on": False, "n": 7}}


def test_a_section_shows_and_sends_for_its_families_only():
    section = FormSection(title="CN", build=lambda: gr.Checkbox(True), families=("sd15", "sdxl"))
    _, built = _built([("cn", section)], family="zimage")
    assert built.sections[0].accordion.visible is False
    request = GenerationRequest()
    apply_form_sections(built, request, (True,), "zimage")
    assert request.extension_args == {}  # hidden: nothing sent
    apply_form_sections(built, request, (True,), "sdxl")
    assert request.extension_args == {"cn": {"args": [True]}}


def test_a_refusal_in_to_args_is_shown_to_the_user():
    def refuse(values):
        raise InvalidRequest("extension_args.picky.args.0", "choose a model")

    _, built = _built([("picky", FormSection(title="Picky", build=lambda: gr.Textbox(""), to_args=refuse))])
    with pytest.raises(gr.Error, match=re.escape("Picky: extension_args.picky.args.0: choose a model")):
        apply_form_sections(built, GenerationRequest(), ("",), "sd15")


@pytest.mark.slow  # a server with a queue and a worker
def test_the_hook_gets_the_same_args_from_the_api(tmp_path, tiny_sd15_dir):
    """/sdapi/v1's alwayson_scripts with the section's args: the hook receives exactly the
    section's mapping, and the image is the untinted one blended as the args say."""
    tint = load_tint()
    args = form_section_args(tint, [True, "cool", 0.5])
    body = {"prompt": "a cat", "seed": 5, "steps": 2, "width": 64, "height": 64}
    with serve([tint], tmp_path, model_dir=tiny_sd15_dir) as client:
        plain = client.post("/sdapi/v1/txt2img", json=body)
        tinted = client.post("/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {"Tint": args}})
        bad = client.post(
            "/sdapi/v1/txt2img", json={**body, "alwayson_scripts": {"tint": {"args": ["cool", 2]}}}
        )
    assert plain.status_code == tinted.status_code == 200, tinted.text
    info = json.loads(tinted.json()["info"])
    assert info["extra_generation_params"]["tint"] == args  # what arrived in after_sample
    assert bad.status_code == 422 and "extension_args.tint.args.1" in bad.text

    def decode(response):
        data = base64.b64decode(response.json()["images"][0])
        return Image.open(io.BytesIO(data)).convert("RGB")

    expected = Image.blend(decode(plain), Image.new("RGB", (64, 64), tint.COLORS["cool"]), 0.5)
    assert np.array_equal(np.asarray(decode(tinted)), np.asarray(expected))


SECTIONS_EXTENSION = """
from plugin_api import FormSection, hookimpl


@hookimpl
def ui_form_sections(tab):
    both = FormSection(title="Both " + tab, build=lambda: None)
    return [FormSection(title="Only img2img", build=lambda: None, tabs=("img2img",)), both,
            FormSection(title="A second one", build=lambda: None), "not a section"]
"""


def test_the_host_collects_one_section_per_extension_and_form(make_host, tmp_path):
    (tmp_path / "sections_a.py").write_text(SECTIONS_EXTENSION)
    (tmp_path / "sections_b.py").write_text(
        "from plugin_api import hookimpl\n\n@hookimpl\ndef ui_form_sections():\n    raise RuntimeError('no')\n"
    )
    host = make_host(extension_dirs=[tmp_path], safe_mode=False)
    mine = lambda tab: [(e, s.title) for e, s in host.ui_form_sections(tab) if e.startswith("sections_")]  # noqa: E731
    assert mine("txt2img") == [("sections_a", "Both txt2img")]
    assert mine("img2img") == [("sections_a", "Only img2img")]  # the first for that form wins
    assert host.extensions.records["sections_b"].failures[0].hook == "ui_form_sections"


def test_the_bundled_sections_send_what_their_extensions_read():
    """zh_prompt's mode and ESRGAN's post-upscale: the args are A1111's positional ones,
    which the extensions' own request parsers take."""
    import extensions.esrgan as esrgan
    import extensions.zh_prompt as zh_prompt

    assert form_section_args(zh_prompt) is None  # "Setting": the zh_prompt.mode setting decides
    args = form_section_args(zh_prompt, ["translate_keep"], tab="img2img")
    assert args == {"args": ["translate_keep"]}
    request = GenerationRequest(extension_args={"zh_prompt": args})
    zh_prompt.validate_request(request, "sd15")
    assert zh_prompt.requested_mode(request) == "translate_keep"

    assert form_section_args(esrgan, [False, "Lanczos", 2]) is None
    args = form_section_args(esrgan, [True, "Lanczos", 1.5])
    assert args == {"args": ["Lanczos", 1.5]}
    assert esrgan.post_sample_request(args) == ("Lanczos", 1.5)
