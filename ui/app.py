"""The WebUI: one Gradio Blocks app with the core tabs and the extensions' tabs, mounted
at "/" on the FastAPI app that already serves the REST API (one port for both).

``mount(app, host, service)`` must be called after every API route is registered:
routes added after Gradio is mounted at "/" are shadowed by it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from plugin_api.localization import set_translator
from ui.extension_tabs import build_extension_tabs
from ui.extensions_tab import build_extensions_tab
from ui.generation_queue import KEYS_JS
from ui.history_tab import build_history_tab, wire_history_sends
from ui.i18n import active_localizations, build_i18n, t, use_localizations
from ui.img2img import build_img2img_tab
from ui.job_client import JobClient
from ui.language import add_language_middleware, register_language_setting, request_language
from ui.localization import load_localizations
from ui.png_info import build_png_info_tab
from ui.progress_view import PROGRESS_CSS
from ui.queue_tab import build_queue_tab
from ui.quicksettings import build_quicksettings, wire_quicksettings
from ui.send_to import wire_png_info_sends, wire_result_sends
from ui.settings_tab import build_settings_tab
from ui.translated_blocks import TABLE_HEADERS_JS, translate_blocks
from ui.txt2img import build_txt2img_tab
from ui.uploads import DELETE_CACHE, MB, keep_uploads_in_data_folder

log = logging.getLogger("easel.ui")

TITLE = "Easel"


def build_blocks(host: Any, service: Any) -> gr.Blocks:
    """The whole WebUI; every generation goes through ``service`` (the job queue)."""
    register_language_setting(host)
    # the core's and every loaded extension's localizations/*.json (bad files are
    # reported in the Extensions tab and skipped)
    localizations = load_localizations(host)
    use_localizations(localizations)
    # extensions' run-time texts (plugin_api.localization.translate) in the page's language
    set_translator(lambda text, request: localizations.translate(text, request_language(request, host)))
    client = JobClient(service)
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=DELETE_CACHE) as blocks:
        quick = build_quicksettings(host, service)  # A1111's bar: checkpoint, VAE, clip skip
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab(t("tab.txt2img"), id="txt2img", elem_id="tab_txt2img") as txt2img_tab:
                txt2img = build_txt2img_tab(host, service, client)
            with gr.Tab(t("tab.img2img"), id="img2img", elem_id="tab_img2img") as img2img_tab:
                img2img = build_img2img_tab(host, service, client)
            with gr.Tab(t("tab.queue"), id="queue", elem_id="tab_queue") as queue_tab:
                queue = build_queue_tab(client, Path(host.settings.outputs_dir))
            with gr.Tab(t("tab.history"), id="history", elem_id="tab_history") as history_tab:
                history = build_history_tab(host)
            with gr.Tab(t("tab.png_info"), id="png_info", elem_id="tab_png_info") as png_info_tab:
                png_info = build_png_info_tab(host)
            with gr.Tab(t("tab.extensions"), id="extensions", elem_id="tab_extensions") as extensions_tab:
                build_extensions_tab(host)
            with gr.Tab(t("tab.settings"), id="settings", elem_id="tab_settings") as settings_tab:
                build_settings_tab(host, service)
            extension_tabs = build_extension_tabs(host, client)
        extras = next(
            ((b.elem_id, b.send_to_image) for b in extension_tabs if b.send_to_image is not None), None
        )
        for source in (txt2img, img2img):  # every result gallery: send to txt2img, img2img, inpaint, Extras
            wire_result_sends(source, txt2img, img2img, tabs, extras)
        wire_quicksettings(quick, blocks, host, [txt2img.form, img2img.form])
        wire_png_info_sends(png_info, txt2img, img2img, tabs)
        wire_history_sends(history, host, txt2img, img2img, tabs)
        # the history lists the outputs folders afresh whenever it is shown
        history_tab.select(
            history.reload,
            inputs=[history.folder, history.date],
            outputs=history.outputs,
            show_progress="hidden",
        )
        # The queue table polls only while its tab is shown.
        queue_tab.select(
            lambda on: gr.Timer(active=bool(on)), inputs=[queue.auto_refresh], outputs=[queue.timer]
        )
        for other in (txt2img_tab, img2img_tab, history_tab, png_info_tab, extensions_tab, settings_tab):
            other.select(lambda: gr.Timer(active=False), outputs=[queue.timer], show_progress="hidden")
    translate_blocks(blocks, localizations)
    return blocks


def mount(app: Any, host: Any, service: Any) -> Any:
    """Build the WebUI and mount it at "/" of ``app``; returns the app."""
    add_language_middleware(app, host)
    keep_uploads_in_data_folder(app, host)  # before the Blocks: Gradio reads the folder then
    blocks = build_blocks(host, service)
    return gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        i18n=build_i18n(active_localizations()),
        css=PROGRESS_CSS,
        head=KEYS_JS,  # Ctrl+Enter generates, Esc interrupts
        js=TABLE_HEADERS_JS,
        allowed_paths=[str(host.settings.outputs_dir)],
        # not "settings": Gradio's settings panel has a language picker of its own, and
        # the Settings tab's "Interface language" is the one language selector
        footer_links=["api"],
        server_name=host.settings.host,
        server_port=host.settings.port,
        max_file_size=int(float(host.settings.upload_quota_mb) * MB),
    )
