"""Interrogators: choosing one by name or A1111 alias, the demo world's captions on
rendered demo scenes (the renderer is the reference), and BLIP through transformers on
a tiny model built from a config."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from PIL import Image

from core.interrogate import InterrogatorUnavailable, find_interrogator
from extensions.interrogate.blip import BlipCaptioner
from extensions.interrogate.demo_world import caption
from plugin_api import InterrogatorSpec
from tests.blip_files import build_tiny_blip
from tools.demo_model.scenes import Scene, make_shape, render


def spec(name: str, answer: str, missing: str | None = None, **options) -> InterrogatorSpec:
    return InterrogatorSpec(name=name, interrogate=lambda image: answer, missing=lambda: missing, **options)


def test_names_aliases_and_refusals():
    blip = spec("blip", "blip", missing="no BLIP weights in models/BLIP", aliases=("clip",))
    demo = spec("easel-demo", "demo", aliases=("clip",), for_models=("easel-demo",))
    registry = [blip, demo]
    assert find_interrogator(registry, "easel-demo", "other") is demo  # its own name: always
    assert find_interrogator(registry, "CLIP", "easel-demo") is demo  # blip cannot run
    with pytest.raises(InterrogatorUnavailable) as info:
        find_interrogator(registry, "clip", "tiny-sd15")
    assert "models/BLIP" in str(info.value) and "captions only easel-demo" in str(info.value)
    with pytest.raises(InterrogatorUnavailable, match="register_interrogators"):
        find_interrogator(registry, "deepdanbooru", "easel-demo")
    ready = spec("blip", "blip", aliases=("clip",))
    assert find_interrogator([ready, demo], "clip", "easel-demo") is ready  # first that runs


@pytest.mark.parametrize(
    ("shape", "color", "position", "background", "expected"),
    [
        ("circle", "red", "center", "blue", "a red circle in the center on a blue background"),
        ("square", "yellow", "top left", "green", "a yellow square at the top left on a green background"),
        ("triangle", "white", "bottom", "purple", "a white triangle at the bottom on a purple background"),
        ("star", "orange", "right", "black", "an orange star on the right on a black background"),
    ],
)
def test_demo_captions_of_rendered_scenes(shape, color, position, background, expected):
    scene = Scene(background=background, shapes=(make_shape(shape, color, position, "large"),))
    assert caption(render(scene, 128)) == expected


def test_demo_caption_of_an_empty_image():
    assert caption(Image.new("RGB", (64, 64), (35, 75, 220))) == "a plain blue background"


def test_blip_from_a_models_folder(tmp_path: Path):
    captioner = BlipCaptioner(tmp_path)
    assert str(tmp_path / "BLIP") in (captioner.missing() or "")
    build_tiny_blip(tmp_path / "BLIP" / "tiny")
    assert captioner.missing() is None
    # the tiny model's decoder is biased to "red": the caption is that word, repeated
    words = captioner.caption(Image.new("RGB", (50, 40), (200, 0, 0))).split()
    assert words and set(words) == {"red"}


def test_webui_interrogate_fills_from_the_chosen_model():
    import gradio as gr

    from ui.interrogate import caption_image

    class Host:
        interrogators: ClassVar = [
            InterrogatorSpec(
                name="easel-demo", interrogate=caption, aliases=("clip",), for_models=("easel-demo",)
            )
        ]

    scene = Scene(background="blue", shapes=(make_shape("circle", "red", "center", "large"),))
    image = render(scene, 128)
    assert caption_image(Host(), image, "easel-demo") == "a red circle in the center on a blue background"
    with pytest.raises(gr.Error, match="models/BLIP"):
        caption_image(Host(), image, "tiny-sd15")  # not the demo model: say what to install
    with pytest.raises(gr.Error, match="no image"):
        caption_image(Host(), None, "easel-demo")


THIRD_PARTY = """
from plugin_api import InterrogatorSpec, hookimpl

@hookimpl
def register_interrogators(register):
    register(InterrogatorSpec(name="tagger", interrogate=lambda image: "1girl, solo", aliases=("deepdanbooru",)))
"""


def test_an_extension_registers_an_interrogator(make_host, tmp_path):
    (tmp_path / "tagger_ext.py").write_text(THIRD_PARTY)
    host = make_host(extension_dirs=[tmp_path], safe_mode=False)
    assert [s.name for s in host.interrogators] == ["blip", "easel-demo", "tagger"]
    spec = find_interrogator(host.interrogators, "deepdanbooru", None)
    assert spec.interrogate(Image.new("RGB", (8, 8))) == "1girl, solo"
    assert host.interrogators.owner("tagger") == "tagger_ext"


def test_the_webui_has_interrogate_buttons(make_host):
    from core.engine import Engine
    from core.jobs import JobService, SqliteJobQueue
    from ui.app import build_blocks

    host = make_host()
    queue = SqliteJobQueue(host.settings.state_dir / "queue.db")
    service = JobService.for_engine(Engine(host), queue, settings=host.settings)  # not started
    blocks = build_blocks(host, service)
    ids = {getattr(block, "elem_id", None) for block in blocks.blocks.values()}
    assert {"img2img_interrogate", "png_info_interrogate", "png_info_caption"} <= ids
