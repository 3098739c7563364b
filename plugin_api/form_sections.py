"""A form section's values -> ``request.extension_args[<extension>]`` (API 1.9).

The one mapping the WebUI uses at Generate and ``plugin_api.testing.form_section_args``
uses in an extension's tests, so what a test checks is what the WebUI sends. Values are
plain Python values (Gradio's preprocessed component values); Gradio is imported only by
``build_section_components``, so extensions and the API load this module without it.

The result has the shape an API client sends: ``{"args": [...]}`` (``/sdapi/v1``'s
``alwayson_scripts[<name>]``, kept whole) for a list, the dict itself for a dict
(the native ``extension_args``), with images as base64 PNG strings.
"""

from __future__ import annotations

import base64
import inspect
import io
import math
from collections.abc import Callable
from typing import Any

from plugin_api.types import FormSection


def image_to_base64(image: Any) -> str:
    """A PIL image as the base64 PNG (no ``data:`` prefix) A1111 clients send."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _is_pil_image(value: Any) -> bool:
    return hasattr(value, "save") and hasattr(value, "size") and hasattr(value, "mode")


def _is_image_array(value: Any) -> bool:
    shape = getattr(value, "shape", None)
    return (
        shape is not None
        and str(getattr(value, "dtype", "")) == "uint8"
        and (len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3, 4)))
    )


def api_shape(value: Any, where: str) -> Any:
    """``value`` with only JSON types: images -> base64 PNG, tuples -> lists, numpy
    scalars -> numbers. Anything else raises ``TypeError`` naming ``where``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where}: {value!r} is not a JSON number")
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            out[key] = api_shape(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [api_shape(item, f"{where}.{index}") for index, item in enumerate(value)]
    if _is_pil_image(value):
        return image_to_base64(value)
    if _is_image_array(value):
        from PIL import Image

        return image_to_base64(Image.fromarray(value))
    item = getattr(value, "item", None)  # numpy / torch scalars
    if callable(item) and getattr(value, "shape", None) in ((), None):
        return api_shape(item(), where)
    raise TypeError(f"{where}: a {type(value).__name__} is not an API value (JSON types and images)")


def section_extension_args(section: FormSection, values: list[Any], extension: str) -> Any:
    """What ``section`` puts into ``request.extension_args[extension]`` for ``values``
    (``None``: nothing). ``plugin_api.InvalidRequest`` from ``to_args`` passes through; a
    ``to_args`` that returns something else than a list, a dict or None, or values that
    are not API values, raise ``TypeError`` naming the extension."""
    args = section.to_args(list(values)) if section.to_args is not None else list(values)
    where = f"extension_args.{extension}"
    if args is None:
        return None
    if isinstance(args, list | tuple):
        return {"args": api_shape(list(args), f"{where}.args")}
    if isinstance(args, dict):
        return api_shape(args, where)
    raise TypeError(
        f"extension {extension!r}: to_args of section {section.title!r} returned a "
        f"{type(args).__name__}; expected a list (alwayson_scripts args), a dict or None"
    )


def build_arguments(build: Callable[..., Any], tab: str, host: Any) -> dict[str, Any]:
    """``tab`` and ``host`` for a ``build`` that names them."""
    try:
        names = set(inspect.signature(build).parameters)
    except (TypeError, ValueError):
        names = set()
    offered = {"tab": tab, "host": host}
    return {name: value for name, value in offered.items() if name in names}


def build_section_components(section: FormSection, tab: str, host: Any) -> list[Any]:
    """Call ``section.build`` (inside a Gradio Blocks context) and return its components
    as a list (one component alone, or None, is fine); ``TypeError`` for anything that
    is not a Gradio component."""
    import gradio as gr

    returned = section.build(**build_arguments(section.build, tab, host))
    if returned is None:
        return []
    items = list(returned) if isinstance(returned, list | tuple) else [returned]
    for index, item in enumerate(items):
        if not isinstance(item, gr.components.Component):
            raise TypeError(
                f"build() of section {section.title!r} returned a {type(item).__name__} at index "
                f"{index}; expected the section's Gradio components, in order"
            )
    return items


__all__ = [
    "api_shape",
    "build_arguments",
    "build_section_components",
    "image_to_base64",
    "section_extension_args",
]
