"""A1111's schedule types, as Easel builds them, against references: diffusers' own
``from_config(config, use_karras_sigmas=True...)`` where diffusers has the option, and the
formulas of A1111 1.10's modules/sd_schedulers.py (computed here, independently of
core/schedules.py) where it does not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.config import MODEL_CONFIGS_DIR
from core.samplers import builtin_sampler_specs
from core.schedules import SCHEDULE_TYPES, build_scheduler, find_schedule, split_schedule_suffix

SPECS = {spec.name: spec for spec in builtin_sampler_specs()}
A1111_SCHEDULES = [
    ("automatic", "Automatic"), ("uniform", "Uniform"), ("karras", "Karras"), ("exponential", "Exponential"),
    ("polyexponential", "Polyexponential"), ("sgm_uniform", "SGM Uniform"), ("kl_optimal", "KL Optimal"),
    ("align_your_steps", "Align Your Steps"), ("simple", "Simple"), ("normal", "Normal"), ("ddim", "DDIM"),
    ("beta", "Beta"),
]  # fmt: skip


def model_config(family: str) -> dict:
    """The scheduler config as diffusers' pipeline loads it from the shipped folder."""
    import diffusers

    folder = str(MODEL_CONFIGS_DIR / family)
    config = diffusers.DDPMScheduler.load_config(folder, subfolder="scheduler")
    return dict(
        getattr(diffusers, config["_class_name"]).from_pretrained(folder, subfolder="scheduler").config
    )


def built(sampler: str, schedule: str, steps: int, family: str = "sd15"):
    result = build_scheduler(
        SPECS[sampler], find_schedule(schedule), model_config(family), flow=False, family=family, shift=None
    )
    if result.set_timesteps is not None:
        result.set_timesteps(steps, "cpu")
    else:
        result.scheduler.set_timesteps(steps)
    return result


def sd15_training_sigmas() -> np.ndarray:
    """SD1.5's sigmas from its betas (scaled_linear 0.00085..0.012, 1000 steps)."""
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alpha_bar = np.cumprod(1.0 - betas)
    return np.sqrt((1.0 - alpha_bar) / alpha_bar)


def test_the_catalogue_is_a1111s():
    assert [(s.name, s.label) for s in SCHEDULE_TYPES] == A1111_SCHEDULES
    names = [s.name for s in builtin_sampler_specs() if not s.flow]
    for a1111 in ["DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
                  "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart",
                  "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM"]:  # fmt: skip
        assert a1111 in names
    assert SPECS["Euler a"].aliases == ("k_euler_a", "k_euler_ancestral")
    assert find_schedule("SGMUniform").name == "sgm_uniform" and find_schedule("KARRAS").label == "Karras"
    assert find_schedule("nonsense") is None
    assert split_schedule_suffix("DPM++ 2M SDE Karras")[0] == "DPM++ 2M SDE"
    assert split_schedule_suffix("DPM++ 2M SDE Karras")[1].name == "karras"


