"""The host's settings as the defaults of a request: one set of defaults for every front
end (CLI, native API, /sdapi/v1, WebUI), filled in one place, the engine's validation.

A request field left empty (None) takes the user's setting; what the validation fills
after that (the model's easel.json, then its family's defaults) is the same for everyone.
So the same prompt and seed give the same image from every front end.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from core.builtin_settings import CLIP_SKIP, DEFAULT_NEGATIVE_PROMPT, SD_MODEL_CHECKPOINT, SD_VAE
from core.saving.output_settings import SAMPLES_FORMAT
from plugin_api.types import GenerationRequest

log = logging.getLogger("easel.engine")

# request field -> the setting that fills it when the request leaves it None
SETTING_DEFAULTS: dict[str, tuple[str, Any]] = {
    "negative_prompt": (DEFAULT_NEGATIVE_PROMPT, ""),
    "clip_skip": (CLIP_SKIP, 1),
    "output_format": (SAMPLES_FORMAT, "png"),
    "vae": (SD_VAE, "Automatic"),
}


def fill_from_settings(
    request: GenerationRequest,
    setting: Callable[[str, Any], Any],
    model_names: Callable[[], list[str]] | None = None,
) -> GenerationRequest:
    """A copy of ``request`` whose empty fields hold the settings' values. ``setting(key,
    default)`` reads one; ``model_names()`` lists the models, for ``sd_model_checkpoint``
    (a chosen model that is gone is ignored, with a log line: the default model runs)."""
    if not isinstance(request, GenerationRequest):
        return request  # the validation names the problem
    filled = dataclasses.replace(request)
    for field, (key, default) in SETTING_DEFAULTS.items():
        if getattr(filled, field) is None:
            setattr(filled, field, setting(key, default))
    if filled.model is None and model_names is not None:
        chosen = setting(SD_MODEL_CHECKPOINT, "")
        if isinstance(chosen, str) and chosen:
            if chosen in model_names():
                filled.model = chosen
            else:
                log.warning("the %s setting names %r, which is not there; using the default model",
                            SD_MODEL_CHECKPOINT, chosen)  # fmt: skip
    return filled
