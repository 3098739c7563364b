"""The "Upscale after generation" accordion in the txt2img and img2img forms: every
image of the generation goes through an upscaler before it is saved. Its values reach
the request as ``alwayson_scripts.esrgan.args`` = ``[upscaler, scale]`` would (see
``post_sample_request``)."""

from __future__ import annotations

from typing import Any

from extensions.esrgan.extras import NONE_UPSCALER


def to_args(values: list[Any]) -> list[Any] | None:
    enabled, upscaler, scale = values
    if not enabled or not upscaler or upscaler == NONE_UPSCALER:
        return None
    return [upscaler, float(scale)]


def build(state: Any, tab: str) -> list[Any]:
    import gradio as gr

    host = state.host
    names = list(host.upscalers.names()) if host is not None else []
    default = next((n for n in names if n not in ("Lanczos", "Nearest")), names[0] if names else None)
    with gr.Row():
        enabled = gr.Checkbox(value=False, label="Upscale the images", elem_id=f"{tab}_esrgan_enabled")
        upscaler = gr.Dropdown(names, value=default, label="Upscaler", elem_id=f"{tab}_esrgan_upscaler")
        scale = gr.Slider(1.0, 8.0, value=2.0, step=0.05, label="Scale by", elem_id=f"{tab}_esrgan_scale")
    return [enabled, upscaler, scale]
