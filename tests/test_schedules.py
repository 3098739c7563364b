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
