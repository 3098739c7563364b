"""Images in and out of the API: base64 (with or without a data-URL prefix) with every
check done BEFORE the pixels are decoded, so a small file cannot expand into gigabytes."""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Any

MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE


class ImageInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def decode_base64_image(data: str, field: str) -> Any:
    """A PIL image from base64 text; raises ImageInputError naming ``field``."""
    from PIL import Image

    if not isinstance(data, str) or not data.strip():
        raise ImageInputError(field, "expected a base64-encoded image")
    text = data.strip()
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if ";base64" not in header:
            raise ImageInputError(field, "data URL is not base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ImageInputError(field, "invalid base64") from None
    try:
        image = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError:
        raise ImageInputError(
            field, f"image is far too large; the limit is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
        ) from None
    except Exception:  # Pillow raises many types for garbage input
        raise ImageInputError(field, "not an image Pillow can read (PNG, JPEG, WebP...)") from None
    width, height = image.size  # from the header: nothing decoded yet
    if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise ImageInputError(
            field, f"image is {width}x{height}; the limit is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
        )
    if width < 1 or height < 1:
        raise ImageInputError(field, "image has no pixels")
    try:
        image.load()
    except Exception as exc:
        raise ImageInputError(field, f"image data is damaged ({type(exc).__name__})") from None
    return image


def encode_png_base64(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def file_base64(path: Path) -> str:
    """A written image as base64, bytes as they are on disk (metadata included)."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")
