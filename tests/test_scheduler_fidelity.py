"""Samplers are built exactly as diffusers' ``SchedulerClass.from_config(config, **options)``
builds them, for every built-in sampler on every scheduler config Easel ships, and an SD1.5
single file samples on A1111's / diffusers' schedule (first sigma 14.6 at 20 steps).

The reference here is diffusers itself: its own ``from_config`` on the scheduler that its
pipeline loaders make from the same folder, and its ``StableDiffusionPipeline`` image.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from core.config import MODEL_CONFIGS_DIR, SHIPPED_MODELS_DIR
from core.samplers import builtin_sampler_specs
from tests import tiny_models

# A1111 sampler name -> the diffusers class and options that mean the same thing (written
# here independently of core/samplers.py: this is what the test checks it against)
REFERENCE: dict[str, tuple[str, dict]] = {
    "Euler": ("EulerDiscreteScheduler", {}),
    "Euler a": ("EulerAncestralDiscreteScheduler", {}),
    "DPM++ 2M": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "DPM++ 2M Karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "DPM++ 2M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "DDIM": ("DDIMScheduler", {}),
    "UniPC": ("UniPCMultistepScheduler", {}),
    "LCM": ("LCMScheduler", {}),
    "Heun": ("HeunDiscreteScheduler", {}),
    "PLMS": ("PNDMScheduler", {"skip_prk_steps": True}),
    "Euler (flow)": ("FlowMatchEulerDiscreteScheduler", {}),
    "Euler a (flow)": ("FlowMatchEulerDiscreteScheduler", {"stochastic_sampling": True}),
    # the sampler alone, on the model's own schedule; its A1111 default schedule type
    # ("Automatic") is added where images are compared (A1111_AUTOMATIC below)
    "DPM++ SDE": ("DPMSolverSDEScheduler", {}),
    "DPM++ 2M SDE Heun": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "heun"},
    ),
    "DPM++ 3M SDE": ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}),
    "LMS": ("LMSDiscreteScheduler", {}),
    "DPM2": ("KDPM2DiscreteScheduler", {}),
    "DPM2 a": ("KDPM2AncestralDiscreteScheduler", {}),
    "DEIS": ("DEISMultistepScheduler", {}),
    # A1111 names diffusers has no solver for: the nearest, as core/samplers.py documents
    "DPM++ 2S a": ("DPMSolverSinglestepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "DPM fast": ("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 3}),
    "DPM adaptive": ("DPMSolverSinglestepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 3}),
    "Restart": ("HeunDiscreteScheduler", {}),
    "DDIM CFG++": ("DDIMScheduler", {}),
}
# A1111 1.10's default schedule type per sampler (its sd_samplers_kdiffusion.py options),
# which its "Automatic" means, as diffusers options
A1111_AUTOMATIC: dict[str, dict] = {
    **{
        key: {"use_karras_sigmas": True}
        for key in ["DPM++ 2M", "DPM++ SDE", "DPM++ 2S a", "DPM2", "DPM2 a", "Restart"]
    },
    **{
        key: {"use_exponential_sigmas": True} for key in ["DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 3M SDE"]
    },
}
# every scheduler config Easel ships: (folder holding scheduler/, flow matching?)
SHIPPED_CONFIGS = {
    "sd15": (MODEL_CONFIGS_DIR / "sd15", False),
    "sd2": (MODEL_CONFIGS_DIR / "sd2", False),
    "sdxl": (MODEL_CONFIGS_DIR / "sdxl", False),
    "zimage": (MODEL_CONFIGS_DIR / "zimage", True),
    "easel-demo": (SHIPPED_MODELS_DIR / "Stable-diffusion" / "easel-demo", False),
}
K_SAMPLERS = ["Euler", "Euler a", "Heun", "DPM++ 2M", "DPM++ 2M SDE", "UniPC", "LMS", "DPM2"]


def loaded_scheduler(folder: Path):
    """The scheduler as a diffusers pipeline loads it from ``folder`` (its own class,
    ``from_pretrained``: keys the file leaves out are recorded in ``_use_default_values``)."""
    import diffusers

    config = diffusers.DDPMScheduler.load_config(str(folder), subfolder="scheduler")
    return getattr(diffusers, config["_class_name"]).from_pretrained(str(folder), subfolder="scheduler")


def cases() -> list[tuple[str, str]]:
    specs = builtin_sampler_specs()
    assert {s.name for s in specs} <= set(REFERENCE), "a new built-in sampler needs a reference here"
    return [
        (config, spec.name)
        for config, (_, flow) in SHIPPED_CONFIGS.items()
        for spec in specs
        if spec.flow == flow
    ]


@pytest.mark.parametrize(("config", "sampler"), cases())
@pytest.mark.parametrize("steps", [20, 7])
def test_sampler_schedule_equals_diffusers_from_config(config, sampler, steps):
    import diffusers

    base = loaded_scheduler(SHIPPED_CONFIGS[config][0])
    spec = next(s for s in builtin_sampler_specs() if s.name == sampler)
    ours = spec.make_scheduler(dict(base.config))
    class_name, options = REFERENCE[sampler]
    expected = getattr(diffusers, class_name).from_config(base.config, **options)
    assert type(ours) is type(expected)
    assert dict(ours.config) == dict(expected.config)
    ours.set_timesteps(steps)
    expected.set_timesteps(steps)
    assert torch.equal(ours.timesteps, expected.timesteps), (ours.timesteps, expected.timesteps)
    if hasattr(expected, "sigmas"):
        assert torch.equal(ours.sigmas, expected.sigmas)
    assert getattr(ours, "init_noise_sigma", 1.0) == getattr(expected, "init_noise_sigma", 1.0)


def sd15_sigma_max() -> float:
    """SD1.5's largest training sigma from its betas (scaled_linear 0.00085..0.012, 1000
    steps), computed here without diffusers: sqrt((1 - abar_T) / abar_T) = 14.6146."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alpha_bar = np.cumprod(1.0 - betas)[-1]
    return math.sqrt((1.0 - alpha_bar) / alpha_bar)


