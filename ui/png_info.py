"""The PNG Info tab: drop an image, read the generation parameters stored in it (the
A1111 ``parameters`` text chunk), and send them to txt2img or img2img."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.i18n import t

log = logging.getLogger("easel.ui")

# Form field -> the names a parsed infotext may use for it (A1111's, then snake_case).
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "prompt": ("Prompt", "prompt"),
    "negative_prompt": ("Negative prompt", "negative_prompt"),
    "steps": ("Steps", "steps"),
    "sampler": ("Sampler", "sampler"),
    "scheduler": ("Schedule type", "scheduler"),
    "cfg_scale": ("CFG scale", "cfg_scale"),
    "distilled_cfg_scale": ("Distilled CFG Scale", "distilled_cfg_scale"),  # Forge's, FLUX.1-dev
    "late_cfg_scale": ("Late CFG scale", "late_cfg_scale"),
    "late_cfg_start": ("Late CFG start", "late_cfg_start"),
    "seed": ("Seed", "seed"),
    "width": ("Size-1", "width"),
    "height": ("Size-2", "height"),
    "model": ("Model", "model"),
    "vae": ("VAE", "vae"),  # A1111 writes it only when a VAE file replaced the model's own
}


@dataclass
class PngInfoTab:
    image: gr.Image
    raw: gr.Textbox
    parsed: gr.JSON
    fields: gr.State  # the parsed fields, normalised (see ``form_fields``)
    send_to_txt2img: gr.Button
    send_to_img2img: gr.Button
    interrogate: gr.Button | None = None
    caption: gr.Textbox | None = None


def open_image(path: str | None) -> Any:
    if not path:
        return None
    from plugin_api.errors import InvalidRequest
    from plugin_api.images import open_image as open_checked  # size checked before decoding

    try:
        return open_checked(path, "image")
    except InvalidRequest as exc:
        raise gr.Error(exc.message) from None


def read_parameters(image: Any) -> str:
    """The infotext stored in an image (PNG text chunk, or JPEG/WebP EXIF UserComment)."""
    if image is None:
        return ""
    from core.saving.writer import infotext_of  # the engine's own reader

    return infotext_of(image) or ""


def parse(text: str) -> dict[str, Any]:
    """Fields of an A1111 infotext, by the project's parser."""
    from core.saving.infotext import parse_infotext  # the one parser the engine also uses

    return dict(parse_infotext(text)) if text.strip() else {}


def form_fields(parsed: dict[str, Any]) -> dict[str, Any]:
    """The parsed infotext as the generation form's fields (absent ones are left out)."""
    fields: dict[str, Any] = {}
    for name, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            if alias in parsed and parsed[alias] not in (None, ""):
                fields[name] = parsed[alias]
                break
    sampler = fields.get("sampler")
    if isinstance(sampler, str) and "scheduler" not in fields:
        # A1111 before 1.9 wrote the schedule into the sampler name ("DPM++ 2M Karras")
        from core.schedules import split_schedule_suffix

        split = split_schedule_suffix(sampler)
        if split is not None:
            fields["sampler"], fields["scheduler"] = split[0], split[1].label
    size = parsed.get("Size") or parsed.get("size")
    if isinstance(size, str) and "x" in size and ("width" not in fields or "height" not in fields):
        w, _, h = size.partition("x")
        fields.setdefault("width", w)
        fields.setdefault("height", h)
    numbers = (
        ("steps", int), ("seed", int), ("width", int), ("height", int), ("cfg_scale", float),
        ("late_cfg_scale", float), ("late_cfg_start", float), ("distilled_cfg_scale", float),
    )  # fmt: skip
    from ui.cache_controls import cache_form_fields

    fields.update(cache_form_fields(parsed.get("Cache")))
    for name, kind in numbers:
        if name in fields:
            try:
                fields[name] = kind(float(fields[name]))
            except (TypeError, ValueError):
                fields.pop(name)
    return fields


def build_png_info_tab(host: Any = None) -> PngInfoTab:
    with gr.Row(equal_height=False):
        with gr.Column():
            # a file path, not a PIL image: Gradio's own decoding may drop the text chunks
            image = gr.Image(label=t("png.image"), type="filepath", elem_id="png_info_image", height=360)
        with gr.Column():
            raw = gr.Textbox(
                label=t("png.parameters"), elem_id="png_info_parameters", lines=6, interactive=False
            )
            parsed = gr.JSON(label=t("png.parsed"), elem_id="png_info_parsed")
            with gr.Row():
                send_txt = gr.Button(t("png.send_to_txt2img"), elem_id="png_info_send_to_txt2img")
                send_img = gr.Button(t("png.send_to_img2img"), elem_id="png_info_send_to_img2img")
            with gr.Row():
                interrogate = gr.Button(t("gen.interrogate"), elem_id="png_info_interrogate", size="sm")
                caption = gr.Textbox(label=t("png.caption"), elem_id="png_info_caption", interactive=False)
    fields = gr.State({})

    def on_image(path: str | None) -> tuple[str, dict[str, Any], dict[str, Any]]:
        text = read_parameters(open_image(path))
        try:
            values = parse(text)
        except Exception as exc:  # a damaged infotext shows the raw text and the reason
            log.warning("could not parse infotext: %s", exc)
            return text, {"error": str(exc)}, {}
        return text, values, form_fields(values)

    image.change(on_image, inputs=[image], outputs=[raw, parsed, fields])
    if host is not None:
        from ui.interrogate import wire_interrogate

        # the image's own model (its infotext) decides which captioner may answer
        wire_interrogate(host, interrogate, image, fields, caption)
    return PngInfoTab(image, raw, parsed, fields, send_txt, send_img, interrogate, caption)
