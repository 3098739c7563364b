"""The bundled ControlNet extension on the tiny SD1.5 and SDXL models: real ControlNets
(diffusers folder and single file), real preprocessors, the real engine loop.

What a user relies on: a unit changes the image, weight 0 gives exactly the image without
ControlNet, several units run at once, start/end choose the conditioned steps, and every
bad input (wrong family, missing annotator weights, unreadable image...) is a clear
RequestError after which the next request works."""

from __future__ import annotations

import base64
import io
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.config import BUNDLED_EXTENSION_NAMES
from core.engine import Engine
from core.errors import RequestError
from extensions.controlnet import STATE
from extensions.controlnet.preprocessors import BUILTIN
from extensions.controlnet.units import fit_image, parse_units
from plugin_api.types import GenerationRequest
from tests.controlnet_files import build_models_folder


@pytest.fixture(scope="module")
def cn_models(tmp_path_factory, tiny_sd15_dir, tiny_sdxl_dir):
    return build_models_folder(tmp_path_factory.mktemp("cn-models"), tiny_sd15_dir, tiny_sdxl_dir)


@pytest.fixture(scope="module")
def engine(make_host, cn_models):
    host = make_host(models_dir=cn_models)
    assert host.extensions.records["controlnet"].state == "loaded", host.extensions.records[
        "controlnet"
    ].error
    return Engine(host)


def circle_image(size: int = 64, cx: float = 0.3) -> Image.Image:
    image = Image.new("RGB", (size, size), (20, 20, 120))
    draw = ImageDraw.Draw(image)
    r = size * 0.2
    draw.ellipse([cx * size - r, size / 2 - r, cx * size + r, size / 2 + r], fill=(240, 200, 30))
    return image


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def unit(**overrides):
    values = {"image": circle_image(), "module": "canny", "model": "tiny-sd15-cn", "weight": 1.0}
    values.update(overrides)
    return values


def generate(engine, units=None, model="tiny-sd15", steps=2, **extra):
    args = {"controlnet": {"units": units}} if units is not None else {}
    request = GenerationRequest(
        prompt="a yellow circle",
        seed=11,
        steps=steps,
        width=64,
        height=64,
        model=model,
        save_images=False,
        extension_args=args,
        **extra,
    )
    result = engine.generate(request)
    return np.asarray(result.images[0]), result


@pytest.fixture(scope="module")
def base(engine):
    image, result = generate(engine)
    assert result.warnings == []
    return image


def test_listing_names_families_formats_and_problems(engine):
    infos = {i.name: i for i in STATE.library.scan()}
    assert {"tiny-sd15-cn", "tiny-sd15-cn-file", "tiny-sdxl-cn", "broken", "evil"} <= set(infos)
    assert (infos["tiny-sd15-cn"].family, infos["tiny-sd15-cn"].format) == ("sd15", "diffusers")
    assert (infos["tiny-sd15-cn-file"].family, infos["tiny-sd15-cn-file"].format) == ("sd15", "single-file")
    assert (infos["tiny-sd15-cn-ldm"].family, infos["tiny-sd15-cn-ldm"].format) == ("sd15", "single-file")
    assert infos["tiny-sdxl-cn"].family == "sdxl"
    assert "broken.safetensors" in infos["broken"].problem
    assert "pickle" in infos["evil"].problem and infos["evil"].format == "pickle"
    # A1111 clients send "name [hash]"
    assert STATE.library.find("tiny-sd15-cn [0123abcd]").name == "tiny-sd15-cn"


def test_control_changes_the_image_and_weight_zero_is_exact(engine, base):
    image, result = generate(engine, [unit()])
    assert result.warnings == []
    assert np.abs(image.astype(int) - base.astype(int)).mean() > 1.0
    assert "ControlNet 0: " in result.infotexts[0] and "Model: tiny-sd15-cn" in result.infotexts[0]
    zero, result = generate(engine, [unit(weight=0.0)])
    assert np.array_equal(zero, base) and "ControlNet 0" not in result.infotexts[0]
    disabled, _ = generate(engine, [unit(enabled=False)])
    assert np.array_equal(disabled, base)
    # the single files (diffusers' and the original key layout) hold the same weights
    for name in ("tiny-sd15-cn-file", "tiny-sd15-cn-ldm"):
        single, result = generate(engine, [unit(model=name)])
        assert result.warnings == []
        assert np.array_equal(single, image), name


def test_two_units_run_together(engine, base):
    first, _ = generate(engine, [unit()])
    second, _ = generate(engine, [unit(model="tiny-sd15-cn-b", module="binary", resize_mode="Just Resize")])
    both, result = generate(
        engine, [unit(), unit(model="tiny-sd15-cn-b", module="binary", resize_mode="Just Resize")]
    )
    assert "ControlNet 0" in result.infotexts[0] and "ControlNet 1" in result.infotexts[0]
    for other in (base, first, second):
        assert not np.array_equal(both, other)


