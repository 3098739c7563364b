"""The Settings tab: the host's own settings (read-only: paths, device, network) and every
setting an extension registered (``register_settings``), saved in the data folder."""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr

from plugin_api.types import SettingSpec
from ui.i18n import t
from ui.language import LANGUAGE_SETTING

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


def _component_for(spec: SettingSpec, value: Any) -> gr.components.Component:
    label = spec.label or spec.key
    # The extension's own label and description: it provides them in one language.
    common = {
        "label": f"{label} ({spec.key})",
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


def save_settings(host: Any, specs: list[SettingSpec], values: list[Any]) -> str:
    """Save each value; one bad value is reported by key and does not stop the others."""
    problems, saved = [], 0
    for spec, value in zip(specs, values, strict=True):
        try:
            host.user_settings.set(spec.key, _coerce(spec, value))
            saved += 1
        except (KeyError, ValueError, TypeError) as exc:
            problems.append(f"{spec.key}: {exc}")
    message = f"saved {saved} setting(s)"
    return message + ("; " + "; ".join(problems) if problems else "")


def build_settings_tab(host: Any) -> None:
    gr.Dataframe(
        value=host_settings_rows(host),
        headers=["setting", "value"],
        label=t("set.host"),
        elem_id="settings_host",
        interactive=False,
    )
    language_spec = host.setting_specs.get(LANGUAGE_SETTING)
    specs = [s for s in host.setting_specs if s.key != LANGUAGE_SETTING]
    components = []
    if language_spec is not None:
        components.append(
            gr.Dropdown(
                choices=list(language_spec.choices or ()),
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
    save.click(
        lambda *values: save_settings(host, ordered_specs, list(values)), inputs=components, outputs=[message]
    )
