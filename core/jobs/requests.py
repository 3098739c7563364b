"""GenerationRequest <-> the JSON stored in the job record.

Input images (init image, mask) travel as base64 PNG inside the JSON, so the record is
self-contained and any worker on any machine can run it.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from typing import Any

from plugin_api.types import GenerationRequest

IMAGE_FIELDS = ("init_image", "mask")
_FIELD_NAMES = {f.name for f in dataclasses.fields(GenerationRequest)}


def image_to_base64_png(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def image_from_base64_png(data: str) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def _json_safe(value: Any) -> Any:
    """Extension arguments may hold anything a client sent: keep JSON types, and images
    as base64; anything else becomes its repr (it was JSON when it arrived)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "save") and hasattr(value, "size"):
        return {"__image_png_base64__": image_to_base64_png(value)}
    return repr(value)


def request_to_json(request: GenerationRequest) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name in _FIELD_NAMES:
        value = getattr(request, name)
        if name in IMAGE_FIELDS:
            data[name] = image_to_base64_png(value) if value is not None else None
        else:
            data[name] = _json_safe(value)
    return data


def _restore_images(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__image_png_base64__"}:
            return image_from_base64_png(value["__image_png_base64__"])
        return {k: _restore_images(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_images(v) for v in value]
    return value


def request_from_json(data: dict[str, Any]) -> GenerationRequest:
    values = {k: v for k, v in data.items() if k in _FIELD_NAMES}
    for name in IMAGE_FIELDS:
        if values.get(name):
            values[name] = image_from_base64_png(values[name])
    if "extension_args" in values:
        values["extension_args"] = _restore_images(values["extension_args"] or {})
    return GenerationRequest(**values)


def request_summary(data: dict[str, Any]) -> dict[str, Any]:
    """The stored request without the (large) image payloads, for listings."""
    summary = {k: v for k, v in data.items() if k not in IMAGE_FIELDS}
    for name in IMAGE_FIELDS:
        summary[f"has_{name}"] = bool(data.get(name))
    return summary