@pytest.mark.parametrize("sampler", K_SAMPLERS)
def test_sd15_k_samplers_start_at_sigma_max(sampler):
    assert sd15_sigma_max() == pytest.approx(14.6146, abs=1e-4)
    spec = next(s for s in builtin_sampler_specs() if s.name == sampler)
    scheduler = spec.make_scheduler(dict(loaded_scheduler(MODEL_CONFIGS_DIR / "sd15").config))
    scheduler.set_timesteps(20)
    # A1111 (k-diffusion) and diffusers start SD1.5 at sigma_max; "leading" spacing began at 11.0
    assert float(scheduler.sigmas[0]) == pytest.approx(sd15_sigma_max(), rel=1e-4)


# --- an SD1.5 single file with the real SD1.5 scheduler config, against diffusers -------


@pytest.fixture(scope="module")
def sd15_real_schedule(tmp_path_factory):
    """A tiny SD1.5 single file (original LDM keys) whose config sidecar carries the real
    SD1.5 ``scheduler_config.json`` (PNDM, no timestep_spacing), and an engine on it."""
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("sd15-real-schedule")
    folder = tiny_models.make_tiny_sd15(root / "diffusers")
    checkpoint = tiny_models.write_single_file(
        root / "models" / "Stable-diffusion" / "sd15-file.safetensors",
        tiny_models.sd15_to_ldm(tiny_models.tiny_sd15_components()),
    )
    sidecar = tiny_models.write_config_sidecar(folder, checkpoint)
    shutil.copy(MODEL_CONFIGS_DIR / "sd15" / "scheduler" / "scheduler_config.json", sidecar / "scheduler")
    assert "timestep_spacing" not in json.loads((sidecar / "scheduler" / "scheduler_config.json").read_text())
    host = Host(
        Settings(data_dir=root / "data", models_dir=root / "models", safe_mode=True, device="cpu")
    ).start()
    yield Engine(host), checkpoint, sidecar
    host.stop()


def diffusers_image(checkpoint: Path, sidecar: Path, sampler: str, steps: int, seed: int) -> np.ndarray:
    import diffusers

    pipe = diffusers.StableDiffusionPipeline.from_single_file(
        str(checkpoint),
        config=str(sidecar),
        local_files_only=True,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    class_name, options = REFERENCE[sampler]
    options = {**options, **A1111_AUTOMATIC.get(sampler, {})}
    if class_name == "DPMSolverSDEScheduler":  # its Brownian tree is seeded by the image seed
        options["noise_sampler_seed"] = seed
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **options)
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        "a red circle",
        negative_prompt="blurry",
        num_inference_steps=steps,
        guidance_scale=7.0,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    ).images[0]


@pytest.mark.parametrize("sampler", [s.name for s in builtin_sampler_specs() if not s.flow])
def test_sd15_single_file_image_equals_diffusers_pipeline(sd15_real_schedule, sampler):
    from plugin_api import GenerationRequest

    engine, checkpoint, sidecar = sd15_real_schedule
    steps = 20
    result = engine.generate(
        GenerationRequest(
            prompt="a red circle", negative_prompt="blurry", seed=11, steps=steps, cfg_scale=7.0,
            width=64, height=64, model="sd15-file", sampler=sampler, save_images=False,
        )
    )  # fmt: skip
    ours = np.asarray(result.images[0], dtype=np.float32) / 255.0
    expected = diffusers_image(checkpoint, sidecar, sampler, steps, seed=11)
    # tolerance: one 8-bit level after rounding (diffusers returns floats, Easel 8-bit
    # pixels) plus float summation-order noise: 1.5/255
    assert np.abs(ours - expected).max() <= 1.5 / 255.0


# --- the catalogue as A1111 1.10 lists it (names, aliases, options) -------------------

