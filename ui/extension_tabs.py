"""Tabs contributed by extensions (``ui_tabs``), each built in isolation.

A builder that raises gets an error panel naming the extension and the error in place of
its tab; whatever it created before failing is removed from the page (components and
event listeners), so the rest of the WebUI works as if the tab were empty.
"""

from __future__ import annotations

import html
import inspect
import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.context import get_blocks_context

from ui.i18n import t

log = logging.getLogger("easel.ui")


@dataclass
class BuiltTab:
    extension: str
    title: str
    elem_id: str  # also the tab's id (``gr.Tabs(selected=elem_id)`` shows it)
    error: str | None = None
    # the image component a ``build`` returned as {"send_to_image": gr.Image}: result
    # galleries get a "send to" button that puts their selected image there (Extras)
    send_to_image: Any | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_").lower() or "tab"


def _remove_partial(container: gr.Column, blocks_before: set[int], fns_before: set[int]) -> None:
    """Forget what a failed builder added: its components and its event listeners."""
    context = get_blocks_context()
    if context is not None:
        for block_id in set(context.blocks) - blocks_before:
            if block_id != container._id:
                context.blocks.pop(block_id, None)
        for fn_id in set(context.fns) - fns_before:
            context.fns.pop(fn_id, None)
    container.children.clear()


def job_runner(client: Any) -> Callable[[Any], dict[str, Any]]:
    """``generate(request)`` for extension tabs: queue the request as a job like the
    txt2img tab does, wait for it, and return ``{"images": [PIL], "infotexts": [str],
    "error": str | None}`` (bad input is an error string, never an exception)."""
    from core.errors import EaselError

    def generate(request: Any) -> dict[str, Any]:
        try:
            job_id = client.submit(request)
        except EaselError as exc:
            return {"images": [], "infotexts": [], "error": str(exc)}
        last = None
        for snapshot in client.follow(job_id):
            last = snapshot  # the final snapshot holds the result
        if last is None or last.status != "done":
            status = last.status if last is not None else "unknown"
            return {"images": [], "infotexts": [], "error": (last.error if last else None) or status}
        paths = client.result_paths(last.result)
        return {
            "images": client.load_images(paths),
            "infotexts": client.result_infotexts(last.result),
            "error": None,
        }

    return generate


def _parameters(build: Callable[..., Any]) -> list[str]:
    try:
        return list(inspect.signature(build).parameters)
    except (TypeError, ValueError):
        return []


def _build_arguments(
    build: Callable[..., Any], generate: Callable[[Any], dict[str, Any]] | None, host: Any
) -> tuple[list[Any], dict[str, Any]]:
    """A parameter named ``host`` gets the host (API 1.8); the first other parameter gets
    ``generate`` (a build taking one argument always did)."""
    names = _parameters(build)
    kwargs = {"host": host} if "host" in names and host is not None else {}
    others = [name for name in names if name != "host"]
    args = [generate] if others and generate is not None else []
    return args, kwargs


def build_extension_tab(
    extension: str,
    tab: Any,
    index: int,
    generate: Callable[[Any], dict[str, Any]] | None = None,
    host: Any | None = None,
) -> BuiltTab:
    """One extension tab; must be called inside a ``gr.Tabs``. A ``build`` that takes an
    argument receives ``generate`` (see ``job_runner``)."""
    title = str(getattr(tab, "title", "") or extension)
    elem_id = getattr(tab, "elem_id", None) or f"ext_{_slug(extension)}_{index}"
    built = BuiltTab(extension=extension, title=title, elem_id=elem_id)
    with gr.Tab(title, id=elem_id, elem_id=elem_id):
        context = get_blocks_context()
        blocks_before = set(context.blocks) if context is not None else set()
        fns_before = set(context.fns) if context is not None else set()
        container = gr.Column(elem_id=f"{elem_id}_content")
        try:
            with container:
                args, kwargs = _build_arguments(tab.build, generate, host)
                returned = tab.build(*args, **kwargs)
            if isinstance(returned, dict) and isinstance(returned.get("send_to_image"), gr.Image):
                built.send_to_image = returned["send_to_image"]
        except Exception as exc:
            built.error = f"{type(exc).__name__}: {exc}"
            log.error(
                "extension %r: tab %r failed to build: %s\n%s",
                extension,
                title,
                built.error,
                traceback.format_exc(),
            )
            _remove_partial(container, blocks_before | {container._id}, fns_before)
            with container:
                gr.Markdown(t("ext.tab_failed"), elem_id=f"{elem_id}_error_title")
                gr.HTML(
                    # no English word here: the title above (ext.tab_failed) is translated
                    f'<div class="easel-error-panel"><b>{html.escape(extension)}</b>: '
                    f"<code>{html.escape(built.error)}</code></div>",
                    elem_id=f"{elem_id}_error",
                )
    return built


def build_extension_tabs(host: Any, client: Any | None = None) -> list[BuiltTab]:
    """Every extension tab, in the host's load order (stable from run to run); with a
    ``JobClient``, tabs whose ``build`` takes an argument can queue generations."""
    try:
        tabs = host.ui_tabs()
    except Exception:  # the host isolates hooks already; a bug here must not stop the UI
        log.exception("could not collect extension tabs")
        return []
    generate = job_runner(client) if client is not None else None
    return [
        build_extension_tab(extension, tab, index, generate, host)
        for index, (extension, tab) in enumerate(tabs)
    ]
