"""txt2img's "Hires. fix" accordion (A1111's): sample at the form's size, upscale (in latent
space or with an upscaler), then an img2img pass at the larger size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.sampling.hires import hires_upscaler_names
from plugin_api.types import GenerationRequest
from ui.i18n import t

DEFAULT_SCALE = 2.0
DEFAULT_DENOISE = 0.7  # A1111's hires default


@dataclass
class HiresControls:
    enable: gr.Checkbox
    upscaler: gr.Dropdown
    scale: gr.Slider
    steps: gr.Slider
    denoising_strength: gr.Slider

    def inputs(self) -> list[gr.components.Component]:
        """In the order ``apply_hires`` takes them."""
        return [self.enable, self.upscaler, self.scale, self.steps, self.denoising_strength]


def build_hires_controls(prefix: str, host: Any) -> HiresControls:
    # the latent modes, then every registered upscaler (Lanczos, ESRGAN files...)
    names = hires_upscaler_names(host.upscalers)
    with gr.Accordion(t("hires.title"), open=False, elem_id=f"{prefix}_hires"):
        enable = gr.Checkbox(value=False, label=t("hires.enable"), elem_id=f"{prefix}_enable_hr")
        with gr.Row():
            upscaler = gr.Dropdown(
                choices=names, value=names[0], label=t("hires.upscaler"), elem_id=f"{prefix}_hr_upscaler"
            )
            scale = gr.Slider(
                1.0, 4.0, value=DEFAULT_SCALE, step=0.05, label=t("hires.scale"), elem_id=f"{prefix}_hr_scale"
            )
        with gr.Row():
            steps = gr.Slider(0, 150, value=0, step=1, label=t("hires.steps"), elem_id=f"{prefix}_hr_steps")
            denoise = gr.Slider(
                0.0,
                1.0,
                value=DEFAULT_DENOISE,
                step=0.01,
                label=t("gen.denoising"),
                elem_id=f"{prefix}_hr_denoise",
            )
    return HiresControls(enable, upscaler, scale, steps, denoise)


def apply_hires(
    request: GenerationRequest,
    enable: bool | None,
    upscaler: str | None,
    scale: float | None,
    steps: float | None,
    denoising_strength: float | None,
) -> GenerationRequest:
    """Turn hires fix on in ``request`` when the box is ticked (the engine checks the values
    and names the field that is wrong)."""
    if enable:
        request.enable_hr = True
        request.hr_upscaler = upscaler or None
        request.hr_scale = float(scale if scale is not None else DEFAULT_SCALE)
        request.hr_second_pass_steps = int(steps or 0)
        request.denoising_strength = float(
            denoising_strength if denoising_strength is not None else DEFAULT_DENOISE
        )
    return request
