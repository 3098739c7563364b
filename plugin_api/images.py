"""The one image gate: every image a client sends (init images, masks, ControlNet images,
extras, PNG Info, WebUI uploads) is opened here, and its size is checked from the file's
header BEFORE any pixel is decoded, so an 87 KB PNG claiming 8192x8192 is refused without
the gigabytes its pixels would take. Core and bundled extensions share these limits
(extensions may not import core, hence this lives in plugin_api).

    from plugin_api.images import open_image
    image = open_image(raw_bytes, "extension_args.myext.image")  # InvalidRequest if bad
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

from plugin_api.errors import InvalidRequest

MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE


# Pillow's global MAX_IMAGE_PIXELS is left alone on purpose: Easel itself writes and reopens
# results larger than the input limit (Extras upscales to 8192x8192), and a lowered global
# would break those. Inputs are checked here from the header instead; Pillow's own
# DecompressionBombError (past ~179 M pixels) is still caught and named below.


def _too_large(field: str, width: int, height: int) -> InvalidRequest:
    return InvalidRequest(
        field, f"image is {width}x{height}; the limit is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels"
    )


def check_size(field: str, width: int, height: int) -> None:
    """Refuse sizes outside 1..MAX_IMAGE_SIDE per side (and MAX_IMAGE_PIXELS in all)."""
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise _too_large(field, width, height)
    if width < 1 or height < 1:
        raise InvalidRequest(field, "image has no pixels")


def open_image(source: bytes | str | Path | Any, field: str) -> Any:
    """A loaded PIL image from bytes, a file path or a file object; raises InvalidRequest
    naming ``field`` for garbage, damaged data or a size past the limits."""
    from PIL import Image

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image = Image.open(stream)  # lazy: reads the header only
    except Image.DecompressionBombError:
        raise InvalidRequest(
            field, f"image is far too large; the limit is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels"
        ) from None
    except Exception:  # Pillow raises many types for garbage input
        raise InvalidRequest(field, "not an image Pillow can read (PNG, JPEG, WebP...)") from None
    width, height = image.size  # from the header: nothing decoded yet
    try:
        check_size(field, width, height)
        image.load()
    except InvalidRequest:
        image.close()
        raise
    except Exception as exc:
        image.close()
        raise InvalidRequest(field, f"image data is damaged ({type(exc).__name__})") from None
    return image


def decode_base64_image(data: Any, field: str) -> Any:
    """A loaded PIL image from base64 text (a data URL prefix is allowed)."""
    if not isinstance(data, str) or not data.strip():
        raise InvalidRequest(field, "expected a base64-encoded image")
    text = data.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise InvalidRequest(field, "data URL is not base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(field, "invalid base64") from None
    return open_image(raw, field)


def check_pil_image(image: Any, field: str) -> Any:
    """An image already decoded by someone else (Gradio, a Python caller): the same limits,
    so a result does not depend on which door the image came through."""
    width, height = image.size
    check_size(field, width, height)
    return image
