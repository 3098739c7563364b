"""A1111's quick-settings bar: the settings named by ``quicksettings_list`` (checkpoint,
VAE and clip skip unless changed) at the top of every page, saved as soon as they change.

A changed checkpoint or VAE also becomes the choice of the txt2img and img2img forms (which
send their own), so the bar and the forms never disagree about what the next image uses.
The bar has a field for the listed settings and the default three, each hidden unless the
list names it on page load: removing one, or adding one of the three back, shows after a
page reload; a setting listed for the first time appears after a restart (A1111 asks for a
UI reload too). Fields for every setting would cost a load event each on every page load.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from core.builtin_settings import QUICKSETTINGS_DEFAULT
from ui.settings_fields import MODEL_SETTING, QUICKSETTINGS, VAE_SETTING, coerce, field_for

log = logging.getLogger("easel.ui")


@dataclass
class QuickSettings:
    fields: dict[str, gr.components.Component] = field(default_factory=dict)


def listed(host: Any) -> list[str]:
    try:
        value = host.user_settings.get(QUICKSETTINGS)
    except KeyError:
        return []
    return [key for key in value if isinstance(key, str)] if isinstance(value, list) else []


def save_one(host: Any, key: str, value: Any) -> None:
    """Save one quick setting now; a refused value is a warning naming it (nothing saved)."""
    spec = host.setting_specs.get(key)
    try:
        value = coerce(spec, value)
        if value != host.user_settings.get(key):
            host.user_settings.set(key, value)
    except (KeyError, ValueError, TypeError) as exc:
        log.info("quick setting %s refused: %s", key, exc)
        gr.Warning(f"{key}: {exc}")


def build_quicksettings(host: Any, service: Any) -> QuickSettings:
    quick = QuickSettings()
    shown = listed(host)
    candidates = set(shown) | set(QUICKSETTINGS_DEFAULT)
    with gr.Row(elem_id="quicksettings", equal_height=True):
        for spec in host.setting_specs:
            if spec.key not in candidates:
                continue
            component = field_for(
                spec, host, service, f"setting_quick_{spec.key}", label=spec.label or spec.key, effective=True
            )
            component.visible = spec.key in shown
            component.info = None  # the bar stays one line; the Settings tab explains
            quick.fields[spec.key] = component
            component.input(lambda value, key=spec.key: save_one(host, key, value), inputs=[component])
    return quick


def wire_quicksettings(quick: QuickSettings, blocks: gr.Blocks, host: Any, forms: list[Any]) -> None:
    """Show the listed fields on every page load; a checkpoint or VAE chosen in the bar
    becomes the forms' choice too."""
    keys = list(quick.fields)
    blocks.load(
        lambda: [gr.update(visible=key in listed(host)) for key in keys],
        outputs=[quick.fields[key] for key in keys],
        show_progress="hidden",
    )
    for key, attribute in ((MODEL_SETTING, "model"), (VAE_SETTING, "vae")):
        component = quick.fields.get(key)
        if component is None:
            continue
        targets = [getattr(form, attribute) for form in forms]
        component.input(
            lambda value, n=len(targets): [gr.update(value=value) if value else gr.update()] * n,
            inputs=[component],
            outputs=targets,
            show_progress="hidden",
        )
