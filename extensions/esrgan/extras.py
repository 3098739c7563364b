"""The Extras operation (A1111's "Extras" tab, upscaling part) on PIL images: resize by a
factor or to a size (optionally cropped to fill it), with one upscaler or a blend of two.
Used by the Extras tab; upscalers come from the host's registry by name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from extensions.esrgan.upscaling import UpscalerInputError

NONE_UPSCALER = "None"
MAX_RESULT_SIDE = 8192


@dataclass
class ExtrasOptions:
    resize_mode: int = 0  # 0: by ``upscaling_resize``; 1: to ``width`` x ``height``
    upscaling_resize: float = 2.0
    width: int = 512
    height: int = 512
    crop: bool = True  # resize_mode 1: fill the size and crop the rest (A1111's default)
    upscaler_1: str = NONE_UPSCALER
    upscaler_2: str = NONE_UPSCALER
    upscaler_2_visibility: float = 0.0


def target_size(image: Any, options: ExtrasOptions) -> tuple[tuple[int, int], float]:
    """((width, height) of the result, the scale the upscaler runs at)."""
    if options.resize_mode == 1:
        width, height = int(options.width), int(options.height)
        if width < 1 or height < 1:
            raise UpscalerInputError("upscaling_resize_w", f"size must be positive, got {width}x{height}")
        ratio = max if options.crop else min
        scale = ratio(width / image.width, height / image.height)
    else:
        scale = float(options.upscaling_resize)
        if not 0 < scale <= 8:
            raise UpscalerInputError("upscaling_resize", f"must be above 0 and at most 8, got {scale:g}")
        width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    if max(width, height) > MAX_RESULT_SIDE:
        raise UpscalerInputError(
            "upscaling_resize", f"result would be {width}x{height}; the limit is {MAX_RESULT_SIDE}"
        )
    return (width, height), scale


def accepts_options(function: Callable[..., Any]) -> bool:
    """Whether an upscale function takes keyword options (ours take ``progress=``)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD or p.name == "progress" for p in parameters)


def run_extras(
    find_upscaler: Callable[[str], Any],
    image: Any,
    options: ExtrasOptions,
    progress: Callable[[int, int], None] | None = None,
) -> Any:
    """The upscaled image. ``find_upscaler(name)`` returns an ``UpscalerSpec`` or None."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise UpscalerInputError("image", f"expected an image, got {type(image).__name__}")
    size, scale = target_size(image, options)

    def apply(name: str, field: str) -> Any:
        if name.casefold() == NONE_UPSCALER.casefold():
            return image.resize(size, Image.Resampling.LANCZOS) if image.size != size else image
        spec = find_upscaler(name)
        if spec is None:
            raise UpscalerInputError(field, f"no upscaler named {name!r}")
        if progress is not None and accepts_options(spec.upscale):
            result = spec.upscale(image, scale, progress=progress)
        else:  # plain ``upscale(image, scale)``, as UpscalerSpec documents (the core's Lanczos)
            result = spec.upscale(image, scale)
        if options.resize_mode == 1 and options.crop:
            left, top = (result.width - size[0]) // 2, (result.height - size[1]) // 2
            if left >= 0 and top >= 0:
                result = result.crop((left, top, left + size[0], top + size[1]))
        return result.resize(size, Image.Resampling.LANCZOS) if result.size != size else result

    result = apply(options.upscaler_1, "upscaler_1")
    visibility = float(options.upscaler_2_visibility)
    if options.upscaler_2.casefold() != NONE_UPSCALER.casefold() and visibility > 0:
        second = apply(options.upscaler_2, "upscaler_2")
        if second.mode != result.mode:
            second = second.convert(result.mode)
        result = Image.blend(result, second, min(1.0, visibility))
    return result


def postprocess_info(options: ExtrasOptions, size: tuple[int, int]) -> dict[str, Any]:
    """What A1111's Upscale postprocessing records of a run (its ``pp.info``), in its
    order: ``Postprocess upscale by``/``to``, ``crop to``, ``upscaler``, ``upscaler 2``."""
    info: dict[str, Any] = {}
    if options.resize_mode == 1:
        info["Postprocess upscale to"] = f"{int(options.width)}x{int(options.height)}"
        if options.crop:
            info["Postprocess crop to"] = f"{size[0]}x{size[1]}"
    else:
        info["Postprocess upscale by"] = float(options.upscaling_resize)
    info["Postprocess upscaler"] = options.upscaler_1
    if options.upscaler_2.casefold() != NONE_UPSCALER.casefold() and float(options.upscaler_2_visibility) > 0:
        info["Postprocess upscaler 2"] = options.upscaler_2
    return info
