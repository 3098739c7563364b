"""Lanczos and Nearest: the two upscalers A1111 always has, registered through the same
``register_upscalers`` hook as any extension (a builtin plugin, loaded first)."""

from __future__ import annotations

from typing import Any

from plugin_api import UpscalerSpec, hookimpl


def _resize(resample: Any) -> Any:
    def upscale(image: Any, scale: float) -> Any:
        from PIL import Image

        width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        return image.resize((width, height), Image.Resampling(resample))

    return upscale


@hookimpl
def register_upscalers(register: Any) -> None:
    from PIL import Image

    register(UpscalerSpec(name="Lanczos", upscale=_resize(Image.Resampling.LANCZOS)))
    register(UpscalerSpec(name="Nearest", upscale=_resize(Image.Resampling.NEAREST)))
