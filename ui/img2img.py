"""The img2img tab: an input image and a prompt in, images out, through the job queue."""

from __future__ import annotations

from typing import Any

from ui.generation_form import build_generation_form
from ui.generation_run import wire_generation
from ui.interrogate import wire_interrogate
from ui.job_client import JobClient
from ui.txt2img import GenerationTab


def build_img2img_tab(host: Any, service: Any, client: JobClient) -> GenerationTab:
    form = build_generation_form("img2img", host, service, img2img=True)
    last_result = wire_generation(form, client, host, service)
    if form.interrogate is not None and form.init_image is not None:
        wire_interrogate(host, form.interrogate, form.init_image, form.model, form.prompt)
    return GenerationTab(form, last_result)
