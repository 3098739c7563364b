"""Validation's rules one by one (core/validation.py), with the exact messages a client
sees, the bounds on both sides, and what a valid request comes back as.

tests/test_validation.py checks that each bad field is named before a model loads; this
file pins what the mutation run over core/validation.py (docs/mutation.md) found no test
checking: the message texts, inclusive bounds, the copy the request is validated on, the
model's own sizes and steps, distilled guidance, and how sampler names come back. The
models are tiny ones of every family whose rules differ (SD1.5, Z-Image, FLUX.1-dev and
-schnell, Qwen-Image) and the shipped demo model (its easel.json sizes); nothing is loaded.
"""

from __future__ import annotations

import math

import pytest
from PIL import Image

from core.errors import RequestError
from core.families import get_family
from core.models.sizes import size_hint
from core.schedules import schedule_choices
from plugin_api import GenerationRequest
from plugin_api.images import MAX_IMAGE_SIDE
from tests.conftest import build_once
from tests.flux_files import write_flux_folder
from tests.qwen_image_files import make_tiny_qwen_image

FLUX = get_family("flux")
QWEN = get_family("qwen_image")


@pytest.fixture(scope="module")
def engine(tiny_root, tiny_sd15_dir, tiny_zimage_dir, tmp_path_factory):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    built = tiny_root / "validation"
    dev, schnell, qwen = built / "tiny-flux-dev", built / "tiny-flux-schnell", built / "tiny-qwen-image"
    build_once(dev, lambda: (write_flux_folder(dev), dev)[1])
    build_once(schnell, lambda: (write_flux_folder(schnell, guidance=False), schnell)[1])
    build_once(qwen, lambda: make_tiny_qwen_image(qwen))
    models = tmp_path_factory.mktemp("validation-models")
    checkpoints = models / "Stable-diffusion"
    checkpoints.mkdir()
    for folder in (tiny_sd15_dir, tiny_zimage_dir, dev, schnell, qwen):
        (checkpoints / folder.name).symlink_to(folder.resolve(), target_is_directory=True)
    settings = Settings(
        models_dir=models, data_dir=tmp_path_factory.mktemp("data"), safe_mode=True, device="cpu"
    )
    host = Host(settings).start()
    yield Engine(host)
    host.stop()


def checked(engine, **fields):
    """The validated request and its ValidatedRequest (warnings, sampler name)."""
    values = {"prompt": "a red circle", "model": "tiny-sd15", "width": 64, "height": 64, "steps": 4, **fields}
    return engine._validate(GenerationRequest(**values))


def refused(engine, **fields) -> RequestError:
    with pytest.raises(RequestError) as error:
        checked(engine, **fields)
    return error.value


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"steps": 151}, "steps", "must be between 1 and 150, got 151"),
        ({"steps": 0}, "steps", "must be between 1 and 150, got 0"),
        ({"steps": 2.5}, "steps", "must be a whole number, got 2.5"),
        ({"steps": "4"}, "steps", "must be a whole number, got '4'"),
        ({"cfg_scale": 30.5}, "cfg_scale", "must be between 0 and 30, got 30.5"),
        ({"cfg_scale": -0.5}, "cfg_scale", "must be between 0 and 30, got -0.5"),
        ({"cfg_scale": "7"}, "cfg_scale", "must be a number, got '7'"),
        ({"cfg_scale": math.nan}, "cfg_scale", "must be a finite number, got nan"),
        (
            {"late_cfg_scale": 2.0, "late_cfg_start": 1.5},
            "late_cfg_start",
            "must be between 0 and 1, got 1.5",
        ),
        ({"width": 65}, "width", "must be a multiple of 8 for this model, got 65"),
        ({"model": "tiny-zimage", "width": 72}, "width", "must be a multiple of 16 for this model, got 72"),
        ({"prompt": 3}, "prompt", "must be text, got int"),
        ({"negative_prompt": ["x"]}, "negative_prompt", "must be text, got list"),
        ({"model": 3}, "model", "must be a model name, got 3"),
        ({"sampler": "  "}, "sampler", "must be a sampler name, got '  '"),
        ({"sampler": 3}, "sampler", "must be a sampler name, got 3"),
        ({"scheduler": 3}, "scheduler", "must be a schedule type name, got 3"),
        ({"init_image": "x.png"}, "init_image", "must be an image, got str"),
        ({"model": "tiny-qwen-image", "steps": 1}, "steps", "Qwen-Image needs at least 2 steps, got 1"),
        ({"model": "tiny-qwen-image", "steps": 0}, "steps", "must be between 1 and 150, got 0"),
    ],
)
def test_a_refusal_names_the_field_and_says_why(engine, fields, field, message):
    error = refused(engine, **fields)
    assert (error.field, error.message) == (field, message)
    assert str(error) == f"{field}: {message}"


