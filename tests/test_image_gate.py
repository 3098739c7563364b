"""The one image gate (plugin_api/images.py, issue #23 point 4) for the doors that are not
JSON bodies: files on disk (the WebUI's PNG Info and Extras uploads) and images already
decoded by someone else (Gradio, Python callers of the engine), and the edges."""

from __future__ import annotations

import base64

import pytest
from PIL import Image

from plugin_api.errors import InvalidRequest
from plugin_api.images import MAX_IMAGE_SIDE, check_pil_image, check_size, open_image
from tests.api.test_bad_inputs import png_bomb, png_claiming_size


def test_a_bomb_file_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(base64.b64decode(png_bomb(8192, 8192)))
    assert path.stat().st_size < 100_000
    with pytest.raises(InvalidRequest) as refused:
        open_image(str(path), "images.0")
    assert refused.value.field == "images.0" and "8192x8192" in refused.value.message


def test_the_largest_allowed_image_opens(tmp_path):
    path = tmp_path / "edge.png"
    Image.new("L", (MAX_IMAGE_SIDE, 8)).save(path)
    assert open_image(path, "image").size == (MAX_IMAGE_SIDE, 8)


def test_decoded_images_get_the_same_limit():
    with pytest.raises(InvalidRequest, match="4097x8"):
        check_pil_image(Image.new("L", (MAX_IMAGE_SIDE + 1, 8)), "init_image")
    check_size("mask", MAX_IMAGE_SIDE, MAX_IMAGE_SIDE)  # the largest allowed
    with pytest.raises(InvalidRequest, match="no pixels"):
        check_size("mask", 0, 16)


def test_pillows_own_bomb_error_is_named_too():
    """Past Pillow's own limit Image.open raises before our check: still a named 422."""
    with pytest.raises(InvalidRequest) as refused:
        open_image(base64.b64decode(png_claiming_size(60000, 60000)), "mask")
    assert refused.value.field == "mask" and "too large" in refused.value.message


def test_the_webui_extras_upload_names_the_file(tmp_path):
    from extensions.esrgan.tab import open_images

    path = tmp_path / "bomb.png"
    path.write_bytes(base64.b64decode(png_bomb(8192, 8192)))
    with pytest.raises(ValueError, match=r"bomb\.png: image is 8192x8192"):
        open_images([str(path)])


def test_the_engine_refuses_an_oversized_decoded_init_image():
    """The engine's image check (what Python and WebUI callers go through)."""
    from core.errors import RequestError
    from core.validation import _check_image

    _check_image(Image.new("RGB", (MAX_IMAGE_SIDE, 64)), "init_image")
    with pytest.raises(RequestError, match=r"init_image.*4104x64"):
        _check_image(Image.new("RGB", (MAX_IMAGE_SIDE + 8, 64)), "init_image")
