"""CFG rescale, written on the ``after_cfg`` sampling-maths hook.

Strong classifier-free guidance inflates the prediction's spread (over-exposed,
burnt-looking images, worst on zero-terminal-SNR and v-prediction models). Lin et al.
(2023, section 3.4) rescale the guided prediction so that its standard deviation per
image matches the conditional prediction's, then mix that with the plain guided one:

    rescaled = guided * std(cond) / std(guided)
    result   = multiplier * rescaled + (1 - multiplier) * guided

This is diffusers' ``guidance_rescale`` (the same prediction, the same statistics per
image over channels and pixels), so a request with ``multiplier`` 0.7 matches
``StableDiffusionPipeline(..., guidance_rescale=0.7)``.

Request (the native API's ``extension_args``, A1111's ``alwayson_scripts``)::

    "cfg_rescale": {"multiplier": 0.7}     or     "cfg_rescale": {"args": [0.7]}

0 (the default) leaves the image untouched; the infotext records ``CFG Rescale``.
"""

from __future__ import annotations

import math
from typing import Any

from plugin_api.errors import InvalidRequest
from plugin_api.hookspecs import hookimpl
from plugin_api.types import DenoiserCall, GenerationContext, GenerationRequest

NAME = "cfg_rescale"
FIELD = f"extension_args.{NAME}"


def multiplier_of(request: GenerationRequest) -> float:
    """The request's rescale multiplier (0 when it asks for none); InvalidRequest when
    the value is not a number in [0, 1]."""
    args: Any = request.extension_args.get(NAME)
    if args is None:
        return 0.0
    field = FIELD
    if isinstance(args, dict) and "args" in args:
        values = args["args"]
        if not isinstance(values, list) or len(values) < 1:
            raise InvalidRequest(f"{FIELD}.args", "expected [multiplier]")
        value, field = values[0], f"{FIELD}.args.0"
    elif isinstance(args, dict):
        unknown = set(args) - {"multiplier"}
        if unknown:
            raise InvalidRequest(FIELD, f"unknown key(s) {sorted(unknown)}; expected 'multiplier'")
        value, field = args.get("multiplier", 0.0), f"{FIELD}.multiplier"
    else:
        value = args
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(field, f"expected a number from 0 to 1, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise InvalidRequest(field, f"must be from 0 to 1, got {value}")
    return float(value)


def rescale(guided: Any, cond: Any, multiplier: float) -> Any:
    """Lin et al.'s rescale of ``guided`` towards ``cond``'s spread, per image."""
    dims = list(range(1, guided.ndim))
    ratio = cond.std(dim=dims, keepdim=True) / guided.std(dim=dims, keepdim=True)
    return multiplier * (guided * ratio) + (1.0 - multiplier) * guided


@hookimpl
def validate_request(request: GenerationRequest) -> None:
    multiplier_of(request)


@hookimpl
def before_sample(ctx: GenerationContext) -> None:
    multiplier = multiplier_of(ctx.request)
    ctx.state[NAME] = multiplier
    if multiplier > 0:
        ctx.extra_params["CFG Rescale"] = f"{multiplier:g}"


@hookimpl
def after_cfg(ctx: GenerationContext, call: DenoiserCall) -> None:
    multiplier = ctx.state.get(NAME, 0.0)
    # without CFG the prediction is the conditional one already: nothing to rescale
    if multiplier > 0 and call.cfg_batch:
        call.prediction = rescale(call.prediction, call.cond_pred, multiplier)
