"""The "Script" dropdown at the bottom of the txt2img / img2img form (A1111's selectable
scripts: X/Y/Z plot...).

The choices are "None" and every script registered through ``register_scripts`` that
serves the form (``ScriptSpec.modes`` and its form's ``tabs``). A script with a
``ScriptSpec.form`` gets its controls built once, in a column shown only while it is
chosen. At Generate the dropdown's value and every script's control values arrive after
the form sections' values; ``apply_script`` puts the chosen script's name and its
``to_args`` result into ``request.script_name`` / ``script_args``, so the request goes
through the same queue as an API client's ``script_name`` + ``script_args``.
"""

from __future__ import annotations

import html
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from plugin_api.errors import InvalidRequest
from plugin_api.form_sections import api_shape, build_section_components
from plugin_api.types import GenerationRequest, ScriptSpec
from ui.extension_tabs import _slug

log = logging.getLogger("easel.ui")

NO_SCRIPT = "None"


@dataclass
class ScriptControls:
    spec: ScriptSpec
    column: gr.Column
    components: list[Any] = field(default_factory=list)
    error: str | None = None


@dataclass
class ScriptPicker:
    dropdown: gr.Dropdown
    scripts: list[ScriptControls] = field(default_factory=list)

    def inputs(self) -> list[Any]:
        """The dropdown, then every script's controls, script after script."""
        return [self.dropdown, *(c for s in self.scripts if s.error is None for c in s.components)]


def scripts_for(tab: str, host: Any) -> list[ScriptSpec]:
    """The registered scripts the ``tab`` form lists, in registration order."""
    mode = "img2img" if tab == "img2img" else "txt2img"
    try:
        specs = list(host.scripts)
    except Exception:  # a UI without a host registry (tests of other parts) lists none
        log.exception("could not list the registered scripts")
        return []
    return [spec for spec in specs if mode in spec.modes and (spec.form is None or tab in spec.form.tabs)]


def build_script_picker(tab: str, host: Any) -> ScriptPicker | None:
    """The dropdown and the scripts' hidden controls; None when no script serves ``tab``."""
    specs = scripts_for(tab, host)
    if not specs:
        return None
    dropdown = gr.Dropdown(
        [NO_SCRIPT, *(spec.name for spec in specs)], value=NO_SCRIPT, label="Script", elem_id=f"{tab}_script"
    )
    picker = ScriptPicker(dropdown)
    for spec in specs:
        with gr.Column(visible=False, elem_id=f"{tab}_script_{_slug(spec.name)}") as column:
            controls = ScriptControls(spec, column)
            if spec.form is not None:
                try:
                    controls.components = build_section_components(spec.form, tab, host)
                except Exception as exc:  # the form builds on; the script is then unusable here
                    controls.error = f"{type(exc).__name__}: {exc}"
                    log.error("script %r failed to build its controls: %s\n%s",
                              spec.name, controls.error, traceback.format_exc())  # fmt: skip
                    gr.HTML(
                        f'<div class="easel-error-panel">script <b>{html.escape(spec.name)}</b>: '
                        f"controls failed to build: <code>{html.escape(controls.error)}</code></div>"
                    )
        picker.scripts.append(controls)

    def show_chosen(name: str) -> Any:
        updates = [gr.update(visible=s.spec.name == name) for s in picker.scripts]
        return updates[0] if len(updates) == 1 else updates  # Gradio keeps one output's list whole

    dropdown.change(
        show_chosen,
        inputs=[dropdown],
        outputs=[s.column for s in picker.scripts],
        show_progress="hidden",
    )
    return picker


def script_request_args(controls: ScriptControls, values: list[Any]) -> list[Any] | dict[str, Any]:
    """What the script's controls send as ``script_args`` (JSON types only)."""
    form = controls.spec.form
    if form is None:
        return []
    args = form.to_args(list(values)) if form.to_args is not None else list(values)
    if not isinstance(args, list | tuple | dict):
        raise TypeError(f"to_args returned a {type(args).__name__}; expected a list or a dict")
    return api_shape(args if isinstance(args, dict) else list(args), "script_args")


def apply_script(picker: ScriptPicker | None, request: GenerationRequest, values: list[Any]) -> None:
    """``values`` (``picker.inputs()``'s) -> ``request.script_name`` / ``script_args``; a
    refusal is a ``gr.Error`` naming the script, and nothing is queued."""
    if picker is None or not values:
        return
    chosen, rest, position = values[0], list(values[1:]), 0
    for controls in picker.scripts:
        if controls.error is not None:
            if controls.spec.name == chosen:
                raise gr.Error(f"{chosen}: its controls failed to build ({controls.error})")
            continue
        count = len(controls.components)
        mine, position = rest[position : position + count], position + count
        if controls.spec.name != chosen:
            continue
        try:
            request.script_args = script_request_args(controls, mine)
        except InvalidRequest as exc:
            raise gr.Error(f"{chosen}: {exc.field}: {exc.message}") from exc
        except Exception as exc:
            log.exception("script %r could not read its controls", chosen)
            raise gr.Error(f"script {chosen}: {type(exc).__name__}: {exc}") from exc
        request.script_name = controls.spec.name
        return
    if chosen not in (None, "", NO_SCRIPT):
        raise gr.Error(f"script: {chosen!r} is not a registered script")