def calls_per_model(engine, units, steps=4):
    """Run a generation and count each loaded ControlNet's forward calls (torch hooks)."""
    generate(engine, units, steps=steps)  # loads the models into the warm cache
    counts: dict[str, int] = {}
    handles = []
    for key, module in STATE.library._loaded.items():
        name = key[0].rsplit("/", 1)[-1]
        counts[name] = 0

        def count(_module, _args, name=name):
            counts[name] += 1

        handles.append(module.register_forward_pre_hook(count))
    try:
        image, _ = generate(engine, units, steps=steps)
    finally:
        for handle in handles:
            handle.remove()
    return counts, image


def test_hires_pass_gets_the_map_at_its_own_size(engine):
    """The hires pass's latents are larger: the map is resized to them (before, the
    ControlNet failed there and the pass ran without it, with a warning)."""

    def hires(weight):
        _, result = generate(
            engine, [unit(weight=weight)], enable_hr=True, hr_scale=1.5, denoising_strength=0.6
        )
        return result

    with_unit, without = hires(1.0), hires(0.0)
    assert with_unit.warnings == [] and with_unit.images[0].size == (96, 96)
    first, second = (np.asarray(r.images[0]).astype(int) for r in (with_unit, without))
    assert np.abs(first - second).mean() > 1.0


def test_start_and_end_choose_the_conditioned_steps(engine):
    # 4 steps: fractions 0, 0.25, 0.5, 0.75 (one batched CFG call per step)
    counts, early = calls_per_model(engine, [unit(guidance_start=0.0, guidance_end=0.3)])
    assert counts["tiny-sd15-cn"] == 2
    counts, late = calls_per_model(
        engine, [unit(guidance_start=0.5, guidance_end=1.0), unit(model="tiny-sd15-cn-b", start=0.0, end=0.0)]
    )
    assert counts["tiny-sd15-cn"] == 2 and counts["tiny-sd15-cn-b"] == 1
    counts, full = calls_per_model(engine, [unit()])
    assert counts["tiny-sd15-cn"] == 4
    assert not np.array_equal(early, full) and not np.array_equal(early, late)


def test_sdxl_controlnet_on_the_sdxl_model(engine):
    plain, _ = generate(engine, model="tiny-sdxl")
    image, result = generate(engine, [unit(model="tiny-sdxl-cn", resize_mode=2)], model="tiny-sdxl")
    assert result.warnings == []
    assert not np.array_equal(image, plain)


def test_clear_errors_and_the_next_request_works(engine, base):
    cases = [
        (unit(model="tiny-sdxl-cn"), "units.0.model", "is a sdxl ControlNet"),
        (unit(model="no-such-cn"), "units.0.model", "no ControlNet named 'no-such-cn'"),
        (unit(model="broken"), "units.0.model", "broken.safetensors"),
        (unit(model="evil"), "units.0.model", "pickle"),
        (unit(module="depth_midas"), "units.0.module", "dpt_hybrid-midas-501f0c75.pt"),
        (unit(module="no_such_pre"), "units.0.module", "unknown preprocessor 'no_such_pre'"),
        (unit(image="bm90IGFuIGltYWdl"), "units.0.image", "not an image Pillow can read"),
        (unit(image=None), "units.0.input_image", "no input image is given"),
        (unit(weight=5), "units.0.weight", "from 0 to 2"),
        (unit(start=0.8, end=0.2), "units.0.start", "after end"),
        (unit(resize_mode="sideways"), "units.0.resize_mode", "unknown resize mode"),
    ]
    for bad, field, message in cases:
        with pytest.raises(RequestError) as error:
            generate(engine, [bad])
        assert error.value.field.endswith(field), (field, error.value.field)
        assert message in str(error.value), (message, str(error.value))
    # the missing annotator file is named with the folder it belongs in
    with pytest.raises(RequestError) as error:
        generate(engine, [unit(module="openpose")])
    assert "body_pose_model.pth" in str(error.value) and "annotators" in str(error.value)
    image, result = generate(engine)
    assert np.array_equal(image, base) and result.warnings == []


