"""A1111's prompt styles in the generation form: a picker of the styles in styles.csv
(data folder) whose choice goes with the request (``styles``), and "apply to prompt",
which writes the chosen styles into the prompt boxes and clears the choice, as A1111's
button does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from core.styles import apply_styles, load_styles, styles_path
from ui.i18n import Message, say, t
from ui.language import request_language


@dataclass
class StylesPicker:
    styles: gr.Dropdown
    apply: gr.Button


def _path(host: Any) -> Path:
    return styles_path(host.settings.data_dir)


def build_styles_picker(prefix: str, host: Any) -> StylesPicker:
    with gr.Row():
        styles = gr.Dropdown(
            choices=list(load_styles(_path(host))),
            value=[],
            multiselect=True,
            label=t("gen.styles"),
            elem_id=f"{prefix}_styles",
            scale=5,
        )
        apply = gr.Button(t("gen.apply_styles"), elem_id=f"{prefix}_apply_styles", size="sm", scale=1)
    return StylesPicker(styles, apply)


def wire_styles_picker(picker: StylesPicker, prompt: gr.Textbox, negative: gr.Textbox, host: Any) -> None:
    def apply(
        prompt_text: str, negative_text: str, names: list[str] | None, request: gr.Request | None = None
    ) -> tuple[str, str, Any]:
        styled, styled_negative, missing = apply_styles(
            prompt_text or "", negative_text or "", list(names or []), _path(host)
        )
        if missing:
            message = Message("not in styles.csv: {names}", names=", ".join(missing))
            gr.Warning(say(message, request_language(request, host)))
        return styled, styled_negative, gr.update(value=[])

    picker.apply.click(
        apply, inputs=[prompt, negative, picker.styles], outputs=[prompt, negative, picker.styles]
    )
