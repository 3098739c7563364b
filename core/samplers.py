"""The built-in samplers, under the names A1111 users type, registered as a builtin plugin.

Each sampler is a diffusers scheduler built from the model's own scheduler config, so
its training settings (beta schedule, prediction type, shift) carry over. Extensions add
more through the same ``register_samplers`` hook.

Flow-matching families (Z-Image) cannot use the noise-prediction schedulers; their
samplers carry ``flow=True`` and the name ``"<name> (flow)"``. A user who asks for
"Euler" on a flow model gets "Euler (flow)" (see ``resolve_sampler``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from typing import Any

from plugin_api import SamplerSpec, hookimpl

FLOW_SUFFIX = " (flow)"


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


def builtin_sampler_specs() -> list[SamplerSpec]:
    specs = [
        SamplerSpec("Euler", _factory("EulerDiscreteScheduler"), aliases=("k_euler",)),
        SamplerSpec("Euler a", _factory("EulerAncestralDiscreteScheduler"), aliases=("k_euler_a", "euler_a")),
        SamplerSpec(
            "DPM++ 2M",
            _factory(
                "DPMSolverMultistepScheduler",
                algorithm_type="dpmsolver++",
                solver_order=2,
                use_karras_sigmas=False,
            ),
            aliases=("k_dpmpp_2m", "dpmpp_2m"),
        ),
        SamplerSpec(
            "DPM++ 2M Karras",
            _factory(
                "DPMSolverMultistepScheduler",
                algorithm_type="dpmsolver++",
                solver_order=2,
                use_karras_sigmas=True,
            ),
            aliases=("k_dpmpp_2m_ka", "dpmpp_2m_karras"),
        ),
        # SDE variant of the multistep solver: needs no torchsde
        SamplerSpec(
            "DPM++ 2M SDE",
            _factory("DPMSolverMultistepScheduler", algorithm_type="sde-dpmsolver++", solver_order=2),
            aliases=("k_dpmpp_2m_sde", "dpmpp_2m_sde"),
        ),
        SamplerSpec("DDIM", _factory("DDIMScheduler"), aliases=("ddim",)),
        SamplerSpec("UniPC", _factory("UniPCMultistepScheduler"), aliases=("unipc",)),
        SamplerSpec("LCM", _factory("LCMScheduler"), aliases=("lcm",)),
        SamplerSpec("Heun", _factory("HeunDiscreteScheduler"), aliases=("k_heun",)),
        SamplerSpec("PLMS", _factory("PNDMScheduler", skip_prk_steps=True), aliases=("plms", "pndm")),
        SamplerSpec(
            "Euler" + FLOW_SUFFIX,
            _factory("FlowMatchEulerDiscreteScheduler"),
            aliases=("flow_euler",),
            flow=True,
        ),
    ]
    # DPMSolverSDEScheduler draws its noise through torchsde, which Easel does not depend
    # on: offer "DPM++ SDE" only where the user installed it.
    if importlib.util.find_spec("torchsde") is not None:
        specs.append(
            SamplerSpec(
                "DPM++ SDE",
                _factory("DPMSolverSDEScheduler", use_karras_sigmas=True),
                aliases=("k_dpmpp_sde", "dpmpp_sde"),
            )
        )
    return specs


@hookimpl
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    for spec in builtin_sampler_specs():
        register(spec)


def resolve_sampler(registry: Any, name: str, flow: bool) -> SamplerSpec | None:
    """The spec for ``name`` on a model that is (or is not) flow-matching, or None."""
    spec = registry.get(name)
    if spec is None:
        return None
    if spec.flow == flow:
        return spec
    if flow:
        return registry.get(spec.name + FLOW_SUFFIX)
    return None


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
