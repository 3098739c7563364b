"""The txt2img tab: a prompt in, images out, through the job queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.generation_form import GenerationForm, build_generation_form
from ui.generation_run import wire_generation
from ui.job_client import JobClient


@dataclass
class GenerationTab:
    form: GenerationForm
    last_result: gr.State


def build_txt2img_tab(host: Any, service: Any, client: JobClient) -> GenerationTab:
    form = build_generation_form("txt2img", host, service, img2img=False)
    last_result = wire_generation(form, client, host, service)
    return GenerationTab(form, last_result)
