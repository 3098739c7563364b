"""The Settings tab, as A1111's: the host's settings (model, VAE, clip skip, saving images,
output folders and file names, defaults) and every setting an extension registered
(``register_settings``), in sections, saved by the host in the data folder. The host's
paths and switches are shown read-only (they come from flags and ``EASEL_*`` variables).

Saving writes only the settings whose value changed and says which, as A1111 does
("2 settings changed: samples_format, jpeg_quality."); a refused value is named with the
reason and changes nothing else.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from plugin_api.types import SettingSpec
from ui.i18n import Message, say, t
from ui.language import LANGUAGE_NAMES, LANGUAGE_SETTING, request_language
from ui.settings_fields import SECTION_ORDER, coerce, field_for, section_of
from ui.translated_blocks import translated_columns

log = logging.getLogger("easel.ui")

__all__ = ["LANGUAGE_NAMES", "build_settings_tab", "host_settings_rows", "save_settings"]


def host_settings_rows(host: Any) -> list[list[str]]:
    s = host.settings
    rows = [
        ["data dir", str(s.data_dir)],
        ["models dir", str(s.models_dir)],
        ["outputs dir", str(s.outputs_dir)],
        ["extension dirs", ", ".join(str(p) for p in s.extension_dirs) or "(bundled only)"],
        ["device", str(s.device)],
        ["listen", f"{s.host}:{s.port}"],
        ["install allowed", "yes" if s.install_allowed else "no"],
        ["allow pickle", "yes" if s.allow_pickle else "no"],
        ["safe mode", "yes" if s.safe_mode else "no"],
    ]
    return rows


def save_settings(host: Any, specs: list[SettingSpec], values: list[Any]) -> str:
    """Save each value that differs from the stored one; one bad value is reported by key
    and does not stop the others."""
    problems, changed = [], []
    for spec, value in zip(specs, values, strict=True):
        try:
            value = coerce(spec, value)
            if value == host.user_settings.get(spec.key):
                continue
            host.user_settings.set(spec.key, value)
            changed.append(spec.key)
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(f"{spec.key}: {exc}")
    message = (
        Message("{count} settings changed: {keys}.", count=len(changed), keys=", ".join(changed))
        if changed
        else Message("Nothing changed.")
    )
    if problems:
        log.info("settings refused: %s", "; ".join(problems))
        message = Message("{message} Not saved: {problems}", message=message, problems="; ".join(problems))
    return message


def build_settings_tab(host: Any, service: Any = None) -> None:
    gr.Markdown(t("set.applies"))
    by_section: dict[str, list[SettingSpec]] = {}
    for spec in host.setting_specs:
        by_section.setdefault(section_of(spec.key), []).append(spec)
    specs: list[SettingSpec] = []
    components: list[gr.components.Component] = []
    for section in SECTION_ORDER:
        entries = by_section.get(section, [])
        if not entries:
            continue
        title = t("set.extension_settings") if section == "extensions" else t(f"set.section.{section}")
        with gr.Accordion(title, open=section != "extensions", elem_id=f"settings_section_{section}"):
            for spec in entries:
                label = t("set.language") if spec.key == LANGUAGE_SETTING else None
                if spec.key == LANGUAGE_SETTING:
                    gr.Markdown(t("set.language_note"))
                elem_id = "setting_ui_language" if spec.key == LANGUAGE_SETTING else f"setting_{spec.key}"
                components.append(field_for(spec, host, service, elem_id, label=label))
                specs.append(spec)
    if "extensions" not in by_section:
        gr.Markdown(t("set.none"))
    save = gr.Button(t("set.save"), elem_id="settings_save", variant="primary")
    message = gr.Textbox(label=t("set.message"), elem_id="settings_message", interactive=False)

    def save_all(request: gr.Request, *values: Any) -> str:  # request: injected by Gradio
        return say(save_settings(host, specs, list(values)), request_language(request, host))

    save.click(save_all, inputs=components, outputs=[message])
    with gr.Accordion(t("set.host"), open=False, elem_id="settings_host_section"):
        gr.Dataframe(
            value=host_settings_rows(host),
            headers=["setting", "value"],
            elem_id="settings_host",
            elem_classes=translated_columns(0, 1),  # setting names; yes/no
            interactive=False,
        )
