"""The form's controls that follow the model family's guidance, driven by the family
adapter's attributes (``core/families/base.py``), never by a family's name:

- "Distilled CFG Scale" (Forge's name, range and default 3.5) shows only for a model whose
  variant has a guidance embedding (``distilled_guidance_default`` is not None: FLUX.1-dev,
  not schnell, whose transformer has ``guidance_embeds`` false); hidden, it sends nothing;
- the negative prompt is disabled, with a note, where the model ignores it: a
  guidance-distilled family (``guidance_distilled_family``: FLUX.1) at CFG scale 1, where
  the engine would drop it with a warning (true CFG > 1 uses it); the form then sends "",
  as a browser sends nothing for a disabled field, so the infotext says what applied;
- CFG scale takes the new model's default when the family changes (FLUX.1: 1, so a
  switch from SD never runs true CFG at twice the time by accident; back to SD: 7, or the
  model's easel.json), and keeps the user's value between models of one family. "Send to"
  sets a model with the CFG it was made with: it marks the form's family ``SENT``, so the
  model change that follows keeps those values.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from plugin_api.types import GenerationRequest
from ui import choices

DISTILLED_CFG_LABEL = "Distilled CFG Scale"
SENT = "<sent with its values>"  # GenerationForm.shown_family after "send to" set a model
NEGATIVE_IGNORED_NOTE = (
    "Ignored by this model at CFG scale 1 (its guidance is distilled): "
    "raise CFG scale above 1 to use it, at twice the time per step"
)


def negative_prompt_state(service: Any, model: str | None, cfg_scale: float | None) -> dict[str, Any]:
    """The negative prompt box's ``interactive`` and ``info`` for this model and CFG scale."""
    ignored = choices.negative_prompt_ignored(service, model, cfg_scale)
    return {"interactive": not ignored, "info": I18nData(NEGATIVE_IGNORED_NOTE) if ignored else None}


def on_model_change(
    service: Any, model: str | None, cfg_scale: float, previous_family: str | None
) -> tuple[Any, Any, Any, str | None]:
    """Updates of (CFG scale, Distilled CFG Scale, negative prompt) for a newly chosen
    model, and the family to remember (a ``gr.State``)."""
    family = choices.model_family(service, model)
    defaults = choices.model_defaults(service, model)
    switched = family != previous_family and previous_family != SENT
    cfg = cfg_scale
    if switched and defaults.get("cfg_scale") is not None:
        cfg = float(defaults["cfg_scale"])
    distilled = defaults.get("distilled_cfg_scale")
    distilled_update = gr.update(visible=distilled is not None)
    if switched and distilled is not None:
        distilled_update = gr.update(visible=True, value=distilled)
    cfg_update = gr.update(value=cfg) if cfg != cfg_scale else gr.update()
    negative_update = gr.update(**negative_prompt_state(service, model, cfg))
    return cfg_update, distilled_update, negative_update, family


def apply_family_controls(
    request: GenerationRequest, service: Any, distilled_cfg_scale: float | None
) -> None:
    """What the form sends for these controls: the slider's value only where the model
    takes one, and no negative prompt where the model ignores it (its box is disabled)."""
    takes_distilled = choices.distilled_cfg_default(service, request.model) is not None
    request.distilled_cfg_scale = (
        float(distilled_cfg_scale) if takes_distilled and distilled_cfg_scale is not None else None
    )
    if choices.negative_prompt_ignored(service, request.model, request.cfg_scale):
        request.negative_prompt = ""


def wire_family_controls(form: Any, service: Any) -> None:
    """Follow model and CFG changes (a checkpoint chosen in the quick-settings bar sets
    the form's model, so it arrives here too)."""
    form.model.change(
        lambda name, cfg, previous: on_model_change(service, name, cfg, previous),
        inputs=[form.model, form.cfg_scale, form.shown_family],
        outputs=[form.cfg_scale, form.distilled_cfg_scale, form.negative_prompt, form.shown_family],
        show_progress="hidden",
    )
    form.cfg_scale.change(
        lambda name, cfg: gr.update(**negative_prompt_state(service, name, cfg)),
        inputs=[form.model, form.cfg_scale],
        outputs=[form.negative_prompt],
        show_progress="hidden",
    )
