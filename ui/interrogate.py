"""The WebUI's Interrogate buttons (img2img: fills the prompt; PNG Info: shows the
caption), through the same interrogator choice as ``/sdapi/v1/interrogate``."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from core.interrogate import InterrogatorUnavailable, find_interrogator
from ui.i18n import say
from ui.language import request_language

log = logging.getLogger("easel.ui")

DEFAULT_INTERROGATOR = "clip"  # A1111's name: the first registered captioner that can run


def caption_image(
    host: Any, image: Any, model: str | None, name: str = DEFAULT_INTERROGATOR, language: str = "en"
) -> str:
    """The caption of ``image``; raises gr.Error saying what to install when none fits.
    ``model``: the model the image is for (the demo captioner answers only the demo's)."""
    if image is None:
        raise gr.Error(say("no image to interrogate: upload one first", language))
    if isinstance(image, str):  # a file path (PNG Info keeps the file's text chunks)
        from PIL import Image

        with Image.open(image) as opened:
            image = opened.convert("RGB")
    try:
        spec = find_interrogator(host.interrogators, name, model or None)
    except InterrogatorUnavailable as exc:
        log.info("interrogate refused: %s", exc)
        raise gr.Error(str(exc)) from None
    return spec.interrogate(image.convert("RGB"))


def wire_interrogate(host: Any, button: gr.Button, image: gr.Image, model: Any, target: gr.Textbox) -> None:
    """``button`` captions ``image`` into ``target``. ``model``: a component holding the
    model name (the form's dropdown), a gr.State of parsed fields, or None."""

    def run(request: gr.Request, picture: Any, chosen: Any = None) -> str:  # request: injected
        if isinstance(chosen, dict):  # PNG Info's parsed fields
            chosen = chosen.get("model")
        model_name = chosen if isinstance(chosen, str) else None
        return caption_image(host, picture, model_name, language=request_language(request, host))

    inputs = [image] if model is None else [image, model]
    button.click(run, inputs=inputs, outputs=[target])
