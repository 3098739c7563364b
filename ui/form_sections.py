"""Extensions' accordions inside the txt2img / img2img form (``ui_form_sections``,
A1111's "AlwaysVisible" scripts).

Each section is built in isolation, inside its own accordion: a ``build`` that raises
gets an error panel naming the extension (what it created before failing is removed, as
for extension tabs) and sends nothing. At Generate the values of every section's
components arrive after the form's own inputs (A1111's ``args_from``/``args_to`` slices
of one flat list) and ``apply_form_sections`` turns each slice into
``request.extension_args[<extension>]`` with ``plugin_api.form_sections`` (the mapping the
extension's own tests check through ``plugin_api.testing.form_section_args``).
"""

from __future__ import annotations

import html
import logging
import traceback
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.context import get_blocks_context

from plugin_api.errors import InvalidRequest
from plugin_api.form_sections import build_section_components, section_extension_args
from plugin_api.types import FormSection, GenerationRequest
from ui import choices
from ui.extension_tabs import _remove_partial, _slug

log = logging.getLogger("easel.ui")

# on every section's accordion: the extension's own texts start there (not the core's i18n)
SECTION_CLASS = "easel-form-section"


@dataclass
class BuiltSection:
    extension: str
    section: FormSection
    accordion: gr.Accordion
    components: list[Any] = field(default_factory=list)
    error: str | None = None


@dataclass
class FormSections:
    """The sections of one form, in load order."""

    sections: list[BuiltSection] = field(default_factory=list)

    def inputs(self) -> list[Any]:
        """Every working section's components, section after section: the generate
        handler's last inputs."""
        return [component for built in self.sections if built.error is None for component in built.components]

    def accordions(self) -> list[gr.Accordion]:
        return [built.accordion for built in self.sections]


def build_form_section(
    tab: str, extension: str, section: FormSection, host: Any, family: str | None
) -> BuiltSection:
    title = str(section.title or extension)
    elem_id = section.elem_id or f"{tab}_section_{_slug(extension)}"
    with gr.Accordion(
        title,
        open=bool(section.open),
        visible=section.shown_for(family),
        elem_id=elem_id,
        elem_classes=[SECTION_CLASS],
    ) as accordion:
        built = BuiltSection(extension=extension, section=section, accordion=accordion)
        context = get_blocks_context()
        blocks_before = set(context.blocks) if context is not None else set()
        fns_before = set(context.fns) if context is not None else set()
        container = gr.Column(elem_id=f"{elem_id}_content")
        try:
            with container:
                built.components = build_section_components(section, tab, host)
        except Exception as exc:
            built.error = f"{type(exc).__name__}: {exc}"
            built.components = []
            log.error(
                "extension %r: form section %r (%s) failed to build: %s\n%s",
                extension, title, tab, built.error, traceback.format_exc(),
            )  # fmt: skip
            _remove_partial(container, blocks_before | {container._id}, fns_before)
            with container:
                gr.HTML(
                    f'<div class="easel-error-panel">extension <b>{html.escape(extension)}</b>: '
                    f"section failed to build: <code>{html.escape(built.error)}</code></div>",
                    elem_id=f"{elem_id}_error",
                )
    return built


def build_form_sections(tab: str, host: Any, service: Any, model: gr.Dropdown) -> FormSections:
    """Every extension's section for the ``tab`` form; ``model`` is the form's model
    dropdown: a section shows for its families only (``FormSection.families``)."""
    try:
        offered = host.ui_form_sections(tab)
    except Exception:  # the host isolates hooks already; a bug here must not stop the UI
        log.exception("could not collect form sections")
        offered = []
    family = choices.model_family(service, model.value)
    sections = FormSections([build_form_section(tab, ext, sec, host, family) for ext, sec in offered])
    if sections.sections:
        model.change(
            lambda name: [
                gr.update(visible=built.section.shown_for(choices.model_family(service, name)))
                for built in sections.sections
            ],
            inputs=[model],
            outputs=sections.accordions(),
            show_progress="hidden",
        )
    return sections


def apply_form_sections(
    sections: FormSections | None,
    request: GenerationRequest,
    values: tuple[Any, ...] | list[Any],
    family: str | None,
) -> None:
    """Put each shown section's values into ``request.extension_args`` (see
    ``plugin_api.form_sections``); a refusal or a broken ``to_args`` is a ``gr.Error``
    naming the extension, and nothing is queued."""
    if sections is None:
        return
    values = list(values)
    position = 0
    for built in sections.sections:
        if built.error is not None:
            continue
        count = len(built.components)
        mine, position = values[position : position + count], position + count
        if not built.section.shown_for(family):
            continue
        try:
            args = section_extension_args(built.section, mine, built.extension)
        except InvalidRequest as exc:
            raise gr.Error(f"{built.section.title}: {exc.field}: {exc.message}") from exc
        except Exception as exc:
            log.exception(
                "extension %r: form section %r could not read its values",
                built.extension,
                built.section.title,
            )
            raise gr.Error(
                f"extension {built.extension}: section {built.section.title!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if args is not None:
            request.extension_args[built.extension] = args