@pytest.mark.parametrize(
    ("sampler", "schedule", "reference_class", "options"),
    [
        ("DPM++ 2M", "Karras", "DPMSolverMultistepScheduler",
         {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
        # A1111's Automatic for DPM++ 2M is Karras (its sampler options)
        ("DPM++ 2M", "Automatic", "DPMSolverMultistepScheduler",
         {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}),
        ("DPM++ 2M SDE", "Automatic", "DPMSolverMultistepScheduler",
         {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_exponential_sigmas": True}),
        ("DPM++ 3M SDE", "Exponential", "DPMSolverMultistepScheduler",
         {"algorithm_type": "sde-dpmsolver++", "solver_order": 3, "use_exponential_sigmas": True}),
        ("Euler", "Beta", "EulerDiscreteScheduler", {"use_beta_sigmas": True}),
        ("LMS", "Karras", "LMSDiscreteScheduler", {"use_karras_sigmas": True}),
        ("DPM2", "Automatic", "KDPM2DiscreteScheduler", {"use_karras_sigmas": True}),
        ("Heun", "SGM Uniform", "HeunDiscreteScheduler", {"timestep_spacing": "trailing"}),
        ("UniPC", "Uniform", "UniPCMultistepScheduler", {"timestep_spacing": "linspace"}),
        ("Euler", "DDIM", "EulerDiscreteScheduler", {"timestep_spacing": "leading", "steps_offset": 1}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_schedule_equals_diffusers_own_option(sampler, schedule, reference_class, options, family):
    import diffusers

    ours = built(sampler, schedule, 20, family)
    assert ours.warnings == []
    expected = getattr(diffusers, reference_class).from_config(model_config(family), **options)
    expected.set_timesteps(20)
    assert type(ours.scheduler) is type(expected)
    assert torch.equal(ours.scheduler.timesteps, expected.timesteps)
    assert torch.equal(ours.scheduler.sigmas, expected.sigmas)


def test_karras_is_the_karras_formula():
    """Karras et al. (rho 7) between SD1.5's own sigma_min and sigma_max."""
    sigmas = sd15_training_sigmas()
    low, high, rho, n = sigmas.min(), sigmas.max(), 7.0, 10
    ramp = np.linspace(0, 1, n)
    expected = (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho
    ours = built("DPM++ 2M", "Karras", n).scheduler.sigmas[:-1].numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4)


def test_polyexponential_at_rho_1_is_log_linear():
    """k-diffusion's get_sigmas_polyexponential at rho 1: exp of a straight line from
    log sigma_max to log sigma_min."""
    sigmas = sd15_training_sigmas()
    expected = np.exp(np.linspace(math.log(sigmas.max()), math.log(sigmas.min()), 12))
    ours = built("Euler", "Polyexponential", 12).scheduler.sigmas[:-1].numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4)


def test_kl_optimal_on_euler_is_the_papers_formula():
    sigmas = sd15_training_sigmas()
    n = 8
    a_min, a_max = math.atan(sigmas.min()), math.atan(sigmas.max())
    # A1111's kl_optimal: n + 1 values, the last one sigma_min (not 0)
    expected = [math.tan(i / n * a_min + (1 - i / n) * a_max) for i in range(n + 1)]
    result = built("Euler", "KL Optimal", n)
    assert result.warnings == []
    np.testing.assert_allclose(result.scheduler.sigmas.numpy(), expected, rtol=1e-4)
    assert len(result.scheduler.timesteps) == n


def test_align_your_steps_at_11_steps_is_nvidias_list():
    published = {
        "sd15": [14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029],
        "sdxl": [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029],
    }
    for family, values in published.items():
        ours = built("Euler", "Align Your Steps", 11, family).scheduler.sigmas.numpy()
        np.testing.assert_allclose(ours, [*values, 0.0], rtol=1e-5)
    # other step counts: log-linear between the published points, ends kept
    ours = built("Euler", "Align Your Steps", 20, "sd15").scheduler.sigmas.numpy()
    assert len(ours) == 21 and ours[0] == pytest.approx(14.615) and ours[19] == pytest.approx(0.029)
    assert np.all(np.diff(ours) < 0)


def test_simple_and_normal_follow_a1111s_timesteps():
    # A1111 simple_scheduler: the training sigmas at t = 999 - int(x * 1000 / n)
    n = 20
    simple = built("Euler", "Simple", n).scheduler.timesteps.numpy()
    np.testing.assert_array_equal(simple, [999 - int(x * 1000 / n) for x in range(n)])
    # normal_scheduler: linspace(t(sigma_max), t(sigma_min), n) = linspace(999, 0, n)
    normal = built("Euler", "Normal", n).scheduler.timesteps.numpy()
    np.testing.assert_allclose(normal, np.linspace(999, 0, n), atol=1e-3)
    # ddim_scheduler: t = 1, 1 + 1000 // n, ... from the top
    ddim = built("Euler", "DDIM", n).scheduler.timesteps.numpy()
    np.testing.assert_array_equal(ddim, [1 + (1000 // n) * k for k in range(n)][::-1])


def test_beta_is_the_beta_quantiles():
    from scipy import stats

    sigmas = sd15_training_sigmas()
    low, high, n = sigmas.min(), sigmas.max(), 10
    expected = [low + stats.beta.ppf(x, 0.6, 0.6) * (high - low) for x in 1 - np.linspace(0, 1, n)]
    ours = built("Euler", "Beta", n).scheduler.sigmas[:-1].numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-4)


@pytest.mark.parametrize(
    ("sampler", "schedule", "says"),
    [
        ("DDIM", "Karras", "not available for sampler 'DDIM'"),
        ("PLMS", "Exponential", "PNDMScheduler has no use_exponential_sigmas"),
        ("DPM++ 2M", "KL Optimal", "used Karras, the nearest"),
        ("PLMS", "Align Your Steps", "used the sampler's own schedule"),
    ],
)
def test_a_schedule_a_sampler_cannot_make_is_warned_and_not_faked(sampler, schedule, says):
    import diffusers

    result = built(sampler, schedule, 10)
    assert any(says in w for w in result.warnings), result.warnings
    if "Karras, the nearest" in says:
        reference = diffusers.DPMSolverMultistepScheduler.from_config(
            model_config("sd15"), algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
        )
    else:  # the sampler's own schedule, exactly
        reference = SPECS[sampler].make_scheduler(model_config("sd15"))
    reference.set_timesteps(10)
    assert torch.equal(result.scheduler.timesteps, reference.timesteps)


def test_flow_schedules_and_shift():
    import diffusers

    config = model_config("zimage")
    spec = SPECS["Euler (flow)"]
    karras = build_scheduler(spec, find_schedule("Karras"), config, flow=True, family="zimage", shift=None)
    assert karras.warnings == [] and karras.scheduler.config.use_karras_sigmas is True
    shifted = build_scheduler(spec, find_schedule("Automatic"), config, flow=True, family="zimage", shift=6.0)
    reference = diffusers.FlowMatchEulerDiscreteScheduler.from_config(config, shift=6.0)
    shifted.scheduler.set_timesteps(8)
    reference.set_timesteps(8)
    assert torch.equal(shifted.scheduler.sigmas, reference.sigmas)
    ddim = build_scheduler(spec, find_schedule("DDIM"), config, flow=True, family="zimage", shift=None)
    assert "no flow-matching form" in ddim.warnings[0]


@pytest.mark.parametrize("schedule", ["Karras", "Exponential", "Beta", "KL Optimal", "Align Your Steps"])
@pytest.mark.parametrize("sampler", ["Euler a", "LMS"])
def test_sigma_steppers_take_every_schedule_as_a1111s_do(sampler, schedule):
    """Euler a and LMS step from sigma to sigma (k-diffusion's way), so A1111 runs them
    on any schedule; diffusers' Euler a has no option for it, so the sigmas are given.
    Reference: diffusers' own Euler on that schedule (its option, or custom sigmas)."""
    import diffusers

    ours = built(sampler, schedule, 9)
    assert ours.warnings == []
    assert (
        type(ours.scheduler).__name__
        == SPECS[sampler].make_scheduler(model_config("sd15")).__class__.__name__
    )
    flags = {
        "Karras": "use_karras_sigmas",
        "Exponential": "use_exponential_sigmas",
        "Beta": "use_beta_sigmas",
    }
    if schedule in flags:
        reference = diffusers.EulerDiscreteScheduler.from_config(
            model_config("sd15"), **{flags[schedule]: True}
        )
        reference.set_timesteps(9)
    else:
        reference = built("Euler", schedule, 9).scheduler
    assert torch.equal(ours.scheduler.sigmas, reference.sigmas)
    assert torch.equal(ours.scheduler.timesteps, reference.timesteps)


def nvidia_loglinear_interp(t_steps: list[float], num_steps: int) -> np.ndarray:
    """NVIDIA's ``loglinear_interp`` from the Align Your Steps how-to, as published."""
    xs = np.linspace(0, 1, len(t_steps))
    ys = np.log(t_steps[::-1])
    new_xs = np.linspace(0, 1, num_steps)
    new_ys = np.interp(new_xs, xs, ys)
    return np.exp(new_ys)[::-1].copy()


@pytest.mark.parametrize("steps", [4, 20, 30])
def test_align_your_steps_at_other_step_counts_is_nvidias_interpolation(steps):
    from core.schedules import align_your_steps_sigmas

    sdxl = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
    ours = align_your_steps_sigmas(steps, "sdxl")
    assert len(ours) == steps + 1 and ours[-1] == 0.0
    np.testing.assert_allclose(ours[:-1], nvidia_loglinear_interp(sdxl, steps), rtol=1e-12)


def test_align_your_steps_falls_back_to_sd15s_list_as_a1111_does():
    from core.schedules import align_your_steps_sigmas

    # A1111's get_align_your_steps_sigmas: SDXL's list for SDXL models, SD1.5's otherwise
    assert align_your_steps_sigmas(11, "flux") == align_your_steps_sigmas(11, "sd15")
    assert align_your_steps_sigmas(11, "sd15")[:3] == [14.615, 6.475, 3.861]


def test_kl_optimal_ends_on_sigma_min_in_steps_plus_one_values():
    from core.schedules import kl_optimal_sigmas

    ours = kl_optimal_sigmas(4, 0.03, 14.6)
    # A1111's kl_optimal: tan(t * atan(min) + (1 - t) * atan(max)), t = linspace(0, 1, n + 1)
    expected = [math.tan(t * math.atan(0.03) + (1 - t) * math.atan(14.6)) for t in np.linspace(0, 1, 5)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_the_a1111_schedulers_entries():
    """/sdapi/v1/schedulers as A1111 1.10 lists them (modules/sd_schedulers.py)."""
    entries = {s.name: s.a1111() for s in SCHEDULE_TYPES}
    assert entries["karras"] == {
        "name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0, "need_inner_model": False,
    }  # fmt: skip
    assert entries["sgm_uniform"] == {
        "name": "sgm_uniform", "label": "SGM Uniform", "aliases": ["SGMUniform"], "default_rho": -1.0,
        "need_inner_model": True,
    }  # fmt: skip
    assert entries["polyexponential"]["default_rho"] == 1.0


@pytest.mark.parametrize("name", [None, "", "  ", "auto", "AUTO", "Automatic", " automatic "])
def test_no_schedule_or_auto_is_automatic(name):
    assert find_schedule(name).name == "automatic"


def test_schedule_names_are_found_in_any_case_and_spacing():
    assert find_schedule(" sgm uniform ").name == "sgm_uniform"
    assert find_schedule("sgmuniform").name == "sgm_uniform"
    assert find_schedule("Align Your Steps").name == "align_your_steps"
    assert find_schedule("kl_optimal").name == "kl_optimal"


def test_schedule_choices_lists_every_label():
    from core.schedules import schedule_choices

    assert schedule_choices() == ", ".join(label for _, label in A1111_SCHEDULES)


@pytest.mark.parametrize(
    ("name", "sampler", "schedule"),
    [
        ("DPM++ 2M Karras", "DPM++ 2M", "karras"),
        ("dpm++ 2m karras", "dpm++ 2m", "karras"),
        ("Euler Uniform", "Euler", "uniform"),  # the first schedule after Automatic
        ("DPM++ 2M SGMUniform", "DPM++ 2M", "sgm_uniform"),  # an alias
        ("DPM++ 2M SDE Heun Exponential", "DPM++ 2M SDE Heun", "exponential"),
        ("Euler  Beta", "Euler", "beta"),
    ],
)
def test_a_schedule_folded_into_the_sampler_name_is_split_off(name, sampler, schedule):
    found = split_schedule_suffix(name)
    assert found is not None and found[0] == sampler and found[1].name == schedule


@pytest.mark.parametrize("name", ["DPM++ 2M", "Euler a", "DPM++ 2MKarras", "Karras", "Euler Automatic"])
def test_a_sampler_name_without_a_schedule_is_not_split(name):
    assert split_schedule_suffix(name) is None


def test_a_schedule_on_a_key_the_config_file_never_set_is_not_dropped():
    """diffusers' from_config ignores every key listed in ``_use_default_values``; a
    schedule set on such a key must reach the built scheduler."""
    import diffusers

    from core.schedules import with_config

    base = dict(diffusers.EulerDiscreteScheduler().config)
    assert {"use_karras_sigmas", "timestep_spacing"} <= set(base["_use_default_values"])
    updates = {"use_karras_sigmas": True, "timestep_spacing": "trailing"}
    config = with_config(base, updates)
    scheduler = diffusers.EulerDiscreteScheduler.from_config(config)
    assert scheduler.config.use_karras_sigmas is True and scheduler.config.timestep_spacing == "trailing"
    assert set(config["_use_default_values"]) == set(base["_use_default_values"]) - set(updates)
    assert base["use_karras_sigmas"] is False  # the model's config is left as it was
    plain = with_config({"a": 1}, {"b": 2})
    assert plain == {"a": 1, "b": 2}  # nothing added where the config lists no defaults


def test_not_applied_names_the_options_a_class_lacks():
    import diffusers

    from core.schedules import not_applied

    ddim = diffusers.DDIMScheduler.from_config(model_config("sd15"), timestep_spacing="trailing")
    assert not_applied(ddim, {"use_karras_sigmas": True, "timestep_spacing": "trailing"}) == [
        "use_karras_sigmas"
    ]
    # a flag DDIM does not have, switched off, is what DDIM does anyway
    assert not_applied(ddim, {"use_karras_sigmas": False, "use_beta_sigmas": None}) == []
    assert not_applied(ddim, {"timestep_spacing": "linspace", "steps_offset": 1}) == ["timestep_spacing"]


def test_model_sigma_range_is_the_training_schedules():
    import diffusers

    from core.schedules import model_sigma_range

    low, high = model_sigma_range(diffusers.EulerDiscreteScheduler.from_config(model_config("sd15")))
    sigmas = sd15_training_sigmas()
    # alphas_cumprod is float32 in diffusers: 1e-4, as the other sigma checks here
    assert low == pytest.approx(sigmas.min(), rel=1e-4) and high == pytest.approx(sigmas.max(), rel=1e-4)


def test_which_classes_take_custom_sigmas():
    import diffusers

    from core.schedules import takes_custom_sigmas

    config = model_config("sd15")
    assert takes_custom_sigmas(diffusers.EulerDiscreteScheduler.from_config(config))
    assert not takes_custom_sigmas(diffusers.DDIMScheduler.from_config(config))
    # UniPC's set_timesteps has sigmas=, but only for flow models
    assert not takes_custom_sigmas(diffusers.UniPCMultistepScheduler.from_config(config))


def test_the_warning_names_the_schedule_the_sampler_and_the_missing_option():
    result = built("DDIM", "Karras", 10)
    assert result.warnings == [
        "Schedule type 'Karras' is not available for sampler 'DDIM' (DDIMScheduler has no "
        "use_karras_sigmas); used the sampler's own schedule"
    ]


def test_a_fixed_shift_turns_dynamic_shifting_off():
    """A flow model whose config shifts by resolution (Flux's scheduler ships
    ``use_dynamic_shifting: true``): a shift given in the request replaces it, as
    diffusers' scheduler does when built with that shift and dynamic shifting off."""
    import diffusers

    config = {**model_config("zimage"), "use_dynamic_shifting": True}
    ours = build_scheduler(
        SPECS["Euler (flow)"], find_schedule("Automatic"), config, flow=True, family="zimage", shift=3.0
    )
    reference = diffusers.FlowMatchEulerDiscreteScheduler.from_config(
        config, shift=3.0, use_dynamic_shifting=False
    )
    ours.scheduler.set_timesteps(8)  # no mu needed: not shifted by resolution
    reference.set_timesteps(8)
    assert ours.warnings == []
    assert torch.equal(ours.scheduler.sigmas, reference.sigmas)


def test_an_extensions_flow_sampler_without_the_option_is_warned():
    """A flow sampler registered by an extension on a class without Karras sigmas
    (diffusers' FlowMatchHeun): the schedule type is not faked, and the result says so."""
    import diffusers

    from plugin_api.types import SamplerSpec

    spec = SamplerSpec("Heun (flow)", diffusers.FlowMatchHeunDiscreteScheduler.from_config, flow=True)
    result = build_scheduler(
        spec, find_schedule("Karras"), model_config("zimage"), flow=True, family="zimage", shift=None
    )
    assert result.warnings == [
        "FlowMatchHeunDiscreteScheduler has no use_karras_sigmas; 'Karras' not applied"
    ]


def test_align_your_steps_on_euler_a_uses_the_models_family():
    sdxl = [14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029]
    ours = built("Euler a", "Align Your Steps", 11, "sdxl").scheduler.sigmas.numpy()
    np.testing.assert_allclose(ours, [*sdxl, 0.0], rtol=1e-5)


def test_the_nearest_schedule_warning_names_the_class_and_sampler():
    assert built("DPM++ 2M", "KL Optimal", 10).warnings == [
        "Schedule type 'KL Optimal' needs custom sigmas, which DPMSolverMultistepScheduler (sampler "
        "'DPM++ 2M') does not take; used Karras, the nearest"
    ]


def test_the_warning_lists_every_option_the_class_lacks():
    """An extension's flow sampler on a class with none of the options a schedule type and
    a fixed shift set: the warning names both, comma-separated (not just the first)."""
    from diffusers.configuration_utils import ConfigMixin, register_to_config

    from plugin_api.types import SamplerSpec

    class Bare(ConfigMixin):  # an extension's own scheduler: no sigma flags, no shift
        config_name = "scheduler_config.json"

        @register_to_config
        def __init__(self, num_train_timesteps: int = 1000) -> None:
            pass

    spec = SamplerSpec("Bare (flow)", Bare.from_config, flow=True)
    result = build_scheduler(
        spec, find_schedule("Karras"), model_config("zimage"), flow=True, family="zimage", shift=3.0
    )
    assert result.warnings == ["Bare has no use_karras_sigmas, shift; 'Karras' not applied"]
    # the same class as a noise-prediction sampler, on A1111's "DDIM" schedule type
    spec = SamplerSpec("Bare", Bare.from_config)
    result = build_scheduler(
        spec, find_schedule("DDIM"), model_config("sd15"), flow=False, family="sd15", shift=None
    )
    assert result.warnings == [
        "Schedule type 'DDIM' is not available for sampler 'Bare' (Bare has no timestep_spacing, "
        "steps_offset); used the sampler's own schedule"
    ]
