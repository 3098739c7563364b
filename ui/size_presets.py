"""The size presets under the width/height sliders follow the model: its native sizes
(its ``easel.json``'s ``"sizes"``, else its native side at the usual aspect ratios:
core/models/sizes.py), and a hint shows when the chosen size is far above them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui import choices

log = logging.getLogger("easel.ui")

MAX_PRESET_BUTTONS = 8  # fixed slots; a model's presets fill the first ones


@dataclass
class SizePresets:
    buttons: list[gr.Button]
    sizes: gr.State  # the current model's [(width, height), ...]
    hint: gr.Markdown


def model_sizes(service: Any, name: str | None) -> tuple[list[tuple[int, int]], int]:
    """(presets, native side) of model ``name``; the family defaults' 512 without an engine."""
    from core.models.sizes import native_side, presets_for

    engine = choices.find_engine(service)
    info = None
    if engine is not None and name:
        try:
            info = engine.models.info(name)
        except Exception:  # an unreadable model entry: generic presets
            log.exception("could not read model %r", name)
    default_side, multiple = choices.DEFAULT_SIZE, 8
    if info is not None:
        try:
            from core.families import get_family

            defaults = get_family(info.family).defaults_for(info.variant)
            default_side, multiple = defaults.width, defaults.size_multiple
        except Exception:
            log.exception("no family defaults for model %r", name)
    return presets_for(info, default_side, multiple)[:MAX_PRESET_BUTTONS], native_side(info, default_side)


def hint_text(service: Any, name: str | None, width: float | None, height: float | None) -> str:
    from core.models.sizes import size_hint

    _, side = model_sizes(service, name)
    hint = size_hint(int(width or 0), int(height or 0), side)
    return f"⚠ {hint}" if hint else ""


def _button_updates(sizes: list[tuple[int, int]]) -> list[Any]:
    updates = []
    for slot in range(MAX_PRESET_BUTTONS):
        if slot < len(sizes):
            width, height = sizes[slot]
            updates.append(gr.update(value=f"{width}×{height}", visible=True))
        else:
            updates.append(gr.update(visible=False))
    return updates


def build_size_presets(prefix: str, service: Any, model: str | None) -> SizePresets:
    sizes, _ = model_sizes(service, model)
    buttons = []
    with gr.Row(elem_id=f"{prefix}_size_presets"):
        for slot in range(MAX_PRESET_BUTTONS):
            label = f"{sizes[slot][0]}×{sizes[slot][1]}" if slot < len(sizes) else ""
            buttons.append(
                gr.Button(
                    label,
                    size="sm",
                    elem_id=f"{prefix}_preset_{slot}",
                    min_width=60,
                    scale=0,
                    visible=slot < len(sizes),
                )
            )
    hint = gr.Markdown("", elem_id=f"{prefix}_size_hint")
    return SizePresets(buttons, gr.State(sizes), hint)


def wire_size_presets(presets: SizePresets, service: Any, model: Any, width: Any, height: Any) -> None:
    for slot, button in enumerate(presets.buttons):
        button.click(
            lambda sizes, slot=slot: tuple(sizes[slot]) if slot < len(sizes) else (gr.update(), gr.update()),
            inputs=[presets.sizes],
            outputs=[width, height],
            show_progress="hidden",
        )

    def on_model(name: str | None, w: float, h: float) -> list[Any]:
        sizes, _ = model_sizes(service, name)
        return [sizes, hint_text(service, name, w, h), *_button_updates(sizes)]

    model.change(
        on_model, inputs=[model, width, height], outputs=[presets.sizes, presets.hint, *presets.buttons],
        show_progress="hidden",
    )  # fmt: skip
    for slider in (width, height):
        slider.change(
            lambda name, w, h: hint_text(service, name, w, h),
            inputs=[model, width, height],
            outputs=[presets.hint],
            show_progress="hidden",
        )
