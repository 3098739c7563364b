"""The Chinese-prompt accordion in the txt2img and img2img forms: this generation's mode
(or the ``zh_prompt.mode`` setting). Its value reaches the request as
``alwayson_scripts.zh_prompt.args`` = ``[mode]`` would (see ``requested_mode``)."""

from __future__ import annotations

from typing import Any

from extensions.zh_prompt.translator import MODES

FROM_SETTING = ""  # the choice that sends nothing: the setting decides


def to_args(values: list[Any]) -> list[str] | None:
    (mode,) = values
    return [mode] if mode else None


def build(tab: str) -> list[Any]:
    import gradio as gr

    choices = [("Setting (zh_prompt.mode)", FROM_SETTING), ("auto", "auto"), *[(m, m) for m in MODES]]
    mode = gr.Radio(
        choices,
        value=FROM_SETTING,
        label="Chinese prompt",  # translated by localizations/zh-CN.json
        info="auto: translate for CLIP models, augment for models that read Chinese (Z-Image)",
        elem_id=f"{tab}_zh_prompt_mode",
    )
    return [mode]
