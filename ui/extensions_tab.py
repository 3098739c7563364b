"""The Extensions tab: every extension with its state, version, source, load time and
errors; enable/disable (from the next start); install from a git URL, folder or zip and
remove by name, offered only while installing is allowed (loopback, or explicitly
permitted)."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from ui.i18n import Message, active_localizations, say, t
from ui.language import request_language
from ui.translated_blocks import translated_columns

log = logging.getLogger("easel.ui")

COLUMNS = ["name", "state", "enabled", "version", "source", "load time (s)", "errors", "path"]


def extension_rows(host: Any) -> list[list[Any]]:
    rows = []
    for item in host.extensions.listing():
        errors = [item.get("error") or ""]
        errors += [f"{f['hook']}: {f['error']}" for f in item.get("hook_failures", [])[-3:]]
        rows.append(
            [
                item["name"],
                item["state"],
                "yes" if item.get("enabled", True) else "no",
                item.get("version", ""),
                item.get("source", ""),
                f"{float(item.get('load_time_s') or 0.0):.3f}",
                "; ".join(e for e in errors if e),
                item.get("path") or "",
            ]
        )
    return rows


def extension_names(host: Any) -> list[str]:
    names = {item["name"] for item in host.extensions.listing() if not item["name"].startswith("builtin.")}
    try:
        names |= {c.name for c in host.extensions.discover()}
    except Exception:
        log.exception("could not list extension folders")
    return sorted(names)


def set_enabled(host: Any, name: str | None, enabled: bool) -> str:
    if not name:
        return Message("choose an extension first")
    try:
        host.extensions.set_enabled(name, enabled)
    except KeyError as exc:
        return str(exc.args[0])
    if enabled:
        return Message("{name}: enabled (takes effect at the next start)", name=name)
    return Message("{name}: disabled (takes effect at the next start)", name=name)


def install(host: Any, source: str) -> str:
    """Install through the same installer as ``easel extensions install``."""
    from core.config import BUNDLED_EXTENSIONS_DIR
    from core.plugins import installer

    if not host.settings.install_allowed:  # the form is hidden then, but never trust the client
        return Message("installing is off while the server listens beyond loopback")
    source = (source or "").strip()
    if not source:
        return Message("enter a git URL, a folder or a zip file")
    target = (host.settings.extension_dirs or [BUNDLED_EXTENSIONS_DIR])[0]
    try:
        result = installer.install(source, target)
    except installer.InstallError as exc:
        return Message("install refused: {error}", error=exc)
    except Exception as exc:  # anything else the installer hit: report, never crash the UI
        log.exception("install of %s failed", source)
        return Message("install failed: {error}", error=f"{type(exc).__name__}: {exc}")
    if result.requirements:
        return Message(
            "installed {name} at {path} with {requirements}; restart Easel to load it",
            name=result.name, path=result.path, requirements=", ".join(result.requirements),
        )  # fmt: skip
    return Message("installed {name} at {path}; restart Easel to load it", name=result.name, path=result.path)


def remove(host: Any, name: str | None) -> str:
    """Delete an installed extension through the same checks as ``easel extensions
    remove``: a name, never a path, a direct child of a user extensions folder, never a
    bundled extension (installer.removal_target)."""
    from core.plugins import installer

    if not host.settings.install_allowed:  # like installing: never trust the client
        return Message("removing is off while the server listens beyond loopback")
    if not name:
        return Message("choose an extension first")
    try:
        removed = installer.remove(str(name), installer.user_extension_folders(host.settings))
    except installer.InstallError as exc:
        return Message("remove refused: {error}", error=exc)
    except OSError as exc:
        log.exception("removing %s failed", name)
        return Message("remove failed: {error}", error=exc)
    return Message("removed {name}; restart Easel to unload it", name=removed)


def spoken(action: Any, host: Any) -> Any:
    """An event handler that says ``action``'s message in the page's language."""

    def handler(value: Any, request: gr.Request) -> str:
        return say(action(value), request_language(request, host))

    return handler


def build_extensions_tab(host: Any) -> None:
    with gr.Row():
        refresh = gr.Button(t("ext.refresh"), elem_id="extensions_refresh", size="sm", scale=0)
    table = gr.Dataframe(
        value=lambda: extension_rows(host),
        headers=COLUMNS,
        label=t("ext.installed"),
        elem_id="extensions_table",
        elem_classes=translated_columns(*(COLUMNS.index(c) for c in ("state", "enabled", "source"))),
        interactive=False,
        wrap=True,
    )
    with gr.Row():
        name = gr.Dropdown(
            choices=extension_names(host), label=t("ext.name"), elem_id="extensions_name", scale=3
        )
        enable = gr.Button(t("ext.enable"), elem_id="extensions_enable", scale=1)
        disable = gr.Button(t("ext.disable"), elem_id="extensions_disable", scale=1)
    gr.Markdown(t("ext.restart_note"))
    skipped = active_localizations().problems
    if skipped:  # extensions' localizations/*.json that could not be used, by file
        gr.Textbox(
            value="\n".join(skipped),
            label="Localization files skipped",
            lines=min(len(skipped), 6),
            interactive=False,
            elem_id="extensions_localization_problems",
        )
    message = gr.Textbox(label=t("ext.message"), elem_id="extensions_message", interactive=False)
    if host.settings.install_allowed:
        with gr.Group(elem_id="extensions_install"):
            gr.Markdown(t("ext.install_header"))
            with gr.Row():
                source = gr.Textbox(label=t("ext.source"), elem_id="extensions_source", scale=4)
                install_button = gr.Button(t("ext.install"), elem_id="extensions_install_button", scale=1)
        install_button.click(
            spoken(lambda s: install(host, s), host),
            inputs=[source],
            outputs=[message],
        )
        remove_button = gr.Button(t("ext.remove"), elem_id="extensions_remove", variant="stop", size="sm")
        remove_button.click(
            spoken(lambda n: remove(host, n), host),
            inputs=[name],
            outputs=[message],
            api_name="remove_extension",
        )
    else:
        gr.Markdown(t("ext.install_disabled"), elem_id="extensions_install_disabled")

    def refresh_all() -> tuple[list[list[Any]], Any]:
        return extension_rows(host), gr.update(choices=extension_names(host))

    refresh.click(refresh_all, outputs=[table, name])

    def pick_row(evt: gr.SelectData) -> str:
        return str((evt.row_value or [""])[0])

    table.select(pick_row, outputs=[name])
    enable.click(
        spoken(lambda n: set_enabled(host, n, True), host),
        inputs=[name],
        outputs=[message],
    )
    disable.click(
        spoken(lambda n: set_enabled(host, n, False), host),
        inputs=[name],
        outputs=[message],
    )