def test_a1111_shape_parses_aliases():
    units = parse_units(
        {
            "args": [
                {"enabled": False, "model": "x", "input_image": b64(circle_image())},
                {"model": "None", "input_image": b64(circle_image())},
                {
                    "image": {"image": "data:image/png;base64," + b64(circle_image()), "mask": None},
                    "module": "invert (from white bg & black line)",
                    "model": "tiny-sd15-cn [abc123]",
                    "weight": 0.5,
                    "guidance_start": 0.1,
                    "guidance_end": 0.9,
                    "resize_mode": 0,
                    "threshold_a": -1,
                    "processor_res": -1,
                },
            ]
        }
    )
    assert len(units) == 1
    (u,) = units
    assert (u.index, u.model, u.weight, u.start, u.end, u.resize_mode) == (
        2,
        "tiny-sd15-cn [abc123]",
        0.5,
        0.1,
        0.9,
        "just_resize",
    )
    assert u.image.size == (64, 64) and u.threshold_a is None and u.processor_res == 512
    assert u.field == "alwayson_scripts.controlnet.args.2"


def test_resize_modes_keep_the_circle_where_it_belongs():
    wide = Image.new("RGB", (128, 64), (0, 0, 0))
    ImageDraw.Draw(wide).rectangle([0, 0, 31, 63], fill=(255, 255, 255))  # left quarter white
    stretched = np.asarray(fit_image(wide, 64, 64, "just_resize"))
    cropped = np.asarray(fit_image(wide, 64, 64, "crop"))
    filled = np.asarray(fit_image(wide, 64, 64, "fill"))
    assert stretched[:, :14].mean() > 200  # the left quarter stays a quarter
    assert cropped.mean() < 5  # the centre crop drops the white quarter
    assert filled[:16].mean() < 5 and filled[24:40, :6].mean() > 200  # letterboxed, left band white


def test_builtin_preprocessors_make_maps():
    image = circle_image(96)
    for name, process in BUILTIN.items():
        out = process(image)
        assert out.size == image.size and out.mode == "RGB", name
    edges = np.asarray(BUILTIN["canny"](image))[:, :, 0]
    assert set(np.unique(edges)) == {0, 255} and 0.01 < (edges > 0).mean() < 0.2
    inverted = np.asarray(BUILTIN["invert"](image))
    assert np.array_equal(inverted, 255 - np.asarray(image))
    assert np.array_equal(np.asarray(BUILTIN["shuffle"](image)), np.asarray(BUILTIN["shuffle"](image)))


def test_an_annotator_works_once_its_weights_are_present(engine, cn_models):
    from controlnet_aux.hed import ControlNetHED_Apache2

    folder = cn_models / "ControlNet" / "annotators"
    spec = engine.host.preprocessors.get("softedge_hed")
    with pytest.raises(Exception, match=r"ControlNetHED\.pth"):
        spec.process(circle_image())
    torch.manual_seed(0)
    torch.save(ControlNetHED_Apache2().state_dict(), folder / "ControlNetHED.pth")
    try:
        out = spec.process(circle_image(), resolution=64)
        assert out.mode == "RGB" and min(out.size) == 64
        _, result = generate(engine, [unit(module="softedge_hed")])
        assert result.warnings == []
    finally:
        (folder / "ControlNetHED.pth").unlink()


OTHER_EXTENSION = textwrap.dedent(
    """
    from PIL import ImageOps
    from plugin_api import InvalidRequest, PreprocessorSpec, hookimpl

    @hookimpl
    def register_preprocessors(register):
        register(PreprocessorSpec(name="posterize_2", process=lambda image, **_: ImageOps.posterize(image, 1)))

    @hookimpl
    def validate_request(request, family):
        if "forbidden" in request.prompt:
            raise InvalidRequest("prompt", "the word 'forbidden' is refused by poster_ext")
    """
)


def test_other_extensions_add_preprocessors_and_refuse_requests(make_host, cn_models, tmp_path):
    (tmp_path / "poster_ext.py").write_text(OTHER_EXTENSION)
    others = set(BUNDLED_EXTENSION_NAMES) - {"controlnet"}
    host = make_host(
        models_dir=cn_models, extension_dirs=[tmp_path], safe_mode=False, disabled_extensions=others
    )
    engine = Engine(host)
    assert "posterize_2" in host.preprocessors and "canny" in host.preprocessors
    _, result = generate(engine, [unit(module="posterize_2")])
    assert result.warnings == [] and "Module: posterize_2" in result.infotexts[0]
    with pytest.raises(RequestError) as error:
        engine.validate(GenerationRequest(prompt="forbidden fruit", model="tiny-sd15"))
    assert error.value.field == "prompt" and "poster_ext" in str(error.value)


def section_values(*units: dict) -> list:
    """The ControlNet accordion's widget values (section.UNIT_KEYS per unit), as a user
    leaves them: the given units first, the rest at their initial values (disabled)."""
    from extensions.controlnet.section import UNIT_COUNT, UNIT_KEYS

    initial = {"enabled": False, "input_image": None, "module": "canny", "model": "tiny-sd15-cn",
               "weight": 1.0, "guidance_start": 0.0, "guidance_end": 1.0, "resize_mode": "Crop and Resize",
               "control_mode": "Balanced", "pixel_perfect": False, "processor_res": 512,
               "threshold_a": -1, "threshold_b": -1}  # fmt: skip
    values = []
    for index in range(UNIT_COUNT):
        chosen = {**initial, **(units[index] if index < len(units) else {})}
        values += [chosen[key] for key in UNIT_KEYS]
    return values


