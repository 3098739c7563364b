"""The WebUI tab: try a translation, and edit the user lexicon.

The handlers are plain functions (tested without a browser); ``build()`` wires them to
Gradio components and is the only place gradio is imported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from extensions.zh_prompt import convert
from extensions.zh_prompt import user_lexicon_path as confined_user_lexicon_path
from extensions.zh_prompt.dictionary import parse_lexicon_text
from extensions.zh_prompt.translator import MODES
from plugin_api.localization import translate

LEXICON_HEADER = (
    "# Your own translations, one per line: chinese<TAB>english[<TAB>category]\n"
    "# They outrank the built-in lexicon. Example:\n"
    "# 水彩风\twatercolor style\tstyle\n"
)


def translate_for_ui(text: str, mode: str, request: Any = None) -> tuple[str, str]:
    """(result, notes) for the Translate button (notes in the page's language)."""
    if mode not in MODES:
        return "", translate("unknown mode {mode}", request, mode=repr(mode))
    warnings: list[str] = []
    try:
        result, backend = convert(text or "", mode, warnings)
    except Exception as exc:  # shown in the tab, never raised into Gradio
        return "", translate("translation failed: {error}", request, error=f"{type(exc).__name__}: {exc}")
    notes = [translate("backend: {backend}", request, backend=backend), *warnings]
    return result, "\n".join(notes)


def user_lexicon_path() -> Path | None:
    """Resolved on every call from the (confined) setting: these handlers are Gradio
    endpoints any page could call, so they only ever touch <data dir>/zh_prompt/."""
    try:
        return confined_user_lexicon_path()
    except ValueError:  # the default file itself leads outside (a planted symlink)
        return None


def read_user_lexicon() -> str:
    path = user_lexicon_path()
    if path is None:
        return LEXICON_HEADER
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return LEXICON_HEADER
    except (OSError, UnicodeDecodeError) as exc:
        return f"# cannot read {path}: {exc}\n"


def save_user_lexicon(text: str, request: Any = None) -> str:
    """Validate and write the user lexicon atomically; returns a status line. Malformed
    lines are reported and nothing is written, so a typo never loses the file."""
    path = user_lexicon_path()
    if path is None:
        return translate("Not saved: there is no safe user lexicon file (has the host started?).", request)
    text = (text or "").replace("\r\n", "\n")
    entries, problems = parse_lexicon_text(text, path.name)
    if problems:
        return translate("Not saved:", request) + "\n" + "\n".join(problems)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n", "utf-8")
    tmp.replace(path)
    return translate("Saved {count} entries to {path}", request, count=len(entries), path=path)


def build() -> None:
    import gradio as gr

    with gr.Row():
        with gr.Column():
            source = gr.Textbox(label="Chinese prompt", lines=4, elem_id="zh_prompt_source")
            mode = gr.Radio(list(MODES), value="translate", label="Mode", elem_id="zh_prompt_mode")
            button = gr.Button("Translate", variant="primary", elem_id="zh_prompt_translate")
        with gr.Column():
            result = gr.Textbox(label="Result", lines=4, interactive=False, elem_id="zh_prompt_result")
            notes = gr.Textbox(label="Notes", lines=2, interactive=False, elem_id="zh_prompt_notes")
    # gradio is imported here, lazily: give the handlers' request parameter its resolved
    # type, so Gradio passes the request (the page's language for their messages)
    for handler in (translate_for_ui, save_user_lexicon):
        handler.__annotations__["request"] = gr.Request | None
    button.click(translate_for_ui, inputs=[source, mode], outputs=[result, notes])
    with gr.Accordion("User lexicon", open=False):
        lexicon = gr.Code(
            value=read_user_lexicon, label=str(user_lexicon_path() or ""), elem_id="zh_prompt_lexicon"
        )
        with gr.Row():
            save = gr.Button("Save", elem_id="zh_prompt_save")
            reload = gr.Button("Reload", elem_id="zh_prompt_reload")
        status = gr.Markdown(elem_id="zh_prompt_lexicon_status")
    save.click(save_user_lexicon, inputs=[lexicon], outputs=[status])
    reload.click(read_user_lexicon, outputs=[lexicon])
