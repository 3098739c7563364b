"""The "send to" buttons that move parameters and images between tabs: txt2img's result
to img2img, and the parameters read in PNG Info to txt2img or img2img."""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.generation_form import GenerationForm
from ui.i18n import say
from ui.language import request_language
from ui.png_info import PngInfoTab, open_image
from ui.results import selected_index
from ui.txt2img import GenerationTab


def _choice_values(dropdown: gr.Dropdown) -> set[Any]:
    values = set()
    for choice in dropdown.choices or []:
        values.add(choice[1] if isinstance(choice, tuple | list) else choice)
    return values


# the form fields "send to" fills, in the order of ``_form_outputs``
FORM_FIELDS = (
    "prompt", "negative_prompt", "model", "sampler", "scheduler", "steps", "cfg_scale",
    "late_cfg_scale", "late_cfg_start", "width", "height", "vae", "cache_method", "cache_threshold",
    "seed",
)  # fmt: skip


def _form_outputs(form: GenerationForm) -> list[Any]:
    return [getattr(form, name) for name in FORM_FIELDS]


def _fields_to_updates(form: GenerationForm, fields: dict[str, Any]) -> list[Any]:
    """Updates for ``_form_outputs``; a field that is absent (or an unknown model or
    sampler) leaves the form's current value."""
    updates = []
    for name in FORM_FIELDS:
        value = fields.get(name)
        if name in ("model", "sampler", "scheduler", "vae", "cache_method") and value not in _choice_values(
            getattr(form, name)
        ):
            value = None
        updates.append(gr.update() if value is None else gr.update(value=value))
    return updates


def wire_send_txt2img_to_img2img(txt2img: GenerationTab, img2img: GenerationTab, tabs: gr.Tabs) -> None:
    source = txt2img.form
    if source.results.send_to_img2img is None or img2img.form.init_image is None:
        return

    def send(
        request: gr.Request, last: dict[str, Any] | None, *values: Any
    ) -> list[Any]:  # request: injected
        if not last or not last.get("paths"):
            raise gr.Error(say("Generate an image first.", request_language(request)))
        index = selected_index(last)
        seeds = last.get("seeds") or []
        params = dict(zip(FORM_FIELDS[:-1], values, strict=True))  # all but the seed
        params["seed"] = seeds[index] if index < len(seeds) else None
        image = open_image(last["paths"][index])
        return [image, *_fields_to_updates(img2img.form, params), gr.Tabs(selected="img2img")]

    source.results.send_to_img2img.click(
        send,
        inputs=[txt2img.last_result, *_form_outputs(source)[:-1]],
        outputs=[img2img.form.init_image, *_form_outputs(img2img.form), tabs],
    )


def wire_png_info_sends(
    png: PngInfoTab, txt2img: GenerationTab, img2img: GenerationTab, tabs: gr.Tabs
) -> None:
    def to_txt2img(fields: dict[str, Any] | None, request: gr.Request) -> list[Any]:
        if not fields:
            raise gr.Error(say("No generation parameters in this image.", request_language(request)))
        return [*_fields_to_updates(txt2img.form, fields), gr.Tabs(selected="txt2img")]

    def to_img2img(fields: dict[str, Any] | None, path: str | None, request: gr.Request) -> list[Any]:
        if not path:
            raise gr.Error(say("Drop an image first.", request_language(request)))
        updates = _fields_to_updates(img2img.form, fields or {})
        return [open_image(path), *updates, gr.Tabs(selected="img2img")]

    png.send_to_txt2img.click(to_txt2img, inputs=[png.fields], outputs=[*_form_outputs(txt2img.form), tabs])
    png.send_to_img2img.click(
        to_img2img,
        inputs=[png.fields, png.image],
        outputs=[img2img.form.init_image, *_form_outputs(img2img.form), tabs],
    )
