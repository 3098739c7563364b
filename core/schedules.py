"""A1111's "Schedule type" (the noise schedule, chosen apart from the sampler), made with
diffusers' own options.

A1111 1.10 (modules/sd_schedulers.py) offers twelve schedule types. Each maps here to
what diffusers' schedulers can do themselves, so the sampler keeps diffusers' tested code:

- ``config``: keys set on the scheduler config before the sampler's scheduler is built
  (``use_karras_sigmas``, ``use_exponential_sigmas``, ``use_beta_sigmas``,
  ``timestep_spacing``). Whether the class took them is checked on the built scheduler
  (``check_applied``): a class without the option (DDIM has no Karras) gets a warning and
  its own schedule, never a silent change.
- ``sigmas``: schedules diffusers has no option for (KL Optimal, Align Your Steps) are
  computed here and given to ``set_timesteps(sigmas=...)`` where the class takes custom
  sigmas (Euler); elsewhere the nearest option (Karras) is used, with a warning.
- Euler a and LMS step from one sigma to the next as k-diffusion's samplers do, so they
  get the sigmas Euler makes for any schedule type (``SIGMA_STEPPERS``), as in A1111.

Flow-matching families (Z-Image) have no discrete timesteps: their choices are the sigma
shapes FlowMatchEulerDiscreteScheduler offers (``flow_config``) and the shift
(``GenerationRequest.shift``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")
AUTOMATIC = "automatic"


def _flags(chosen: str | None) -> dict[str, Any]:
    """All three sigma shapes off but ``chosen``: a sampler's own default (DPM++ SDE's
    Karras) must not leak into another schedule type."""
    return {flag: flag == chosen for flag in SIGMA_FLAGS}


def kl_optimal_sigmas(steps: int, sigma_min: float, sigma_max: float) -> list[float]:
    """ "KL Optimal" (Sabour et al., "Align Your Steps", appendix): equal steps in
    arctan(sigma) from sigma_max to sigma_min, ``steps + 1`` values. Like A1111 it ends on
    sigma_min, not 0: the last step leaves the noise of the smallest training sigma."""
    a_min, a_max = math.atan(sigma_min), math.atan(sigma_max)
    return [math.tan(i / steps * a_min + (1 - i / steps) * a_max) for i in range(steps + 1)]


# NVIDIA's published 10-step Align Your Steps sigmas for SD1.5 and SDXL
# (research.nvidia.com/labs/toronto-ai/AlignYourSteps/howto.html)
AYS_SIGMAS = {
    "sd15": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
    "sdxl": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
}


def align_your_steps_sigmas(steps: int, family: str) -> list[float]:
    """The published list, log-linearly interpolated to ``steps`` values, then 0 (as
    NVIDIA's how-to and A1111 do). Families without a list use SD1.5's, as A1111 does."""
    published = AYS_SIGMAS.get(family, AYS_SIGMAS["sd15"])
    if steps == len(published):
        return [*published, 0.0]
    xs = np.linspace(0, 1, len(published))
    ys = np.log(published[::-1])
    values = np.exp(np.interp(np.linspace(0, 1, steps), xs, ys))[::-1]
    return [*(float(v) for v in values), 0.0]


@dataclass(frozen=True)
class ScheduleType:
    name: str  # A1111's id: "karras"
    label: str  # what A1111 shows and writes to the infotext: "Karras"
    config: dict[str, Any] | None  # None: the sampler's own ("automatic")
    note: str  # how Easel makes it, shown in /sdapi/v1/schedulers' docs and warnings
    aliases: tuple[str, ...] = ()
    default_rho: float = -1.0
    need_inner_model: bool = False
    # (steps, sigma_min, sigma_max, family) -> steps + 1 sigmas, for custom schedules
    sigmas: Callable[[int, float, float, str], list[float]] | None = None
    flow_config: dict[str, Any] | None = field(default=None)  # on flow-matching models

    def a1111(self) -> dict[str, Any]:
        """The entry of /sdapi/v1/schedulers (A1111's shape)."""
        return {
            "name": self.name,
            "label": self.label,
            "aliases": list(self.aliases) or None,
            "default_rho": self.default_rho,
            "need_inner_model": self.need_inner_model,
        }


LINEAR_FLOW = _flags(None)  # the flow model's own linear sigmas (shifted)

SCHEDULE_TYPES: tuple[ScheduleType, ...] = (
    ScheduleType(
        AUTOMATIC, "Automatic", None,
        "the sampler's default (A1111's: Karras for DPM++ 2M, Exponential for the SDE "
        "samplers...), else the model's own schedule",
        flow_config={},
    ),
    ScheduleType(
        "uniform", "Uniform", {**_flags(None), "timestep_spacing": "linspace"},
        "timesteps evenly spaced from the last training step to the first (diffusers' "
        "timestep_spacing='linspace', as k-diffusion's get_sigmas)",
        need_inner_model=True, flow_config=LINEAR_FLOW,
    ),
    ScheduleType(
        "karras", "Karras", _flags("use_karras_sigmas"),
        "Karras et al. 2022, rho 7 between the model's sigma_min and sigma_max (use_karras_sigmas)",
        default_rho=7.0, flow_config=_flags("use_karras_sigmas"),
    ),
    ScheduleType(
        "exponential", "Exponential", _flags("use_exponential_sigmas"),
        "log-sigma evenly spaced (use_exponential_sigmas)",
        flow_config=_flags("use_exponential_sigmas"),
    ),
    ScheduleType(
        "polyexponential", "Polyexponential", _flags("use_exponential_sigmas"),
        "k-diffusion's polyexponential at A1111's default rho 1, which is exactly the "
        "exponential schedule (use_exponential_sigmas)",
        default_rho=1.0, flow_config=_flags("use_exponential_sigmas"),
    ),
    ScheduleType(
        "sgm_uniform", "SGM Uniform", {**_flags(None), "timestep_spacing": "trailing"},
        "timesteps evenly spaced from the last training step, leaving out the first "
        "(timestep_spacing='trailing'; diffusers rounds them to whole steps)",
        aliases=("SGMUniform",), need_inner_model=True, flow_config=LINEAR_FLOW,
    ),
    ScheduleType(
        "kl_optimal", "KL Optimal", _flags(None),
        "equal steps in arctan(sigma), given as custom sigmas where the sampler takes them "
        "(Euler); elsewhere Karras, the nearest",
        sigmas=lambda steps, lo, hi, family: kl_optimal_sigmas(steps, lo, hi),
    ),
    ScheduleType(
        "align_your_steps", "Align Your Steps", _flags(None),
        "NVIDIA's published SD1.5/SDXL sigmas, log-linearly interpolated, as custom "
        "sigmas where the sampler takes them (Euler); elsewhere Karras, the nearest",
        sigmas=lambda steps, lo, hi, family: align_your_steps_sigmas(steps, family),
    ),
    ScheduleType(
        "simple", "Simple", {**_flags(None), "timestep_spacing": "trailing"},
        "every (1000/steps)-th training sigma from the top (timestep_spacing='trailing')",
        need_inner_model=True, flow_config=LINEAR_FLOW,
    ),
    ScheduleType(
        "normal", "Normal", {**_flags(None), "timestep_spacing": "linspace"},
        "timesteps evenly spaced from sigma_max's to sigma_min's (timestep_spacing='linspace')",
        need_inner_model=True, flow_config=LINEAR_FLOW,
    ),
    ScheduleType(
        "ddim", "DDIM", {**_flags(None), "timestep_spacing": "leading", "steps_offset": 1},
        "DDIM's timesteps 1, 1+1000//steps, ... (timestep_spacing='leading', steps_offset 1)",
        need_inner_model=True,
    ),
    ScheduleType(
        "beta", "Beta", _flags("use_beta_sigmas"),
        "Lee et al. 2024, Beta(0.6, 0.6) quantiles between sigma_max and sigma_min, "
        "A1111's default alpha and beta (use_beta_sigmas)",
        need_inner_model=True, flow_config=_flags("use_beta_sigmas"),
    ),
)  # fmt: skip


def find_schedule(name: str | None) -> ScheduleType | None:
    """The schedule type for an id, label or alias in any case ("karras", "Karras",
    "SGMUniform"); None or "" or "auto" is Automatic; None when unknown."""
    if name is None or not str(name).strip() or str(name).strip().casefold() == "auto":
        return SCHEDULE_TYPES[0]
    wanted = str(name).strip().casefold()
    for schedule in SCHEDULE_TYPES:
        if wanted in {
            schedule.name.casefold(),
            schedule.label.casefold(),
            *(a.casefold() for a in schedule.aliases),
        }:
            return schedule
    return None


def schedule_choices() -> str:
    return ", ".join(s.label for s in SCHEDULE_TYPES)


def split_schedule_suffix(name: str) -> tuple[str, ScheduleType] | None:
    """A1111 before 1.9 folded the schedule into the sampler name ("DPM++ 2M Karras");
    1.10 still accepts it and splits it off. Returns (sampler, schedule) or None."""
    for schedule in SCHEDULE_TYPES[1:]:
        for option in (schedule.label, *schedule.aliases):
            if name.casefold().endswith(" " + option.casefold()):
                return name[: -(len(option) + 1)].strip(), schedule
    return None


def with_config(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``updates`` set, and those keys taken off ``_use_default_values``:
    diffusers' from_config drops every key listed there (values the file never set), so
    a schedule set on such a key would be silently lost."""
    config = dict(base)
    config.update(updates)
    unset = config.get("_use_default_values")
    if unset:
        config["_use_default_values"] = [key for key in unset if key not in updates]
    return config


def not_applied(scheduler: Any, updates: dict[str, Any]) -> list[str]:
    """The keys of ``updates`` the built scheduler does not hold (its class has no such
    option), so the caller can say the schedule type was not made."""
    import inspect

    # the class's own options: diffusers also keeps keys it ignores in ``config``
    options = inspect.signature(type(scheduler).__init__).parameters
    missing = []
    for key, value in updates.items():
        if key in options:
            if scheduler.config.get(key) != value:
                missing.append(key)
        elif value not in (False, None):  # an absent sigma flag means "off", which is fine
            missing.append(key)
    return missing


def model_sigma_range(scheduler: Any) -> tuple[float, float]:
    """(sigma_min, sigma_max) of a discrete scheduler's training schedule."""
    alphas = scheduler.alphas_cumprod
    sigmas = ((1 - alphas) / alphas) ** 0.5
    return float(sigmas.min()), float(sigmas.max())


def takes_custom_sigmas(scheduler: Any) -> bool:
    import inspect

    if "sigmas" not in inspect.signature(scheduler.set_timesteps).parameters:
        return False
    # UniPC takes sigmas only on flow models (use_flow_sigmas)
    return "use_flow_sigmas" not in scheduler.config


@dataclass
class BuiltScheduler:
    """A sampler's scheduler made on one schedule type. ``set_timesteps(steps, device)``
    replaces the scheduler's own ``set_timesteps`` where the schedule is made here (custom
    sigmas, or sigmas given to a class that has no option for them); None otherwise."""

    scheduler: Any
    set_timesteps: Callable[[int, Any], None] | None
    warnings: list[str]


# classes that step from one sigma to the next, one sigma per step, as k-diffusion's
# samplers do: any sigma schedule can be given to them (A1111's Euler a and LMS take
# every schedule type), though diffusers offers no option for it on them
SIGMA_STEPPERS = ("EulerAncestralDiscreteScheduler", "LMSDiscreteScheduler")


def effective_schedule(spec: Any, schedule: ScheduleType) -> ScheduleType:
    """What "Automatic" means for a sampler: its A1111 default (``options["scheduler"]``)."""
    if schedule.name != AUTOMATIC:
        return schedule
    return find_schedule(spec.options.get("scheduler")) or schedule


def _custom(schedule: ScheduleType, maker: Any, family: str) -> Callable[[int], list[float]] | None:
    if schedule.sigmas is None:
        return None
    low, high = model_sigma_range(maker)
    make = schedule.sigmas
    return lambda steps: make(steps, low, high, family)


def _given_sigmas(
    target: Any, maker: Any, custom: Callable[[int], list[float]] | None
) -> Callable[[int, Any], None]:
    """``target`` steps on the sigmas (and timesteps) Euler makes for the schedule: Euler
    has every option and takes custom sigmas, and uses the same sigma/timestep mapping."""

    def set_timesteps(steps: int, device: Any) -> None:
        if custom is not None:
            maker.set_timesteps(device=device, sigmas=custom(steps))
        else:
            maker.set_timesteps(steps, device=device)
        target.set_timesteps(len(maker.timesteps), device=device)  # resets its own state
        target.sigmas = maker.sigmas.to(target.sigmas.device)
        target.timesteps = maker.timesteps.to(target.timesteps.device)

    return set_timesteps


def build_scheduler(
    spec: Any, schedule: ScheduleType, base: dict[str, Any], *, flow: bool, family: str, shift: float | None
) -> BuiltScheduler:
    """``spec``'s scheduler from the model's config ``base`` on ``schedule``. Where the
    sampler's class cannot make the schedule type, it keeps its own and the result says
    so (a warning), rather than silently sampling on another schedule."""
    warnings: list[str] = []
    label = schedule.label
    if flow:
        updates = dict(schedule.flow_config) if schedule.flow_config is not None else {}
        if schedule.flow_config is None:
            warnings.append(
                f"Schedule type {label!r} has no flow-matching form; used the model's own schedule"
            )
        if shift is not None:  # a fixed shift replaces the resolution-dependent one
            updates.update(shift=float(shift), use_dynamic_shifting=False)
        scheduler = spec.make_scheduler(with_config(base, updates))
        missed = not_applied(scheduler, updates)
        if missed:
            warnings.append(f"{type(scheduler).__name__} has no {', '.join(missed)}; {label!r} not applied")
        return BuiltScheduler(scheduler, None, warnings)

    chosen = effective_schedule(spec, schedule)
    if chosen.config is None:
        return BuiltScheduler(spec.make_scheduler(base), None, warnings)
    config = with_config(base, chosen.config)
    scheduler = spec.make_scheduler(config)
    missed = not_applied(scheduler, chosen.config)
    if not missed and chosen.sigmas is None:
        return BuiltScheduler(scheduler, None, warnings)
    if not missed and takes_custom_sigmas(scheduler):
        custom = _custom(chosen, scheduler, family)
        assert custom is not None
        return BuiltScheduler(scheduler, lambda steps, device: scheduler.set_timesteps(device=device, sigmas=custom(steps)), warnings)  # fmt: skip
    if type(scheduler).__name__ in SIGMA_STEPPERS:
        import diffusers

        maker = diffusers.EulerDiscreteScheduler.from_config(config)
        return BuiltScheduler(
            scheduler, _given_sigmas(scheduler, maker, _custom(chosen, maker, family)), warnings
        )
    if missed:
        warnings.append(
            f"Schedule type {label!r} is not available for sampler {spec.name!r} "
            f"({type(scheduler).__name__} has no {', '.join(missed)}); used the sampler's own schedule"
        )
        return BuiltScheduler(spec.make_scheduler(base), None, warnings)
    karras = find_schedule("karras")
    assert karras is not None and karras.config is not None
    nearest, used = spec.make_scheduler(with_config(base, karras.config)), "Karras, the nearest"
    if not_applied(nearest, karras.config):
        nearest, used = spec.make_scheduler(base), "the sampler's own schedule"
    warnings.append(
        f"Schedule type {label!r} needs custom sigmas, which {type(scheduler).__name__} (sampler "
        f"{spec.name!r}) does not take; used {used}"
    )
    return BuiltScheduler(nearest, None, warnings)