# A1111 1.10's modules/sd_samplers_kdiffusion.py ``samplers_k_diffusion`` and
# sd_samplers_timesteps.py ``samplers_timesteps``: (name, aliases, options), written here
# from A1111's source. /sdapi/v1/samplers serves these, and clients send the aliases.
A1111_SAMPLERS: list[tuple[str, list[str], dict]] = [
    ("DPM++ 2M", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    ("DPM++ SDE", ["k_dpmpp_sde"], {"scheduler": "karras", "second_order": True, "brownian_noise": True}),
    ("DPM++ 2M SDE", ["k_dpmpp_2m_sde"], {"scheduler": "exponential", "brownian_noise": True}),
    (
        "DPM++ 2M SDE Heun",
        ["k_dpmpp_2m_sde_heun"],
        {"scheduler": "exponential", "brownian_noise": True, "solver_type": "heun"},
    ),
    ("DPM++ 2S a", ["k_dpmpp_2s_a"], {"scheduler": "karras", "uses_ensd": True, "second_order": True}),
    (
        "DPM++ 3M SDE",
        ["k_dpmpp_3m_sde"],
        {"scheduler": "exponential", "discard_next_to_last_sigma": True, "brownian_noise": True},
    ),
    ("Euler a", ["k_euler_a", "k_euler_ancestral"], {"uses_ensd": True}),
    ("Euler", ["k_euler"], {}),
    ("LMS", ["k_lms"], {}),
    ("Heun", ["k_heun"], {"second_order": True}),
    ("DPM2", ["k_dpm_2"], {"scheduler": "karras", "discard_next_to_last_sigma": True, "second_order": True}),
    (
        "DPM2 a",
        ["k_dpm_2_a"],
        {"scheduler": "karras", "discard_next_to_last_sigma": True, "uses_ensd": True, "second_order": True},
    ),
    ("DPM fast", ["k_dpm_fast"], {"uses_ensd": True}),
    ("DPM adaptive", ["k_dpm_ad"], {"uses_ensd": True}),
    ("Restart", ["restart"], {"scheduler": "karras", "second_order": True}),
    ("DDIM", ["ddim"], {}),
    ("DDIM CFG++", ["ddim_cfgpp"], {}),
    ("PLMS", ["plms"], {}),
    ("UniPC", ["unipc"], {}),
]
# the names diffusers has no solver for: the nearest one runs, and the note says which
NEAREST = {"DPM++ 2S a", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++"}


def test_builtin_catalogue_is_a1111s_names_aliases_and_options_in_its_order():
    specs = {spec.name: spec for spec in builtin_sampler_specs()}
    names = [spec.name for spec in builtin_sampler_specs()]
    a1111_names = [name for name, _, _ in A1111_SAMPLERS]
    assert [name for name in names if name in a1111_names] == a1111_names  # A1111's order
    for name, aliases, options in A1111_SAMPLERS:
        spec = specs[name]
        assert list(spec.aliases[: len(aliases)]) == aliases, name  # A1111's first, in order
        assert spec.options == options, name
    for spec in specs.values():
        assert bool(spec.note) == (spec.name in NEAREST), spec.name
        if spec.note:
            assert spec.note.startswith(f"{spec.name}: "), spec.note  # it names the sampler...
            assert "ran " in spec.note and "nearest" in spec.note, spec.note  # ...and what ran
    assert specs["LCM"].aliases == ("k_lcm", "lcm") and specs["DEIS"].aliases == ("deis",)
    assert specs["PLMS"].aliases == ("plms", "pndm")  # diffusers' name for it as well
    assert specs["Euler (flow)"].flow and specs["Euler a (flow)"].flow
    assert [spec.name for spec in specs.values() if spec.flow] == ["Euler (flow)", "Euler a (flow)"]


def test_every_sampler_has_lower_case_aliases_that_find_it_the_flow_forms_too():
    """A1111 gives every sampler at least one alias, a lower-case identifier (``k_euler``,
    ``ddim``: A1111_SAMPLERS above). The flow forms, which /api/v1/samplers lists, have
    theirs as docs/api.md names them (``flow_euler``, ``flow_euler_a``); every alias finds
    its own sampler in the registry the host fills."""
    from core.plugins.registries import Registry
    from core.samplers import register_samplers
    from plugin_api import SamplerSpec

    assert all(
        alias.isidentifier() and alias.islower() for _, aliases, _ in A1111_SAMPLERS for alias in aliases
    )
    registry = Registry("sampler", SamplerSpec)
    register_samplers(registry.register_for("builtin"))
    assert not registry.problems
    for spec in builtin_sampler_specs():
        assert spec.aliases, spec.name
        for alias in spec.aliases:
            assert alias.isidentifier() and alias.islower(), (spec.name, alias)
            assert registry.get(alias).name == spec.name, alias
    assert registry.get("flow_euler").name == "Euler (flow)"
    assert registry.get("flow_euler_a").name == "Euler a (flow)"