def test_unknown_names_list_the_choices(engine):
    error = refused(engine, model="no-such-model")
    assert error.field == "model"
    assert error.message.startswith("unknown model 'no-such-model'; available: ")
    assert "tiny-sd15" in error.message and "tiny-flux-dev" in error.message
    error = refused(engine, scheduler="Karras-ish")
    assert error.message == f"unknown schedule type 'Karras-ish'; choose one of: {schedule_choices()}"
    # a flow model lists the flow samplers only, by the names users pick
    error = refused(engine, model="tiny-flux-dev", sampler="nope")
    assert error.message == "unknown sampler 'nope' for FLUX.1; choose one of: Euler, Euler a"


def test_bounds_are_inclusive(engine):
    request = checked(engine, steps=150, cfg_scale=30.0, late_cfg_scale=0.0, late_cfg_start=1.0).request
    assert (request.steps, request.cfg_scale, request.late_cfg_scale, request.late_cfg_start) == (
        150,
        30.0,
        0.0,
        1.0,
    )
    request = checked(engine, steps=1, cfg_scale=0.0, late_cfg_scale=30.0, late_cfg_start=0.0).request
    assert (request.steps, request.cfg_scale, request.late_cfg_scale, request.late_cfg_start) == (
        1,
        0.0,
        30.0,
        0.0,
    )
    assert checked(engine, steps=3.0).request.steps == 3  # a whole float is a whole number
    assert checked(engine, model="tiny-qwen-image", steps=2).request.steps == 2


def test_init_image_sizes_are_checked_on_both_sides(engine):
    def image(width, height):
        return Image.new("RGB", (width, height))

    assert checked(engine, init_image=image(8, 8)).request.init_image.size == (8, 8)
    for small in ((7, 8), (8, 7)):
        error = refused(engine, init_image=image(*small))
        assert error.message == f"image is too small ({small[0]}x{small[1]})"
    assert checked(engine, init_image=image(MAX_IMAGE_SIDE, 8)).request.init_image is not None
    assert checked(engine, init_image=image(8, MAX_IMAGE_SIDE)).request.init_image is not None
    for large in ((MAX_IMAGE_SIDE + 1, 8), (8, MAX_IMAGE_SIDE + 1)):
        error = refused(engine, init_image=image(*large))
        assert error.field == "init_image"
        assert error.message == (
            f"image is {large[0]}x{large[1]}; the limit is {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
        )


def test_the_request_is_validated_on_a_copy_with_its_own_fields(engine):
    extension_args = {"tint": {"args": [1]}}
    original = GenerationRequest(
        prompt="a red circle", negative_prompt=None, model="tiny-sd15", width=64, height=64,
        extension_args=extension_args,
    )  # fmt: skip
    result = engine._validate(original)
    assert result.request.prompt == "a red circle"
    assert result.request.negative_prompt == ""  # None: no negative prompt
    assert result.request.extension_args == {"tint": {"args": [1]}}
    assert result.request.extension_args is not extension_args  # hooks may change theirs freely
    assert original.negative_prompt is None and original.extension_args is extension_args
    assert result.model_name == result.request.model == "tiny-sd15"
    # the model by its A1111 title ("name [hash]") comes back by its name
    title = f"tiny-sd15 [{engine.models.info('tiny-sd15').hash}]"
    assert checked(engine, model=title).request.model == "tiny-sd15"


