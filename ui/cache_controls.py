"""The "Step cache" accordion of the generation form: reuse part of the denoiser's work
between neighbouring steps (core/sampling/step_cache.py, docs/speed.md). Off by default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from core.sampling.step_cache import METHODS, OFF, parse_cache
from plugin_api.types import GenerationRequest
from ui.i18n import t


@dataclass
class CacheControls:
    method: gr.Dropdown
    threshold: gr.Textbox  # empty: the method's default

    def inputs(self) -> list[gr.components.Component]:
        """In the order ``apply_cache`` takes them."""
        return [self.method, self.threshold]


def build_cache_controls(prefix: str) -> CacheControls:
    with gr.Accordion(t("cache.title"), open=False, elem_id=f"{prefix}_cache"), gr.Row():
        method = gr.Dropdown(
            choices=list(METHODS), value=OFF, label=t("cache.method"), info=t("cache.method_info"),
            elem_id=f"{prefix}_cache_method",
        )  # fmt: skip
        # a text field: empty means the method's own default, never 0
        threshold = gr.Textbox(
            value="", label=t("cache.threshold"), info=t("cache.threshold_info"),
            elem_id=f"{prefix}_cache_threshold", max_lines=1,
        )  # fmt: skip
    return CacheControls(method, threshold)


def apply_cache(
    request: GenerationRequest, method: str | None, threshold: str | float | None
) -> GenerationRequest:
    """Put the accordion's choice into ``request`` (RequestError naming ``cache`` when the
    threshold is not a number; the engine checks the method against the model)."""
    if not method or method == OFF:
        return request
    text = "" if threshold is None else str(threshold).strip()
    plan = parse_cache(f"{method}:{text}" if text else method)
    request.cache = plan.as_request() if plan is not None else None
    return request


def cache_form_fields(value: Any) -> dict[str, Any]:
    """An infotext's "Cache: deepcache 3" as the accordion's fields (PNG Info, send to)."""
    try:
        plan = parse_cache(value) if isinstance(value, str) else None
    except Exception:  # a damaged value: leave the accordion as it is
        return {}
    if plan is None:
        return {}
    threshold = plan.as_request()["threshold"]
    return {"cache_method": plan.method, "cache_threshold": f"{threshold:g}"}
