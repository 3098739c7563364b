"""A1111's "Extras" upscaling over the API (``/sdapi/v1/extra-single-image`` and
``extra-batch-images``): resize by a factor or to a size (optionally cropped to fill it)
with any registered upscaler (the core's Lanczos and Nearest, and whatever extensions
registered, e.g. the ESRGAN family), optionally blended with a second one. The alpha
channel of an input survives when the upscaler keeps it (every bundled one does)."""

from __future__ import annotations

from typing import Any

from PIL import Image

from core.api.images import MAX_IMAGE_SIDE
from core.errors import RequestError

NONE_UPSCALER = "None"


def _target(image: Any, body: Any) -> tuple[tuple[int, int], float]:
    if body.resize_mode == 1:
        target = (int(body.upscaling_resize_w), int(body.upscaling_resize_h))
        fit = max if body.upscaling_crop else min
        scale = fit(target[0] / image.width, target[1] / image.height)
    else:
        scale = float(body.upscaling_resize)
        target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if max(target) > MAX_IMAGE_SIDE or min(target) < 1:
        raise RequestError(
            "upscaling_resize", f"result would be {target[0]}x{target[1]}; the limit is {MAX_IMAGE_SIDE}"
        )
    return target, scale


def _apply(
    upscalers: Any, name: str, field: str, image: Any, target: tuple[int, int], scale: float, crop: bool
) -> Any:
    if name.casefold() == NONE_UPSCALER.casefold():
        return image.resize(target, Image.Resampling.LANCZOS) if image.size != target else image
    spec = upscalers.get(name)
    if spec is None:
        known = ", ".join([NONE_UPSCALER, *upscalers.names()])
        raise RequestError(field, f"no upscaler named {name!r}; known: {known}")
    try:
        result = spec.upscale(image, scale)
    except ValueError as exc:  # a bad model file or input, named by the upscaler
        raise RequestError(field, f"upscaler {spec.name!r} failed: {exc}") from None
    if not isinstance(result, Image.Image):
        raise RequestError(field, f"upscaler {spec.name!r} returned {type(result).__name__}, not an image")
    if crop and result.size != target:
        left, top = (result.width - target[0]) // 2, (result.height - target[1]) // 2
        if left >= 0 and top >= 0:
            result = result.crop((left, top, left + target[0], top + target[1]))
    return result.resize(target, Image.Resampling.LANCZOS) if result.size != target else result


def upscale_one(upscalers: Any, image: Any, body: Any) -> Any:
    """The Extras result for one decoded image (fields as in A1111's request)."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    target, scale = _target(image, body)
    crop = body.resize_mode == 1 and body.upscaling_crop
    result = _apply(upscalers, body.upscaler_1, "upscaler_1", image, target, scale, crop)
    visibility = float(body.extras_upscaler_2_visibility)
    if body.upscaler_2.casefold() != NONE_UPSCALER.casefold() and visibility > 0:
        second = _apply(upscalers, body.upscaler_2, "upscaler_2", image, target, scale, crop)
        if second.mode != result.mode:
            second = second.convert(result.mode)
        result = Image.blend(result, second, visibility)
    return result


def html_info(results: list[Any], body: Any) -> str:
    """A1111 answers with a short HTML summary of what was done."""
    names = [body.upscaler_1]
    if body.upscaler_2.casefold() != NONE_UPSCALER.casefold() and body.extras_upscaler_2_visibility > 0:
        names.append(f"{body.upscaler_2} ({body.extras_upscaler_2_visibility:g})")
    sizes = ", ".join(f"{r.width}x{r.height}" for r in results)
    return f"<p>Postprocess upscaler: {', '.join(names)}; size: {sizes}</p>"