def test_a_plain_request_has_no_warnings_and_late_cfg_off_means_no_start(engine):
    result = checked(engine)
    assert result.warnings == []
    assert result.request.late_cfg_scale is None and result.request.late_cfg_start is None
    result = checked(engine, late_cfg_start=0.5)  # a start without a late scale: one scale throughout
    assert result.request.late_cfg_start is None


def test_the_models_own_size_and_the_hint_far_above_it(engine):
    demo = engine.models.info("easel-demo")  # the shipped demo model: easel.json sizes 128x128
    result = engine._validate(GenerationRequest(prompt="a red circle", model="easel-demo"))
    assert (result.request.width, result.request.height) == (128, 128)
    assert result.warnings == []
    # ... and its easel.json's recommendation for every field the request leaves empty
    request = result.request
    assert (request.sampler, request.steps, request.cfg_scale) == ("Euler", 20, 4.0)
    assert (request.late_cfg_scale, request.late_cfg_start) == (1.5, 0.3)
    given = engine._validate(
        GenerationRequest(prompt="x", model="easel-demo", steps=7, cfg_scale=6.0, late_cfg_scale=2.0)
    ).request
    assert (given.steps, given.cfg_scale, given.late_cfg_scale, given.late_cfg_start) == (7, 6.0, 2.0, 0.3)
    # a family's defaults per variant: FLUX.1-schnell runs 4 steps, -dev its family's
    schnell = engine._validate(GenerationRequest(prompt="x", model="tiny-flux-schnell", width=64, height=64))
    assert (schnell.request.steps, schnell.request.cfg_scale) == (4, 1.0)
    dev = engine._validate(GenerationRequest(prompt="x", model="tiny-flux-dev", width=64, height=64))
    assert dev.request.steps == FLUX.defaults.steps != 4
    result = engine._validate(
        GenerationRequest(prompt="a red circle", model="easel-demo", width=512, height=512)
    )
    assert result.warnings == [size_hint(512, 512, 128)]
    assert demo.sizes and result.warnings[0].startswith(
        "512x512 is far above this model's native size (128x128)"
    )
    # a model whose files give its size (the tiny SD1.5's config: 64 px)
    assert checked(engine, width=128, height=128).warnings == []
    assert checked(engine, width=256, height=256).warnings == [size_hint(256, 256, 64)]
    # the family's default where the model names no size: Z-Image's 1024
    result = engine._validate(GenerationRequest(prompt="x", model="tiny-zimage", steps=2))
    assert (result.request.width, result.request.height) == (1024, 1024)


