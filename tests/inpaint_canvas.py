"""Helpers for the inpainting browser test (tests/test_webui_browser.py): where the mouse
painted on Gradio's ImageEditor canvas, measured from the canvas itself.

Which pixels were painted is measured, not assumed: the canvas is captured before and
after drawing (the white brush on the red demo image), and the changed screen pixels are
mapped to image pixels through the canvas's zoom (the image is centred in the canvas).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

CANVAS_READY_JS = """
(id) => {
  const editor = document.querySelector(`#${id}`);
  return editor && editor.querySelector('canvas') && /\\d+%/.test(editor.innerText)
    && !editor.innerText.includes('Upload an image');
}
"""


def outputs_in(folder) -> set:
    return set(folder.rglob("*.png"))


def new_output(folder, before: set) -> Image.Image:
    """The one image written to ``folder`` since ``before`` was listed."""
    files = [p for p in folder.rglob("*.png") if p not in before]
    assert len(files) == 1, files
    with Image.open(files[0]) as image:
        return image.convert("RGB")


def capture(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(int)


def painted_pixels(before: np.ndarray, after: np.ndarray, zoom: float, size: int) -> np.ndarray:
    """Image pixels (size x size, bool) under canvas pixels the drawing changed."""
    changed = np.abs(after - before).max(axis=2) > 0
    ys, xs = np.nonzero(changed)
    height, width = changed.shape
    image_x = np.floor((xs - width / 2) / zoom + size / 2).astype(int)
    image_y = np.floor((ys - height / 2) / zoom + size / 2).astype(int)
    inside = (image_x >= 0) & (image_x < size) & (image_y >= 0) & (image_y < size)
    mask = np.zeros((size, size), dtype=bool)
    mask[image_y[inside], image_x[inside]] = True
    return mask


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.filter(ImageFilter.MaxFilter(2 * pixels + 1))) > 0


def shrink(mask: np.ndarray, pixels: int) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(image.filter(ImageFilter.MinFilter(2 * pixels + 1))) > 0
