"""The LoRA browser tab: a table of the LoRA files (name, family, rank, hash) and the
``<lora:name:weight>`` tag of the chosen one, ready to copy into a prompt.

Gradio is imported inside ``build_tab`` so that the extension loads without it (CLI, API).
"""

from __future__ import annotations

from typing import Any

from extensions.lora.library import LoraLibrary
from extensions.lora.syntax import format_tag

COLUMNS = ["Name", "Family", "Rank", "Hash", "Note"]


def table_rows(library: LoraLibrary) -> list[list[Any]]:
    rows = []
    for info in library.scan():
        note = "refused: " + info.problem.split(": ", 1)[-1] if info.problem else ""
        rows.append([info.name, info.family, info.rank if info.rank is not None else "", info.hash, note])
    return rows


def tag_for(rows: list[list[Any]], index: int | None, weight: float) -> str:
    if index is None or not 0 <= index < len(rows):
        return ""
    return format_tag(str(rows[index][0]), float(weight))


def build_tab(library: LoraLibrary) -> None:
    import gradio as gr

    rows = table_rows(library)
    gr.Markdown(
        "LoRA files from `models/Lora` (safetensors only). Pick a row, set a weight and copy "
        "the tag into your prompt (`<lora:name:weight>`; several tags may be combined)."
    )
    table = gr.Dataframe(value=rows, headers=COLUMNS, interactive=False, elem_id="lora_table")
    with gr.Row():
        weight = gr.Slider(-2.0, 2.0, value=1.0, step=0.05, label="Weight", elem_id="lora_weight")
        tag = gr.Textbox(label="Prompt tag", buttons=["copy"], interactive=True, elem_id="lora_tag")
    refresh = gr.Button("Refresh", elem_id="lora_refresh")
    selected = gr.State(None)
    shown = gr.State(rows)

    def on_select(current: list[list[Any]], w: float, event: gr.SelectData) -> tuple[int, str]:
        index = event.index[0] if isinstance(event.index, list | tuple) else event.index
        return index, tag_for(current, index, w)

    # Gradio passes the SelectData only to a parameter whose resolved type hint says so;
    # with postponed annotations the hint is the string "gr.SelectData", which cannot be
    # resolved from this module's globals (gradio is imported here, lazily), so the event
    # never came and a row click failed ('NoneType' object has no attribute 'index')
    on_select.__annotations__["event"] = gr.SelectData

    def on_refresh() -> tuple[Any, list[list[Any]], None, str]:
        fresh = table_rows(library)
        return fresh, fresh, None, ""

    table.select(on_select, inputs=[shown, weight], outputs=[selected, tag])
    weight.change(lambda current, index, w: tag_for(current, index, w), [shown, selected, weight], tag)
    refresh.click(on_refresh, outputs=[table, shown, selected, tag])