def test_distilled_guidance_only_where_the_model_takes_it(engine):
    dev = checked(engine, model="tiny-flux-dev")
    assert dev.request.distilled_cfg_scale == FLUX.distilled_guidance_default("flux-dev") == 3.5
    assert dev.warnings == []
    assert checked(engine, model="tiny-flux-dev", distilled_cfg_scale=5).request.distilled_cfg_scale == 5.0
    error = refused(engine, model="tiny-flux-dev", distilled_cfg_scale=31)
    assert (error.field, error.message) == ("distilled_cfg_scale", "must be between 0 and 30, got 31")
    for model, label in (("tiny-flux-schnell", "FLUX.1"), ("tiny-sd15", "Stable Diffusion 1.x / 2.x")):
        result = checked(engine, model=model, distilled_cfg_scale=3.5)
        assert result.request.distilled_cfg_scale is None
        assert result.warnings == [
            f"Distilled CFG Scale applies to guidance-distilled models (FLUX.1-dev); {label} ignores it"
        ]
    ignored = (
        "FLUX.1 ignores the negative prompt at CFG scale 1 (its guidance is distilled); set CFG scale "
        "above 1 for true CFG with the negative prompt (twice the time per step)"
    )
    assert checked(engine, model="tiny-flux-dev", negative_prompt="blurry", cfg_scale=1.0).warnings == [
        ignored
    ]
    assert checked(engine, model="tiny-flux-dev", negative_prompt="blurry", cfg_scale=2.0).warnings == []
    assert checked(engine, model="tiny-flux-dev", negative_prompt=" ", cfg_scale=1.0).warnings == []
    assert checked(engine, model="tiny-sd15", negative_prompt="blurry", cfg_scale=1.0).warnings == []
    assert checked(engine, model="tiny-qwen-image", negative_prompt="blurry", cfg_scale=1.0).warnings == []


def test_sampler_and_schedule_names_come_back_canonical(engine):
    result = checked(engine, sampler="k_euler_a", scheduler="karras")
    assert (result.request.sampler, result.sampler_name, result.request.scheduler) == (
        "Euler a",
        "Euler a",
        "Karras",
    )
    assert result.warnings == []
    # A1111 < 1.9's "<sampler> <schedule>" names
    result = checked(engine, sampler="DPM++ 2M Karras")
    assert (result.request.sampler, result.request.scheduler) == ("DPM++ 2M", "Karras")
    # a flow model: the flow form, shown without "(flow)"
    result = checked(engine, model="tiny-zimage", width=64, height=64, sampler="euler")
    assert (result.request.sampler, result.sampler_name, result.sampler.name) == (
        "Euler",
        "Euler",
        "Euler (flow)",
    )
    assert result.warnings == []
    # a name with no flow form runs Euler (flow); the request keeps the asked name, so
    # validating the stored request again gives the same warning again
    result = checked(engine, model="tiny-zimage", width=64, height=64, sampler="DPM++ 2M")
    assert (result.request.sampler, result.sampler_name) == ("DPM++ 2M", "Euler")
    warning = "Sampler 'DPM++ 2M' has no flow-matching form for this model; sampled with 'Euler'"
    assert result.warnings == [warning]
    again = engine._validate(result.request)
    assert again.warnings == [warning] and again.request.sampler == "DPM++ 2M"
    # the samplers diffusers has no solver for run the nearest, and say so
    result = checked(engine, sampler="Restart")
    assert result.request.sampler == "Restart" and result.warnings == [result.sampler.note]
    assert QWEN.defaults.min_steps == 2 and get_family("sd15").defaults.min_steps == 1


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"model": "tiny-zimage", "shift": 0.005}, "shift", "must be between 0.01 and 100, got 0.005"),
        ({"model": "tiny-zimage", "shift": 100.5}, "shift", "must be between 0.01 and 100, got 100.5"),
        ({"output_format": "gif"}, "output_format", "must be one of png, jpeg, jpg, webp, got 'gif'"),
        ({"output_format": 3}, "output_format", "must be one of png, jpeg, jpg, webp, got 3"),
        (
            {"init_image": "GREY", "denoising_strength": 1.5},
            "denoising_strength",
            "must be between 0 and 1, got 1.5",
        ),
        ({"mask": "GREY"}, "mask", "a mask needs an init_image (inpainting)"),
        ({"init_image": "GREY", "mask": "x.png"}, "mask", "must be an image, got str"),
        ({"init_image": "GREY", "mask": "SMALL"}, "mask", "image is too small (4x4)"),
        (
            {"init_image": "GREY", "mask": "GREY", "mask_blur": 65},
            "mask_blur",
            "must be between 0 and 64, got 65",
        ),
        (
            {"init_image": "GREY", "mask": "GREY", "inpaint_full_res_padding": 257},
            "inpaint_full_res_padding",
            "must be between 0 and 256, got 257",
        ),
        (
            {"init_image": "GREY", "mask": "GREY", "inpainting_fill": -1},
            "inpainting_fill",
            "must be between 0 and 3, got -1",
        ),
        (
            {"enable_hr": True, "denoising_strength": 1.5},
            "denoising_strength",
            "must be between 0 and 1, got 1.5",
        ),
        ({"cache": "deepcache:x"}, "cache", 'expected "METHOD" or "METHOD:THRESHOLD", got \'deepcache:x\''),
    ],
)
def test_image_output_and_pass_options_are_refused_with_the_field(engine, fields, field, message):
    images = {"GREY": Image.new("RGB", (64, 64), (128, 128, 128)), "SMALL": Image.new("L", (4, 4))}
    values = {k: images.get(v, v) if isinstance(v, str) else v for k, v in fields.items()}
    error = refused(engine, **values)
    assert (error.field, error.message) == (field, message)


