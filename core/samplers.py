"""The built-in samplers: A1111 1.10's catalogue, under its names and aliases, registered
as a builtin plugin.

Each sampler is a diffusers scheduler built from the model's own scheduler config, so
its training settings (beta schedule, prediction type, shift) carry over, and diffusers'
tested solvers do the stepping (rather than a copy of k-diffusion's loops: the sampling
loop, img2img, hires fix and the hooks all drive one diffusers-style ``step``). The
schedule type (Karras, Exponential...) is not part of the sampler: the host sets it in
the config (``core.schedules``); ``options["scheduler"]`` is what "Automatic" means for
the sampler, as in A1111.

Names diffusers has no faithful solver for (DPM fast, DPM adaptive, Restart, DPM++ 2S a,
DDIM CFG++) run the nearest one; their ``note`` says which, and every result made with
them carries it as a warning.

Flow-matching families (Z-Image) cannot use the noise-prediction schedulers; their
samplers carry ``flow=True`` and the name ``"<name> (flow)"``. A user who asks for
"Euler" on a flow model gets "Euler (flow)"; a name without a flow form gets Euler
(flow) with a warning (see ``resolve_sampler``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from plugin_api import SamplerSpec, hookimpl

FLOW_SUFFIX = " (flow)"
FLOW_FALLBACK = "Euler" + FLOW_SUFFIX


def _factory(class_name: str, **overrides: Any) -> Callable[[dict[str, Any]], Any]:
    def make_scheduler(base_config: dict[str, Any]) -> Any:
        import diffusers

        cls = getattr(diffusers, class_name)
        # Exactly diffusers' ``cls.from_config(config, **overrides)``: the config keeps its
        # ``_use_default_values`` (the keys its file never set), which from_config leaves
        # out so the new class keeps its own defaults. Dropping that list (with the other
        # ``_`` keys) forced e.g. PNDM's timestep_spacing="leading" into Euler on SD1.5:
        # a first sigma of 11.0 instead of 14.6, an under-noised start.
        return cls.from_config(dict(base_config), **overrides)

    make_scheduler.__qualname__ = f"make_{class_name}"
    return make_scheduler


def _spec(
    name: str,
    class_name: str,
    aliases: tuple[str, ...],
    options: dict[str, Any] | None = None,
    note: str = "",
    **overrides: Any,
) -> SamplerSpec:
    return SamplerSpec(name, _factory(class_name, **overrides), aliases, options=options or {}, note=note)


DPMPP = "DPMSolverMultistepScheduler"
KARRAS, EXPONENTIAL = {"scheduler": "karras"}, {"scheduler": "exponential"}


def builtin_sampler_specs() -> list[SamplerSpec]:
    """A1111 1.10's samplers in its order (k-diffusion's, then the timestep samplers and
    LCM), then Easel's own (DEIS) and the flow-matching ones. ``options`` are A1111's."""
    return [
        _spec("DPM++ 2M", DPMPP, ("k_dpmpp_2m",), KARRAS, algorithm_type="dpmsolver++", solver_order=2),
        # DPMSolverSDEScheduler draws its noise through torchsde (a locked dependency)
        _spec(
            "DPM++ SDE", "DPMSolverSDEScheduler", ("k_dpmpp_sde",),
            {**KARRAS, "second_order": True, "brownian_noise": True},
        ),
        _spec(
            "DPM++ 2M SDE", DPMPP, ("k_dpmpp_2m_sde",), {**EXPONENTIAL, "brownian_noise": True},
            algorithm_type="sde-dpmsolver++", solver_order=2,
        ),
        _spec(
            "DPM++ 2M SDE Heun", DPMPP, ("k_dpmpp_2m_sde_heun",),
            {**EXPONENTIAL, "brownian_noise": True, "solver_type": "heun"},
            algorithm_type="sde-dpmsolver++", solver_order=2, solver_type="heun",
        ),
        _spec(
            "DPM++ 2S a", "DPMSolverSinglestepScheduler", ("k_dpmpp_2s_a",),
            {**KARRAS, "uses_ensd": True, "second_order": True},
            note="DPM++ 2S a: diffusers has no ancestral single-step DPM++; ran its "
            "second-order single-step SDE solver (noise every step), the nearest",
            algorithm_type="sde-dpmsolver++", solver_order=2,
        ),
        _spec(
            "DPM++ 3M SDE", DPMPP, ("k_dpmpp_3m_sde",),
            {**EXPONENTIAL, "discard_next_to_last_sigma": True, "brownian_noise": True},
            algorithm_type="sde-dpmsolver++", solver_order=3,
        ),
        _spec("Euler a", "EulerAncestralDiscreteScheduler", ("k_euler_a", "k_euler_ancestral"), {"uses_ensd": True}),
        _spec("Euler", "EulerDiscreteScheduler", ("k_euler",)),
        _spec("LMS", "LMSDiscreteScheduler", ("k_lms",)),
        _spec("Heun", "HeunDiscreteScheduler", ("k_heun",), {"second_order": True}),
        _spec(
            "DPM2", "KDPM2DiscreteScheduler", ("k_dpm_2",),
            {**KARRAS, "discard_next_to_last_sigma": True, "second_order": True},
        ),
        _spec(
            "DPM2 a", "KDPM2AncestralDiscreteScheduler", ("k_dpm_2_a",),
            {**KARRAS, "discard_next_to_last_sigma": True, "uses_ensd": True, "second_order": True},
        ),
        _spec(
            "DPM fast", "DPMSolverSinglestepScheduler", ("k_dpm_fast",), {"uses_ensd": True},
            note="DPM fast: diffusers has no DPM-Solver-fast (its order schedule); ran "
            "DPM-Solver single-step order 3 for the same number of steps, the nearest",
            algorithm_type="dpmsolver++", solver_order=3,
        ),
        _spec(
            "DPM adaptive", "DPMSolverSinglestepScheduler", ("k_dpm_ad",), {"uses_ensd": True},
            note="DPM adaptive: diffusers has no adaptive step-size DPM-Solver; ran "
            "DPM-Solver single-step order 3 with the requested steps, the nearest",
            algorithm_type="dpmsolver++", solver_order=3,
        ),
        _spec(
            "Restart", "HeunDiscreteScheduler", ("restart",), {**KARRAS, "second_order": True},
            note="Restart: diffusers has no Restart sampler; ran Heun (Restart's inner "
            "solver) without the restart noise, the nearest",
        ),
        _spec("DDIM", "DDIMScheduler", ("ddim",)),
        _spec(
            "DDIM CFG++", "DDIMScheduler", ("ddim_cfgpp",),
            note="DDIM CFG++: diffusers' DDIM has no CFG++ renoising; ran plain DDIM, the nearest",
        ),
        _spec("PLMS", "PNDMScheduler", ("plms", "pndm"), skip_prk_steps=True),
        _spec("UniPC", "UniPCMultistepScheduler", ("unipc",)),
        _spec("LCM", "LCMScheduler", ("k_lcm", "lcm")),
        # not in A1111: diffusers' DEIS, for those who use it elsewhere
        _spec("DEIS", "DEISMultistepScheduler", ("deis",)),
        SamplerSpec("Euler" + FLOW_SUFFIX, _factory("FlowMatchEulerDiscreteScheduler"), ("flow_euler",), flow=True),
        SamplerSpec(
            "Euler a" + FLOW_SUFFIX,
            _factory("FlowMatchEulerDiscreteScheduler", stochastic_sampling=True),
            ("flow_euler_a",),
            flow=True,
        ),
    ]  # fmt: skip


@hookimpl
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    for spec in builtin_sampler_specs():
        register(spec)


def resolve_sampler(registry: Any, name: str, flow: bool) -> tuple[SamplerSpec, str] | None:
    """The spec for ``name`` on a model that is (or is not) flow-matching, with a warning
    ("" when none), or None when no sampler has that name.

    On a flow model, a name without a flow form runs Euler (flow): A1111 clients send
    their own sampler names to every model, and a refusal would stop them; the warning
    says what ran instead."""
    spec = registry.get(name)
    if spec is None:
        return None
    if spec.flow == flow:
        return spec, ""
    if not flow:
        return None
    variant = registry.get(spec.name + FLOW_SUFFIX)
    if variant is not None and variant.flow:
        return variant, ""
    fallback = registry.get(FLOW_FALLBACK)
    if fallback is None:
        return None
    return fallback, (
        f"Sampler {spec.name!r} has no flow-matching form for this model; sampled with "
        f"{display_name(fallback)!r}"
    )


def display_name(spec: SamplerSpec) -> str:
    """The name shown to users and written to infotext ("Euler", not "Euler (flow)")."""
    return spec.name[: -len(FLOW_SUFFIX)] if spec.name.endswith(FLOW_SUFFIX) else spec.name


def names_for(specs: Iterable[SamplerSpec], flow: bool | None) -> list[str]:
    """Sampler names a user can pick for a family (``flow`` None: every sampler)."""
    names: list[str] = []
    for spec in specs:
        if flow is None:
            names.append(spec.name)
        elif spec.flow == flow:
            shown = display_name(spec) if flow else spec.name
            if shown not in names:
                names.append(shown)
    return names
