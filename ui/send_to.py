"""The "send to" buttons that move parameters and images between tabs, as A1111's: every
result gallery (txt2img, img2img) sends its selected image to img2img, inpaint or Extras
and its parameters to txt2img/img2img; PNG Info sends what it read to txt2img or img2img.

Parameters come from the selected image's own infotext (what made that image), not from
the form, which may have changed since it was generated.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from ui.family_controls import SENT
from ui.generation_form import GenerationForm
from ui.img2img_modes import INPAINT_AREAS, editor_value, mode_outputs, select_mode
from ui.png_info import PngInfoTab, form_fields, open_image, parse
from ui.results import selected_index
from ui.txt2img import GenerationTab

log = logging.getLogger("easel.ui")


def _choice_values(dropdown: gr.Dropdown) -> set[Any]:
    values = set()
    for choice in dropdown.choices or []:
        values.add(choice[1] if isinstance(choice, tuple | list) else choice)
    return values


# the form fields "send to" fills, in the order of ``_form_outputs``
FORM_FIELDS = (
    "prompt", "negative_prompt", "model", "sampler", "scheduler", "steps", "cfg_scale", "distilled_cfg_scale",
    "late_cfg_scale", "late_cfg_start", "width", "height", "vae", "cache_method", "cache_threshold",
    "seed",
)  # fmt: skip
# img2img's inpainting options, from the infotext names A1111 writes for them
INPAINT_FIELDS = (
    ("mask_blur", "Mask blur"),
    ("inpaint_area", "Inpaint area"),
    ("padding", "Masked area padding"),
)


def _form_outputs(form: GenerationForm) -> list[Any]:
    return [*(getattr(form, name) for name in FORM_FIELDS), form.shown_family]


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
    # a model sent with its CFG: the model change that follows keeps them (family_controls)
    model_sent = fields.get("model") in _choice_values(form.model)
    updates.append(SENT if model_sent else gr.update())
    return updates


def _inpaint_outputs(form: GenerationForm) -> list[Any]:
    modes = form.img2img
    return [getattr(modes, name) for name, _ in INPAINT_FIELDS] if modes is not None else []


def _inpaint_updates(form: GenerationForm, parsed: dict[str, Any]) -> list[Any]:
    """Mask blur, inpaint area and padding of an inpainted image (unchanged otherwise)."""
    if form.img2img is None:
        return []
    updates = []
    for name, key in INPAINT_FIELDS:
        value = parsed.get(key)
        if value is None:
            updates.append(gr.update())
        elif name == "inpaint_area":
            updates.append(gr.update(value=str(value) if str(value) in INPAINT_AREAS else INPAINT_AREAS[0]))
        else:
            try:
                updates.append(gr.update(value=int(float(value))))
            except (TypeError, ValueError):
                updates.append(gr.update())
    return updates


def _selected(last: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The selected result image's path and its parsed infotext."""
    if not last or not last.get("paths"):
        raise gr.Error("Generate an image first.")
    index = selected_index(last)
    infotexts = last.get("infotexts") or []
    infotext = infotexts[index] if index < len(infotexts) else ""
    try:
        parsed = parse(infotext)
    except Exception as exc:  # a damaged infotext still sends the image
        log.warning("could not parse the infotext to send: %s", exc)
        parsed = {}
    fields = form_fields(parsed)
    seeds = last.get("seeds") or []
    if index < len(seeds):  # the image's own seed, also for the 2nd image of a batch
        fields["seed"] = seeds[index]
    return last["paths"][index], {"fields": fields, "parsed": parsed}


def wire_result_sends(
    source: GenerationTab,
    txt2img: GenerationTab,
    img2img: GenerationTab,
    tabs: gr.Tabs,
    extras: tuple[str, gr.Image] | None = None,
) -> None:
    """The send-to row under ``source``'s gallery. ``extras``: (tab id, image component)
    of the Extras tab, when an extension provides one."""
    panel, last_result = source.form.results, source.last_result
    target = img2img.form
    modes = target.img2img

    if panel.send_to_txt2img is not None:

        def to_txt2img(last: dict[str, Any] | None) -> list[Any]:
            _path, selected = _selected(last)
            return [*_fields_to_updates(txt2img.form, selected["fields"]), gr.Tabs(selected="txt2img")]

        panel.send_to_txt2img.click(
            to_txt2img, inputs=[last_result], outputs=[*_form_outputs(txt2img.form), tabs]
        )

    if modes is None:
        return

    def to_img2img(last: dict[str, Any] | None, mode: str) -> list[Any]:
        path, selected = _selected(last)
        image = open_image(path)
        value = image if mode == "img2img" else editor_value(image)
        return [
            value,
            *_fields_to_updates(target, selected["fields"]),
            *_inpaint_updates(target, selected["parsed"]),
            *select_mode(modes, mode),
            gr.Tabs(selected="img2img"),
        ]

    common = [*_form_outputs(target), *_inpaint_outputs(target), *mode_outputs(modes), tabs]
    panel.send_to_img2img.click(
        lambda last: to_img2img(last, "img2img"), inputs=[last_result], outputs=[modes.init_image, *common]
    )
    if panel.send_to_inpaint is not None:
        panel.send_to_inpaint.click(
            lambda last: to_img2img(last, "inpaint"), inputs=[last_result], outputs=[modes.inpaint, *common]
        )
    if extras is not None and panel.send_to_extras is not None:
        tab_id, extras_image = extras
        panel.send_to_extras.visible = True

        def to_extras(last: dict[str, Any] | None) -> list[Any]:
            path, _selected_info = _selected(last)
            # the file itself: Gradio re-encodes an image without its text chunks, and Extras
            # keeps the source's parameters in what it saves
            return [path, gr.Tabs(selected=tab_id)]

        panel.send_to_extras.click(to_extras, inputs=[last_result], outputs=[extras_image, tabs])


def wire_png_info_sends(
    png: PngInfoTab, txt2img: GenerationTab, img2img: GenerationTab, tabs: gr.Tabs
) -> None:
    def to_txt2img(fields: dict[str, Any] | None) -> list[Any]:
        if not fields:
            raise gr.Error("No generation parameters in this image.")
        return [*_fields_to_updates(txt2img.form, fields), gr.Tabs(selected="txt2img")]

    modes = img2img.form.img2img
    mode_updates = (lambda: select_mode(modes, "img2img")) if modes is not None else list
    mode_components = mode_outputs(modes) if modes is not None else []

    def to_img2img(fields: dict[str, Any] | None, path: str | None) -> list[Any]:
        if not path:
            raise gr.Error("Drop an image first.")
        updates = _fields_to_updates(img2img.form, fields or {})
        return [open_image(path), *updates, *mode_updates(), gr.Tabs(selected="img2img")]

    png.send_to_txt2img.click(to_txt2img, inputs=[png.fields], outputs=[*_form_outputs(txt2img.form), tabs])
    png.send_to_img2img.click(
        to_img2img,
        inputs=[png.fields, png.image],
        outputs=[img2img.form.init_image, *_form_outputs(img2img.form), *mode_components, tabs],
    )
