"""Images in and out of the API: base64 (with or without a data-URL prefix) with every
check done BEFORE the pixels are decoded, so a small file cannot expand into gigabytes."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

# The limits live in plugin_api.images so bundled extensions (which may not import core)
# apply the very same ones; re-exported here for core's callers.
from plugin_api.errors import InvalidRequest
from plugin_api.images import MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE
from plugin_api.images import decode_base64_image as _decode

__all__ = ["MAX_IMAGE_PIXELS", "MAX_IMAGE_SIDE", "ImageInputError", "decode_base64_image"]


class ImageInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def decode_base64_image(data: str, field: str) -> Any:
    """A PIL image from base64 text; raises ImageInputError naming ``field``."""
    try:
        return _decode(data, field)
    except InvalidRequest as exc:
        raise ImageInputError(exc.field, exc.message) from None


def encode_png_base64(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def file_base64(path: Path) -> str:
    """A written image as base64, bytes as they are on disk (metadata included)."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")
