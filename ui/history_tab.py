"""The History tab: an image browser over the outputs folders (txt2img, img2img, extras,
grids), newest first by date, with each image's infotext, "send to" txt2img/img2img and
delete (to ``outputs/.trash/``; see ``ui.history_files`` for the path confinement).

The listing shown lives in a ``gr.State`` (kept on the server): a click names an index
into it, and the path is confined again before anything is read or moved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ui.history_files import (
    ALL_DATES,
    HISTORY_FOLDERS,
    HistoryError,
    confine,
    dates,
    list_images,
    move_to_trash,
)
from ui.i18n import t
from ui.png_info import form_fields, open_image, parse, read_parameters

log = logging.getLogger("easel.ui")


@dataclass
class HistoryTab:
    folder: gr.Dropdown
    date: gr.Dropdown
    refresh: gr.Button
    gallery: gr.Gallery
    path: gr.Textbox
    info: gr.Textbox
    send_to_txt2img: gr.Button
    send_to_img2img: gr.Button
    delete: gr.Button
    message: gr.Textbox
    listing: gr.State  # the relative paths the gallery shows, in its order
    selected: gr.State  # the relative path of the clicked image, or None
    reload: Any  # (folder, date) -> updates of ``outputs``: run when the tab is shown
    outputs: list[Any]


def build_history_tab(host: Any) -> HistoryTab:
    root = Path(host.settings.outputs_dir)
    with gr.Row():
        folder = gr.Dropdown(
            choices=list(HISTORY_FOLDERS), value=HISTORY_FOLDERS[0], label=t("history.folder"),
            elem_id="history_folder", scale=2,
        )  # fmt: skip
        date = gr.Dropdown(
            choices=[ALL_DATES], value=ALL_DATES, label=t("history.date"), elem_id="history_date", scale=2
        )
        refresh = gr.Button(t("history.refresh"), elem_id="history_refresh", size="sm", scale=0)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            gallery = gr.Gallery(
                label=t("history.images"), elem_id="history_gallery", columns=6, height=560,
                object_fit="cover", allow_preview=False, interactive=False,
            )  # fmt: skip
        with gr.Column(scale=2):
            path = gr.Textbox(label=t("history.path"), elem_id="history_path", interactive=False, max_lines=1)
            info = gr.Textbox(label=t("gen.info"), elem_id="history_info", lines=8, interactive=False)
            with gr.Row():
                send_txt = gr.Button(t("png.send_to_txt2img"), elem_id="history_send_to_txt2img", size="sm")
                send_img = gr.Button(t("png.send_to_img2img"), elem_id="history_send_to_img2img", size="sm")
                delete = gr.Button(t("history.delete"), elem_id="history_delete", variant="stop", size="sm")
            message = gr.Textbox(label=t("history.message"), elem_id="history_message", interactive=False)
    listing = gr.State([])
    selected = gr.State(None)

    def show(folder_name: str, day: str) -> tuple[Any, Any, list[str], None, str, str]:
        try:
            days = dates(root, folder_name)
            day = day if day in days else ALL_DATES
            images = list_images(root, folder_name, day)
        except (HistoryError, OSError) as exc:
            return gr.update(), gr.update(), [], None, "", str(exc)
        shown = [(str(image.path), image.path.name) for image in images]
        note = f"{len(images)} image(s)" if images else "no images here yet"
        return (
            gr.update(choices=[ALL_DATES, *days], value=day),
            shown,
            [image.relative for image in images],
            None,
            "",
            note,
        )

    def pick(current: list[str], evt: gr.SelectData) -> tuple[str | None, str, str]:
        index = evt.index if isinstance(evt.index, int) else 0
        if not 0 <= index < len(current):
            return None, "", ""
        relative = current[index]
        try:
            image = open_image(str(confine(root, relative)))
        except (HistoryError, gr.Error) as exc:
            return None, "", str(exc)
        return relative, relative, read_parameters(image)

    def delete_selected(relative: str | None, folder_name: str, day: str) -> tuple[Any, ...]:
        if not relative:
            return (*show(folder_name, day)[:5], "choose an image first")
        try:
            moved = move_to_trash(root, relative)
        except (HistoryError, OSError) as exc:
            log.info("history: refused to delete %r: %s", relative, exc)
            return (gr.update(), gr.update(), gr.update(), relative, relative, str(exc))
        log.info("history: moved %s to %s", relative, moved)
        updates = show(folder_name, day)
        return (*updates[:5], f"moved to {moved.relative_to(root.resolve()).as_posix()}")

    outputs = [date, gallery, listing, selected, path, message]
    refresh.click(show, inputs=[folder, date], outputs=outputs)
    folder.change(lambda name: show(name, ALL_DATES), inputs=[folder], outputs=outputs)
    date.input(show, inputs=[folder, date], outputs=outputs)
    gallery.select(pick, inputs=[listing], outputs=[selected, path, info], show_progress="hidden")
    delete.click(delete_selected, inputs=[selected, folder, date], outputs=outputs)
    return HistoryTab(
        folder, date, refresh, gallery, path, info, send_txt, send_img, delete, message, listing, selected,
        show, outputs,
    )  # fmt: skip


def history_fields(host: Any, relative: str | None) -> tuple[dict[str, Any], Any]:
    """The form fields of the chosen image's infotext, and the image itself."""
    if not relative:
        raise gr.Error("Choose an image first.")
    try:
        path = confine(Path(host.settings.outputs_dir), relative)
    except HistoryError as exc:
        raise gr.Error(str(exc)) from None
    image = open_image(str(path))
    text = read_parameters(image)
    try:
        return form_fields(parse(text)), image
    except Exception as exc:  # a damaged infotext still sends the image
        log.warning("could not parse infotext of %s: %s", relative, exc)
        return {}, image


def wire_history_sends(history: HistoryTab, host: Any, txt2img: Any, img2img: Any, tabs: gr.Tabs) -> None:
    """Send the chosen image's parameters to txt2img, or the image and them to img2img."""
    from ui.send_to import _fields_to_updates, _form_outputs

    def to_txt2img(relative: str | None) -> list[Any]:
        fields, _ = history_fields(host, relative)
        return [*_fields_to_updates(txt2img.form, fields), gr.Tabs(selected="txt2img")]

    def to_img2img(relative: str | None) -> list[Any]:
        fields, image = history_fields(host, relative)
        return [image, *_fields_to_updates(img2img.form, fields), gr.Tabs(selected="img2img")]

    history.send_to_txt2img.click(
        to_txt2img, inputs=[history.selected], outputs=[*_form_outputs(txt2img.form), tabs]
    )
    if img2img.form.init_image is not None:
        history.send_to_img2img.click(
            to_img2img,
            inputs=[history.selected],
            outputs=[img2img.form.init_image, *_form_outputs(img2img.form), tabs],
        )
