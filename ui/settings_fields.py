"""One Gradio field per setting, shared by the Settings tab and the quick-settings bar:
which section a setting belongs to (A1111's sections), what component edits it, and
turning a component's value back into the setting's type."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from plugin_api.types import SettingSpec
from ui import choices
from ui.i18n import active_localizations
from ui.language import LANGUAGE_NAMES, LANGUAGE_SETTING

# A1111's sections, by the host's own setting keys; an extension's settings ("name.key")
# go to the extension section, anything else to "other"
SECTIONS: dict[str, tuple[str, ...]] = {
    "saving": (
        "samples_format", "jpeg_quality", "webp_lossless", "samples_filename_pattern",
        "save_images_add_number", "save_to_dirs", "directories_filename_pattern",
    ),
    "paths": ("outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples"),
    "sd": ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "force_zero_negative_prompt"),
    "defaults": ("default_negative_prompt",),
    "ui": ("ui.language", "quicksettings_list"),
}  # fmt: skip
SECTION_ORDER = ("sd", "defaults", "saving", "paths", "ui", "other", "extensions")
MODEL_SETTING = "sd_model_checkpoint"
VAE_SETTING = "sd_vae"
QUICKSETTINGS = "quicksettings_list"


def section_of(key: str) -> str:
    for section, keys in SECTIONS.items():
        if key in keys:
            return section
    return "extensions" if "." in key else "other"


def setting_label(spec: SettingSpec) -> str:
    """The setting's label (translated when a localization has it), then its key. The
    label with its key is no localization entry itself, so the translatable part goes in
    as an i18n key: the frontend translates a key embedded in a longer text, keeps the rest."""
    label = spec.label or spec.key
    if active_localizations().has(label) and not any(c in label for c in "{}"):
        return f"{I18nData(label)} ({spec.key})"
    return f"{label} ({spec.key})"


def field_for(
    spec: SettingSpec, host: Any, service: Any, elem_id: str, label: Any = None, effective: bool = False
) -> gr.components.Component:
    """The component that edits ``spec``; its value is re-read from the host on every page
    load (a callable value), so what another front end saved shows. ``effective``: the
    checkpoint field shows the model in use when the setting is empty (A1111's bar)."""
    key = spec.key

    def value() -> Any:
        stored = host.user_settings.get(key)
        if effective and key == MODEL_SETTING and not stored:
            return choices.default_model(service) or ""
        return stored

    common = {
        "label": label if label is not None else setting_label(spec),
        "info": spec.description or None,
        "elem_id": elem_id,
    }
    if key == MODEL_SETTING:
        # the model names, "" first: the automatic choice (the demo model, else the first)
        return gr.Dropdown(
            choices=["", *choices.model_names(service)], value=value, allow_custom_value=False, **common
        )
    if key == VAE_SETTING:
        return gr.Dropdown(choices=choices.vae_names(service), value=value, **common)
    if key == QUICKSETTINGS:
        keys = [s.key for s in host.setting_specs]
        return gr.Dropdown(choices=keys, value=value, multiselect=True, **common)
    if key == LANGUAGE_SETTING:  # each language named in its own language (value: its code)
        named = [(LANGUAGE_NAMES.get(str(c), str(c)), c) for c in spec.choices or ()]
        return gr.Dropdown(choices=named, value=value, **common)
    if spec.choices is not None:
        return gr.Dropdown(choices=list(spec.choices), value=value, **common)
    if isinstance(spec.default, bool):
        return gr.Checkbox(value=value, **common)
    if isinstance(spec.default, int):
        return gr.Number(value=value, precision=0, **common)
    if isinstance(spec.default, float):
        return gr.Number(value=value, **common)
    lines = 2 if "negative_prompt" in key else 1
    return gr.Textbox(value=value, lines=lines, max_lines=max(lines, 4), **common)


def coerce(spec: SettingSpec, value: Any) -> Any:
    """A component's value in the setting's type (a Number gives floats; the checks that
    follow name anything else)."""
    if isinstance(spec.default, bool):
        return bool(value)
    if isinstance(spec.default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(spec.default, float) and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(spec.default, str) and value is None:
        return ""
    if isinstance(spec.default, list) and value is None:
        return []
    return value
