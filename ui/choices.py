"""What the generation forms offer: models, samplers, size presets, defaults.

Models and samplers come from the engine that the job service runs (read-only look-ups,
never generation) or, failing that, from the host's registries.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("easel.ui")

DEFAULT_STEPS = 20
DEFAULT_CFG = 7.0
DEFAULT_SIZE = 512


def find_engine(service: Any) -> Any | None:
    """The engine behind the service (its worker's runner), for model/sampler lists."""
    engine = getattr(service, "engine", None)
    if engine is not None:
        return engine
    runner = getattr(getattr(service, "worker", None), "runner", None)
    return getattr(runner, "__self__", None)


def model_names(service: Any) -> list[str]:
    engine = find_engine(service)
    if engine is None:
        return []
    try:
        return [m.name for m in engine.models.list()]
    except Exception:  # an unreadable models folder must not stop the UI
        log.exception("could not list models")
        return []


def vae_names(service: Any) -> list[str]:
    """A1111's SD VAE choices: "Automatic", "None", then the VAE files."""
    engine = find_engine(service)
    names = ["Automatic", "None"]
    if engine is None:
        return names
    try:
        return names + [v.name for v in engine.models.vaes.list()]
    except Exception:  # an unreadable VAE folder must not stop the UI
        log.exception("could not list VAE files")
        return names


def default_vae(host: Any) -> str:
    """The ``sd_vae`` setting (core/builtin_settings.py), "Automatic" without one."""
    try:
        return str(host.get_setting("sd_vae"))
    except Exception:
        return "Automatic"


def default_negative_prompt(host: Any) -> str:
    """The ``default_negative_prompt`` setting: what a request without one gets anywhere."""
    try:
        return str(host.get_setting("default_negative_prompt"))
    except Exception:
        return ""


def default_model(service: Any) -> str | None:
    """The ``sd_model_checkpoint`` setting's model (through the service: the API sets it
    up), else the engine's default, else the first."""
    engine = find_engine(service)
    names = model_names(service)
    chooser = getattr(service, "default_model", None)
    if callable(chooser):
        try:
            name = chooser()
            if name in names:
                return name
        except Exception:
            log.exception("could not read the sd_model_checkpoint setting")
    if engine is not None:
        try:
            name = engine.models.default_name()
            if name in names:
                return name
        except Exception:
            log.exception("could not pick the default model")
    return names[0] if names else None


def model_family(service: Any, name: str | None) -> str | None:
    return getattr(model_info(service, name), "family", None)


def model_info(service: Any, name: str | None) -> Any | None:
    engine = find_engine(service)
    if engine is None or not name:
        return None
    return next((info for info in _safe_list(engine) if info.name == name), None)


def family_adapter(service: Any, name: str | None) -> Any | None:
    """The model's family adapter (core/families): what the form shows follows its
    attributes, never the family's name."""
    family = model_family(service, name)
    if not family:
        return None
    from core.families import get_family

    try:
        return get_family(family)
    except Exception:  # an unknown family name: the form's generic controls
        return None


def is_flow_model(service: Any, name: str | None) -> bool:
    """Whether the model samples by flow matching (Z-Image): only those take a shift."""
    family = family_adapter(service, name)
    return bool(family is not None and family.flow)


def distilled_cfg_default(service: Any, name: str | None) -> float | None:
    """The model's default "Distilled CFG Scale" (FLUX.1-dev: 3.5); None where the model
    takes none (FLUX.1-schnell, other families): the form hides the slider and sends None."""
    family, info = family_adapter(service, name), model_info(service, name)
    if family is None or info is None:
        return None
    return family.distilled_guidance_default(getattr(info, "variant", ""))


def negative_prompt_ignored(service: Any, name: str | None, cfg_scale: float | None) -> bool:
    """Whether the model ignores a negative prompt at this CFG scale: a guidance-distilled
    model (FLUX.1) uses it only with true CFG (scale > 1), as core/validation.py says."""
    family = family_adapter(service, name)
    return bool(family is not None and family.guidance_distilled_family and cfg_scale == 1.0)


def _safe_list(engine: Any) -> list[Any]:
    try:
        return list(engine.models.list())
    except Exception:
        return []


def sampler_names(host: Any, service: Any, family: str | None = None) -> list[str]:
    engine = find_engine(service)
    if engine is not None:
        try:
            return list(engine.sampler_names(family))
        except TypeError:
            return list(engine.sampler_names())
        except Exception:
            log.exception("could not list samplers")
    return [spec.name for spec in host.samplers]


def schedule_labels() -> list[str]:
    """A1111's schedule types ("Automatic" first), for the dropdown beside the sampler."""
    from core.schedules import SCHEDULE_TYPES

    return [schedule.label for schedule in SCHEDULE_TYPES]


def default_sampler(names: list[str]) -> str | None:
    for preferred in ("Euler a", "Euler", "DPM++ 2M"):
        if preferred in names:
            return preferred
    return names[0] if names else None


def model_defaults(service: Any, name: str | None) -> dict[str, Any]:
    """The engine's defaults for ``name`` (size, steps, CFG, late CFG, sampler, distilled
    CFG: None where the model takes none), read by
    validating an empty request: nothing is loaded. Empty when no engine or model is there."""
    engine = find_engine(service)
    if engine is None or not name:
        return {}
    from plugin_api.types import GenerationRequest

    try:
        filled = engine.validate(GenerationRequest(model=name))
    except Exception:  # a broken model entry: keep the form's own defaults
        log.exception("could not read the defaults of model %r", name)
        return {}
    return {
        "width": filled.width,
        "height": filled.height,
        "steps": filled.steps,
        "cfg_scale": filled.cfg_scale,
        "late_cfg_scale": filled.late_cfg_scale,
        "late_cfg_start": filled.late_cfg_start,
        "sampler": filled.sampler,
        "distilled_cfg_scale": filled.distilled_cfg_scale,
    }


def late_cfg_placeholders(defaults: dict[str, Any]) -> tuple[str, str]:
    """What the empty late-CFG fields show: the model's own late CFG (its easel.json),
    which applies while they are empty, or "—" (one scale throughout) and the default start."""
    from core.validation import DEFAULT_LATE_CFG_START

    scale = defaults.get("late_cfg_scale")
    if scale is None:
        return "—", f"{DEFAULT_LATE_CFG_START:g}"
    return f"{scale:g}", f"{defaults['late_cfg_start']:g}"  # validation sets it with a scale
