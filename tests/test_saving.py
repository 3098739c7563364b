"""Outputs: A1111 names and numbering, atomic writes, infotext round trips, png-info."""

from __future__ import annotations

import json
import threading

import pytest
from PIL import Image

from core.cli.main import main as cli_main
from core.saving import build_infotext, parse_infotext, read_infotext, save_image


def test_infotext_matches_a1111_format():
    text = build_infotext(
        "a cat, sitting\non a sofa",
        "blurry",
        {
            "Steps": 20,
            "Sampler": "Euler a",
            "CFG scale": 7.0,
            "Seed": 1,
            "Size": "512x768",
            "Model": "my: model, v2",
            "Skip": None,
        },
    )
    assert text == (
        "a cat, sitting\non a sofa\nNegative prompt: blurry\n"
        'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x768, Model: "my: model, v2"'
    )
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "a cat, sitting\non a sofa"
    assert parsed["Negative prompt"] == "blurry"
    assert parsed["Model"] == "my: model, v2"
    assert (parsed["Size-1"], parsed["Size-2"]) == ("512", "768")
    assert parsed["CFG scale"] == "7"


def test_infotext_without_negative_and_with_quotes():
    text = build_infotext(
        'say "hi"', "", {"Steps": 2, "Sampler": "DDIM", "Seed": 3, "Note": 'has "quotes", and commas'}
    )
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == 'say "hi"' and parsed["Negative prompt"] == ""
    assert parsed["Note"] == 'has "quotes", and commas'


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_save_numbering_and_metadata(tmp_path, fmt):
    image = Image.new("RGB", (16, 16), "red")
    info = "a prompt\nSteps: 2, Sampler: Euler, Seed: 5"
    first = save_image(image, tmp_path, "txt2img", 5, info, fmt)
    second = save_image(image, tmp_path, "txt2img", 6, info, fmt)
    assert first.name.startswith("00000-5.") and second.name.startswith("00001-6.")
    assert first.parent.parent.name == "txt2img-images"
    assert read_infotext(first) == info
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".tmp")]


def test_numbering_continues_and_is_thread_safe(tmp_path):
    image = Image.new("RGB", (8, 8))
    folder_path = save_image(image, tmp_path, "img2img", 1, "x\nSteps: 1, Seed: 1, Size: 8x8").parent
    (folder_path / "00041-999.png").write_bytes(b"")  # left by an earlier run
    paths = []
    threads = [
        threading.Thread(target=lambda: paths.append(save_image(image, tmp_path, "img2img", 2, "y")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    numbers = sorted(int(p.name.split("-")[0]) for p in paths)
    assert numbers == list(range(42, 50))
    assert folder_path.parent.name == "img2img-images"


def test_png_info_cli_round_trip(engine, capsys):
    from plugin_api import GenerationRequest

    result = engine.generate(
        GenerationRequest(
            prompt="a (blue:1.2) square, flat",
            negative_prompt="noise",
            seed=3,
            steps=2,
            width=64,
            height=64,
            model="tiny-sd15",
        )
    )
    assert cli_main(["png-info", result.paths[0]]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == result.infotexts[0]
    assert cli_main(["png-info", "--json", result.paths[0]]) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["Prompt"] == "a (blue:1.2) square, flat" and parsed["Seed"] == "3"
    assert parsed["Steps"] == "2" and parsed["Model"] == "tiny-sd15"


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_saved_images_have_the_mode_the_umask_gives(tmp_path, umask):
    """Outputs are ordinary files (issue #23, point 12): 0666 less the umask, as `open()`
    would make them, not mkstemp's 0600. A fresh process per umask: the host reads it once."""
    import subprocess
    import sys

    script = (
        "import os, sys; os.umask(int(sys.argv[2], 8)); from PIL import Image;"
        "from core.saving import save_image;"
        "p = save_image(Image.new('RGB', (8, 8)), sys.argv[1], 'txt2img', 1, 'x');"
        "print(oct(os.stat(p).st_mode & 0o777))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), oct(umask)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == oct(0o666 & ~umask)


def test_extras_results_are_saved_as_a1111_names_them(tmp_path):
    """A1111's Extras: ``extras-images/NNNNN.png`` (no date folder, the number alone, one
    above the highest leading number), the source's parameters kept and the postprocessing
    text written as both ``postprocessing`` and ``extras``."""
    from core.saving.extras import save_extras_image

    source = Image.new("RGB", (8, 8))
    source.info = {"parameters": "a cat\nSteps: 20, Seed: 1", "dpi": (72, 72)}
    info = {
        "Postprocess upscale by": 2.0,
        "Postprocess upscaler": "R-ESRGAN 4x+",
        "Postprocess upscaler 2": None,
    }
    first = save_extras_image(Image.new("RGB", (16, 16)), tmp_path, info, source.info)
    assert first == tmp_path / "extras-images" / "00000.png"
    (tmp_path / "extras-images" / "00007-kept.png").write_bytes(b"")  # another tool's file counts
    second = save_extras_image(Image.new("RGB", (16, 16)), tmp_path, {"Postprocess upscale to": "64x64"})
    assert second.name == "00008.png"
    with Image.open(first) as saved:
        assert saved.text == {
            "parameters": "a cat\nSteps: 20, Seed: 1",
            "postprocessing": "Postprocess upscale by: 2.0, Postprocess upscaler: R-ESRGAN 4x+",
            "extras": "Postprocess upscale by: 2.0, Postprocess upscaler: R-ESRGAN 4x+",
        }
    assert not [p for p in (tmp_path / "extras-images").iterdir() if p.name.startswith(".tmp-")]
