"""The Settings tab: the host's own settings (read-only: paths, device, network) and every
setting an extension registered (``register_settings``), saved in the data folder."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from plugin_api.types import SettingSpec
from ui.i18n import Message, active_localizations, say, t
from ui.language import LANGUAGE_SETTING, request_language
from ui.translated_blocks import translated_columns

log = logging.getLogger("easel.ui")


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


# a language is named in its own language, as every language menu does
LANGUAGE_NAMES = {"auto": "auto", "en": "English", "zh-CN": "简体中文"}


def setting_label(spec: SettingSpec) -> str:
    """The setting's label (translated when a localization has it), then its key."""
    label = spec.label or spec.key
    if active_localizations().has(label) and not any(c in label for c in "{}"):
        # the frontend translates an i18n key embedded in a longer text and keeps the rest
        return f"{I18nData(label)} ({spec.key})"
    return f"{label} ({spec.key})"


def _component_for(spec: SettingSpec, value: Any) -> gr.components.Component:
    # The extension's label and description, in English; its localizations/*.json
    # translates them (ui/translated_blocks.py turns the description into an i18n key).
    common = {
        "label": setting_label(spec),
        "info": spec.description or None,
        "elem_id": f"setting_{spec.key}",
    }
    if spec.choices is not None:
        return gr.Dropdown(choices=list(spec.choices), value=value, **common)
    if isinstance(spec.default, bool):
        return gr.Checkbox(value=value, **common)
    if isinstance(spec.default, int):
        return gr.Number(value=value, precision=0, **common)
    if isinstance(spec.default, float):
        return gr.Number(value=value, **common)
    return gr.Textbox(value=value, **common)


def _coerce(spec: SettingSpec, value: Any) -> Any:
    if isinstance(spec.default, bool):
        return bool(value)
    if isinstance(spec.default, int) and value is not None:
        return int(value)
    if isinstance(spec.default, float) and value is not None:
        return float(value)
    return value


def save_settings(host: Any, specs: list[SettingSpec], values: list[Any]) -> Message:
    """Save each value; one bad value is reported by key and does not stop the others."""
    problems, saved = [], 0
    for spec, value in zip(specs, values, strict=True):
        try:
            host.user_settings.set(spec.key, _coerce(spec, value))
            saved += 1
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(f"{spec.key}: {exc}")
    if problems:
        return Message("saved {count} setting(s); {problems}", count=saved, problems="; ".join(problems))
    return Message("saved {count} setting(s)", count=saved)


def build_settings_tab(host: Any) -> None:
    gr.Dataframe(
        value=host_settings_rows(host),
        headers=["setting", "value"],
        label=t("set.host"),
        elem_id="settings_host",
        elem_classes=translated_columns(0, 1),  # setting names; yes/no
        interactive=False,
    )
    language_spec = host.setting_specs.get(LANGUAGE_SETTING)
    specs = [s for s in host.setting_specs if s.key != LANGUAGE_SETTING]
    components = []
    if language_spec is not None:
        components.append(
            gr.Dropdown(
                choices=[(LANGUAGE_NAMES.get(str(c), str(c)), c) for c in language_spec.choices or ()],
                value=lambda: host.user_settings.get(LANGUAGE_SETTING),  # re-read on each page load
                label=t("set.language"),
                info=t("set.language_note"),
                elem_id="setting_ui_language",
            )
        )
    gr.Markdown(t("set.extension_settings"))
    if not specs:
        gr.Markdown(t("set.none"))
    for spec in specs:
        # a callable value is re-read on each page load, so a saved setting shows
        components.append(_component_for(spec, lambda key=spec.key: host.user_settings.get(key)))
    ordered_specs = ([language_spec] if language_spec is not None else []) + specs
    save = gr.Button(t("set.save"), elem_id="settings_save", variant="primary")
    message = gr.Textbox(label=t("set.message"), elem_id="settings_message", interactive=False)

    def save_all(request: gr.Request, *values: Any) -> str:  # request: injected by Gradio
        return say(save_settings(host, ordered_specs, list(values)), request_language(request, host))

    save.click(save_all, inputs=components, outputs=[message])