def test_image_output_and_pass_options_come_back_checked(engine):
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    inpaint = {"init_image": grey, "mask": grey}
    edges = checked(
        engine, **inpaint, mask_blur=0, inpaint_full_res_padding=0, inpainting_fill=0, denoising_strength=0.0
    )
    request = edges.request
    assert (request.mask_blur, request.inpaint_full_res_padding, request.inpainting_fill) == (0, 0, 0)
    assert request.denoising_strength == 0.0
    request = checked(
        engine, **inpaint, mask_blur=64, inpaint_full_res_padding=256, inpainting_fill=3
    ).request
    assert (request.mask_blur, request.inpaint_full_res_padding, request.inpainting_fill) == (64, 256, 3)
    assert checked(engine, init_image=grey, denoising_strength=1.0).request.denoising_strength == 1.0
    # formats: A1111's names, any case; "jpg" is JPEG; none asked: PNG
    for asked, kept in ((None, "png"), ("JPG", "jpeg"), ("jpg", "jpeg"), ("WebP", "webp"), ("PNG", "png")):
        assert checked(engine, output_format=asked).request.output_format == kept
    # shift: flow models only, bounds inclusive
    assert checked(engine, model="tiny-zimage", shift=0.01).request.shift == 0.01
    assert checked(engine, model="tiny-zimage", shift=100).request.shift == 100.0
    sd = checked(engine, shift=3.0)
    assert sd.request.shift is None
    assert sd.warnings == [
        "shift applies to flow-matching models only; Stable Diffusion 1.x / 2.x ignores it"
    ]
    # hires fix: a plan, its strength checked; none without enable_hr
    hires = checked(engine, enable_hr=True, hr_scale=2.0, hr_upscaler="Latent", denoising_strength=0.6)
    assert (hires.hires.width, hires.hires.height, hires.hires.upscaler) == (128, 128, "Latent")
    assert hires.request.denoising_strength == 0.6
    # an image upscaler is looked up among the host's registered ones, by any case, and comes
    # back under its registered name with its spec (A1111's "Lanczos")
    lanczos = checked(engine, enable_hr=True, hr_scale=2.0, hr_upscaler="lanczos").hires
    assert (lanczos.upscaler, lanczos.spec.name, lanczos.latent_mode) == ("Lanczos", "Lanczos", None)
    assert checked(engine, hr_scale=2.0).hires is None
    # the step cache in its canonical form
    cached = checked(engine, cache="deepcache:3")
    assert cached.request.cache == {"method": "deepcache", "threshold": 3}
    assert cached.cache is not None and cached.cache.as_request() == cached.request.cache
    assert checked(engine).request.cache is None and checked(engine).cache is None
    # what the engine runs: the sampler and schedule specs themselves
    plain = checked(engine, sampler="Euler", scheduler="Karras")
    assert plain.sampler.name == "Euler" and plain.schedule.label == "Karras"