def test_form_section_sends_the_api_units_and_generates_through_the_queue(engine, base, tmp_path):
    """The accordion's values become sd-webui-controlnet's alwayson_scripts args (image as
    base64), which the WebUI's own job runner sends through a real SQLite queue: the image
    equals the one from the native units."""
    import extensions.controlnet as controlnet
    from core.jobs import JobService, SqliteJobQueue
    from extensions.controlnet.section import preview
    from plugin_api.testing import form_section_args
    from ui.extension_tabs import job_runner
    from ui.job_client import JobClient

    assert form_section_args(controlnet) is None  # initially no unit is enabled
    args = form_section_args(controlnet, section_values({}, {"enabled": True, "input_image": circle_image()}))
    first, second, third = args["args"]
    assert first == third == {"enabled": False} and second["module"] == "canny"
    assert second["input_image"] == b64(circle_image())  # what an API client sends
    (parsed,) = parse_units(args)
    assert (parsed.index, parsed.model, parsed.resize_mode, parsed.control_mode) == (
        1,
        "tiny-sd15-cn",
        "crop",
        "Balanced",
    )
    # img2img: a unit without an image sends none, and takes the init image (as the API)
    no_image = form_section_args(controlnet, section_values({"enabled": True}), tab="img2img")
    assert "input_image" not in no_image["args"][0] and parse_units(no_image)[0].from_init_image
    with pytest.raises(Exception, match="choose a model"):
        form_section_args(controlnet, section_values({"enabled": True, "model": None}))
    shown, message = preview(STATE, circle_image(), "canny")
    assert shown is not None and np.asarray(shown).max() == 255 and "canny" in message
    missing, message = preview(STATE, circle_image(), "depth_midas")
    assert missing is None and "dpt_hybrid-midas-501f0c75.pt" in message

    service = JobService.for_engine(
        engine, SqliteJobQueue(tmp_path / "queue.db"), settings=engine.host.settings
    ).start(recover=False)
    try:
        run_job = job_runner(JobClient(service))
        request = GenerationRequest(prompt="a yellow circle", seed=11, steps=2, width=64, height=64,
                                    model="tiny-sd15", save_images=False, extension_args={"controlnet": args})  # fmt: skip
        outcome = run_job(request)
    finally:
        service.stop()
    assert outcome["error"] is None and "ControlNet 1" in outcome["infotexts"][0]
    direct, _ = generate(engine, [unit(resize_mode="Crop and Resize")])
    assert np.array_equal(np.asarray(outcome["images"][0]), direct)


def test_weight_half_equals_diffusers_controlnet_pipeline(engine, cn_models):
    """One unit at weight 0.5 ("Balanced", whole schedule, the image used as it is) against
    diffusers' StableDiffusionControlNetPipeline with controlnet_conditioning_scale=0.5 on
    the same weights, seed, prompt and Euler schedule."""
    import diffusers
    import torch

    control = circle_image()
    ours, result = generate(
        engine, [unit(module="none", weight=0.5, resize_mode="Just Resize", image=control)],
        steps=3, sampler="Euler", cfg_scale=7.0,
    )  # fmt: skip
    assert result.warnings == []
    base = diffusers.StableDiffusionPipeline.from_pretrained(
        str(cn_models / "Stable-diffusion" / "tiny-sd15"), safety_checker=None, feature_extractor=None
    )
    pipe = diffusers.StableDiffusionControlNetPipeline(
        **{k: v for k, v in base.components.items() if k not in ("safety_checker", "feature_extractor")},
        controlnet=diffusers.ControlNetModel.from_pretrained(str(cn_models / "ControlNet" / "tiny-sd15-cn")),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        "a yellow circle", image=control, controlnet_conditioning_scale=0.5, num_inference_steps=3,
        guidance_scale=7.0, height=64, width=64, generator=torch.Generator("cpu").manual_seed(11),
    ).images[0]  # fmt: skip
    assert np.abs(ours.astype(int) - np.asarray(expected).astype(int)).max() <= 2
    # and weight 0.5 is not weight 1 (the comparison above could tell them apart)
    full, _ = generate(
        engine, [unit(module="none", weight=1.0, resize_mode="Just Resize", image=control)],
        steps=3, sampler="Euler", cfg_scale=7.0,
    )  # fmt: skip
    assert np.abs(full.astype(int) - ours.astype(int)).max() > 8
