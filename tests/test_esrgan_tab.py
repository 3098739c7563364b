"""The Extras tab builds inside the WebUI's blocks and its handler upscales a single
image and a batch with the host's upscalers."""

from __future__ import annotations

import gradio as gr
import pytest
from PIL import Image


def test_extras_tab_builds_and_upscales(host, tmp_path):
    tabs = [tab for extension, tab in host.ui_tabs() if extension == "esrgan"]
    assert [tab.title for tab in tabs] == ["Extras"]
    with gr.Blocks():
        built = tabs[0].build()
    assert any("easel-demo-2x" in str(choice) for choice in built["upscaler_1"].choices)
    assert isinstance(built["send_to_image"], gr.Image)  # result galleries send images there
    handler = built["handler"]
    extras_dir = host.settings.outputs_dir / "extras-images"
    saved_before = set(extras_dir.glob("*.png"))
    image = Image.new("RGB", (20, 12), (200, 40, 40))
    results, info = handler(image, None, 0, 2.0, 0, 0, True, "easel-demo-2x", "None", 0.0, progress=None)
    assert [r.size for r in results] == [(40, 24)] and "easel-demo-2x" in info
    # saved as A1111's Extras saves: the whole image, its upscale recorded
    (saved,) = set(extras_dir.glob("*.png")) - saved_before
    assert saved.name in info
    with Image.open(saved) as file:
        assert file.size == (40, 24)
        assert file.text["extras"] == "Postprocess upscale by: 2.0, Postprocess upscaler: easel-demo-2x"
    # a file dropped on Single image keeps its parameters in the saved result
    source = tmp_path / "with-parameters.png"
    from PIL import PngImagePlugin

    chunk = PngImagePlugin.PngInfo()
    chunk.add_text("parameters", "a cat\nSteps: 20, Seed: 5")
    image.save(source, pnginfo=chunk)
    saved_before = set(extras_dir.glob("*.png"))
    handler(str(source), None, 1, 1.0, 30, 30, True, "Lanczos", "None", 0.0, progress=None)
    (saved,) = set(extras_dir.glob("*.png")) - saved_before
    with Image.open(saved) as file:
        assert file.text["parameters"] == "a cat\nSteps: 20, Seed: 5"
        assert file.text["postprocessing"] == (
            "Postprocess upscale to: 30x30, Postprocess crop to: 30x30, Postprocess upscaler: Lanczos"
        )
    paths = []
    for index, size in enumerate(((16, 16), (10, 30))):
        path = tmp_path / f"in{index}.png"
        Image.new("RGBA", size, (0, 0, 255, 128)).save(path)
        paths.append(str(path))
    results, _info = handler(None, paths, 1, 1.0, 48, 48, True, "Lanczos", "None", 0.0, progress=None)
    assert [r.size for r in results] == [(48, 48), (48, 48)] and results[0].mode == "RGBA"
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(gr.Error, match=r"notes\.txt"):
        handler(
            None, [str(tmp_path / "notes.txt")], 0, 2.0, 0, 0, True, "Lanczos", "None", 0.0, progress=None
        )
    with pytest.raises(gr.Error, match="no upscaler"):
        handler(image, None, 0, 2.0, 0, 0, True, "ESRGAN_9x", "None", 0.0, progress=None)
