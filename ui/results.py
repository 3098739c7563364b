"""The results panel under a generation form: gallery, generation info, downloads.

Images are the files the engine wrote in ``outputs/``; downloading all of them builds a
zip in a temporary file (written under a temp name, then renamed).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ui.i18n import say, t
from ui.language import request_language

SEED_PATTERN = re.compile(r"(?:^|[,\n]\s*)Seed:\s*(-?\d+)")


@dataclass
class ResultsPanel:
    gallery: gr.Gallery
    info: gr.Textbox
    timing: gr.Markdown
    send_to_img2img: gr.Button
    download_selected: gr.Button
    download_all: gr.Button
    download_file: gr.File
    # A1111's "send to" row (ui/send_to.py): the selected image and its parameters
    send_to_txt2img: gr.Button | None = None  # img2img's results only
    send_to_inpaint: gr.Button | None = None
    send_to_extras: gr.Button | None = None  # shown when an Extras tab takes images


def build_results_panel(prefix: str, with_send_to_txt2img: bool = False) -> ResultsPanel:
    gallery = gr.Gallery(
        label=t("gen.gallery"),
        elem_id=f"{prefix}_gallery",
        # fixed columns: with fit_columns a single image is as wide as the panel and
        # its square cell is cut off by the gallery's height
        columns=2,
        fit_columns=False,
        height=420,
        object_fit="contain",
        interactive=False,
        preview=False,
    )
    info = gr.Textbox(
        label=t("gen.info"),
        elem_id=f"{prefix}_info",
        lines=4,
        interactive=False,
        buttons=["copy"],
    )
    timing = gr.Markdown(elem_id=f"{prefix}_timing")
    with gr.Row(elem_id=f"{prefix}_send_to"):
        send_txt2img = (
            gr.Button(t("gen.send_to_txt2img"), elem_id=f"{prefix}_send_to_txt2img", size="sm")
            if with_send_to_txt2img
            else None
        )
        send = gr.Button(t("gen.send_to_img2img"), elem_id=f"{prefix}_send_to_img2img", size="sm")
        send_inpaint = gr.Button(t("gen.send_to_inpaint"), elem_id=f"{prefix}_send_to_inpaint", size="sm")
        send_extras = gr.Button(
            t("gen.send_to_extras"), elem_id=f"{prefix}_send_to_extras", size="sm", visible=False
        )
    with gr.Row():
        download_selected = gr.Button(t("gen.download_selected"), elem_id=f"{prefix}_download_one", size="sm")
        download_all = gr.Button(t("gen.download_all"), elem_id=f"{prefix}_download_zip", size="sm")
    download_file = gr.File(label=t("gen.downloads"), elem_id=f"{prefix}_download", visible=False)
    return ResultsPanel(
        gallery, info, timing, send, download_selected, download_all, download_file,
        send_to_txt2img=send_txt2img, send_to_inpaint=send_inpaint, send_to_extras=send_extras,
    )  # fmt: skip


def seed_from_infotext(infotext: str) -> int | None:
    match = SEED_PATTERN.search(infotext or "")
    return int(match.group(1)) if match else None


def selected_index(last: dict[str, Any] | None) -> int:
    if not last:
        return 0
    index = int(last.get("selected", 0) or 0)
    return index if 0 <= index < len(last.get("paths", [])) else 0


def info_for_selection(last: dict[str, Any] | None, evt: gr.SelectData) -> tuple[str, dict[str, Any] | None]:
    """Show the infotext of the image clicked in the gallery."""
    if not last:
        return "", last
    last = {**last, "selected": int(evt.index or 0)}
    infotexts = last.get("infotexts", [])
    index = selected_index(last)
    return (infotexts[index] if index < len(infotexts) else ""), last


def download_selected(last: dict[str, Any] | None, request: gr.Request) -> Any:
    if not last or not last.get("paths"):
        raise gr.Error(say("Generate an image first.", request_language(request)))
    return gr.update(value=last["paths"][selected_index(last)], visible=True)


def build_zip(paths: list[str], job_id: str = "") -> str:
    """All images of one result in a zip, built atomically in the temp folder."""
    folder = Path(tempfile.gettempdir()) / "easel-downloads"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"easel-{job_id or time.strftime('%Y%m%d-%H%M%S')}.zip"
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".partial-", suffix=".zip")
    os.close(fd)
    used: set[str] = set()
    with zipfile.ZipFile(tmp_name, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in paths:
            arcname = Path(path).name
            while arcname in used:  # two batches can produce the same file name
                arcname = f"{Path(arcname).stem}_{len(used)}{Path(arcname).suffix}"
            used.add(arcname)
            archive.write(path, arcname)
    final = folder / name
    os.replace(tmp_name, final)
    return str(final)


def download_all(last: dict[str, Any] | None, request: gr.Request) -> Any:
    if not last or not last.get("paths"):
        raise gr.Error(say("Generate an image first.", request_language(request)))
    return gr.update(value=build_zip(last["paths"], last.get("job_id", "")), visible=True)


def wire_downloads(panel: ResultsPanel, last_result: gr.State) -> None:
    panel.gallery.select(info_for_selection, inputs=[last_result], outputs=[panel.info, last_result])
    panel.download_selected.click(download_selected, inputs=[last_result], outputs=[panel.download_file])
    panel.download_all.click(download_all, inputs=[last_result], outputs=[panel.download_file])
