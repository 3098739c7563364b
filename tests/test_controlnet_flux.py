"""FLUX.1 ControlNets through the bundled controlnet extension, against diffusers'
``FluxControlNetPipeline`` on the same weights.

A tiny FLUX.1-dev (tests/flux_files.py) and tiny ``FluxControlNetModel``s built from its
config: a folder, the same weights as one diffusers-layout file (how InstantX and
Shakker-Labs files are often kept), a Union ControlNet (7 modes, two double blocks, no
single ones) and an XLabs-layout file (refused). Units go in as sd-webui-controlnet's
``alwayson_scripts.controlnet.args``.

The tiny VAE's posterior spread is set to ~3e-7 (log-variance bias -30): diffusers
samples the posterior for the control image with the pipeline's generator, Easel takes
its mean; with the spread at zero both read the same latents, and the reference gets
Easel's initial noise as ``latents`` (the pipeline's generator is spent on that sample
first, so its own noise would differ).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from core.errors import RequestError
from extensions.controlnet import STATE
from plugin_api.types import GenerationRequest
from tests import flux_files
from tests.controlnet_files import make_controlnet, save_folder

TOLERANCE = 1.5 / 255.0  # one 8-bit level after rounding plus summation-order noise
PROMPT, SIZE, SEED, GUIDANCE = "a yellow circle on blue", 64, 11, 4.0


def randomize(controlnet, seed: int):
    """Random weights where diffusers starts a ControlNet at zero (its output layers), so
    it changes the image as a trained one does."""
    generator = torch.Generator().manual_seed(seed)
    layers = [
        *controlnet.controlnet_blocks,
        *controlnet.controlnet_single_blocks,
        controlnet.controlnet_x_embedder,
    ]
    with torch.no_grad():
        for layer in layers:
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.3)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=generator) * 0.05)
    return controlnet.eval()


def make_flux_controlnets(transformer):
    from diffusers import FluxControlNetModel

    plain = FluxControlNetModel.from_transformer(
        transformer, num_layers=1, num_single_layers=1, attention_head_dim=32, num_attention_heads=2
    )
    torch.manual_seed(3)
    config = {k: v for k, v in plain.config.items() if not k.startswith("_")}
    union = FluxControlNetModel.from_config(
        {**config, "num_layers": 2, "num_single_layers": 0, "num_mode": 7}
    )
    return randomize(plain, 1), randomize(union, 2)


@pytest.fixture(scope="module")
def flux_cn(tmp_path_factory, tiny_sd15_dir, make_host):
    from diffusers import FluxPipeline

    from core.engine import Engine

    root = tmp_path_factory.mktemp("flux-cn")
    components = flux_files.tiny_flux_components(seed=5)
    conv_out = components["vae"].encoder.conv_out  # 2 x 16 channels: mean, then log-variance
    with torch.no_grad():
        conv_out.weight[16:] = 0.0
        conv_out.bias[16:] = -30.0
    models = root / "models"
    FluxPipeline(**components).save_pretrained(str(models / "Stable-diffusion" / "tiny-flux"))
    (models / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    folder = models / "ControlNet"
    plain, union = make_flux_controlnets(components["transformer"])
    save_folder(plain, folder / "tiny-flux-cn")
    save_file(
        {k: v.contiguous() for k, v in plain.state_dict().items()},
        str(folder / "tiny-flux-cn-file.safetensors"),
    )
    save_folder(union, folder / "tiny-flux-union")
    xlabs = {  # the names XLabs' flux-*-controlnet files use (BFL's blocks)
        "double_blocks.0.img_attn.qkv.weight": torch.zeros(6, 2),
        "pos_embed_input.weight": torch.zeros(2, 2),
        "input_hint_block.0.weight": torch.zeros(2, 3, 3, 3),
        "controlnet_blocks.0.weight": torch.zeros(2, 2),
    }
    save_file(xlabs, str(folder / "tiny-flux-xlabs.safetensors"))
    save_folder(make_controlnet(tiny_sd15_dir, seed=4), folder / "tiny-sd15-cn")
    host = make_host(models_dir=models)
    assert host.extensions.records["controlnet"].state == "loaded", host.extensions.records[
        "controlnet"
    ].error
    return Engine(host), components, plain, union


def circle(cx: float = 0.35) -> Image.Image:
    image = Image.new("RGB", (SIZE, SIZE), (20, 20, 120))
    r = SIZE * 0.22
    ImageDraw.Draw(image).ellipse(
        [cx * SIZE - r, SIZE / 2 - r, cx * SIZE + r, SIZE / 2 + r], fill=(240, 200, 30)
    )
    return image


def b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def unit(**overrides) -> dict:
    """sd-webui-controlnet's unit as /sdapi/v1 alwayson_scripts.controlnet.args sends it."""
    values = {
        "input_image": b64(circle()), "module": "none", "model": "tiny-flux-cn", "weight": 0.7,
        "resize_mode": "Just Resize", "guidance_start": 0.0, "guidance_end": 1.0, "control_mode": "Balanced",
    }  # fmt: skip
    values.update(overrides)
    return values


def request_for(units=None, model="tiny-flux", steps=3, cfg_scale=1.0, negative="") -> GenerationRequest:
    return GenerationRequest(
        prompt=PROMPT, negative_prompt=negative, seed=SEED, steps=steps, width=SIZE, height=SIZE, model=model,
        sampler="Euler", cfg_scale=cfg_scale, distilled_cfg_scale=GUIDANCE, save_images=False,
        extension_args={"controlnet": {"args": units}} if units is not None else {},
    )  # fmt: skip


def generate(engine, units=None, model="tiny-flux", steps=3, cfg_scale=1.0, negative=""):
    result = engine.generate(request_for(units, model, steps, cfg_scale, negative))
    return np.asarray(result.images[0], dtype=np.float32) / 255.0, result


def reference(
    components, controlnet, images, scales, steps=3, modes=None, start=0.0, cfg_scale=1.0, negative=None
):
    """diffusers' FluxControlNetPipeline, with Easel's initial noise (see the module doc)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxControlNetPipeline, FluxMultiControlNetModel

    multi = len(images) > 1
    pipe = FluxControlNetPipeline(
        **{
            **components,
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config),
        },
        controlnet=FluxMultiControlNetModel(controlnet) if multi else controlnet[0],
    )
    pipe.set_progress_bar_config(disable=True)
    noise = torch.randn((1, 16, SIZE // 2, SIZE // 2), generator=torch.Generator("cpu").manual_seed(SEED))
    return pipe(
        PROMPT, negative_prompt=negative, true_cfg_scale=cfg_scale,
        control_image=images if multi else images[0],
        controlnet_conditioning_scale=scales if multi else scales[0],
        control_mode=modes if multi else (modes or [None])[0],
        control_guidance_start=start, guidance_scale=GUIDANCE, num_inference_steps=steps,
        height=SIZE, width=SIZE, output_type="np", max_sequence_length=512,
        latents=pipe._pack_latents(noise, 1, 16, SIZE // 2, SIZE // 2),
        generator=torch.Generator("cpu").manual_seed(SEED),
    ).images[0]  # fmt: skip


def test_listing_names_flux_controlnets_and_refuses_xlabs_files(flux_cn):
    infos = {i.name: i for i in STATE.library.scan()}
    assert (infos["tiny-flux-cn"].family, infos["tiny-flux-cn"].format) == ("flux", "diffusers")
    assert (infos["tiny-flux-union"].num_mode, infos["tiny-flux-cn"].num_mode) == (7, None)
    assert (infos["tiny-flux-cn-file"].family, infos["tiny-flux-cn-file"].format) == ("flux", "single-file")
    assert infos["tiny-flux-union"].family == "flux" and infos["tiny-sd15-cn"].family == "sd15"
    assert not any(infos[n].problem for n in ("tiny-flux-cn", "tiny-flux-cn-file", "tiny-flux-union"))
    xlabs = infos["tiny-flux-xlabs"]
    assert (
        xlabs.family == "flux" and "tiny-flux-xlabs.safetensors" in xlabs.problem and "XLabs" in xlabs.problem
    )


@pytest.mark.parametrize(
    ("weight", "start", "cfg_scale", "negative"),
    [(0.7, 0.0, 1.0, ""), (1.3, 0.5, 1.0, ""), (0.7, 0.0, 2.5, "blurry")],
    ids=["weight-0.7", "start-0.5", "true-cfg"],
)
def test_unit_equals_diffusers_flux_controlnet_pipeline(flux_cn, weight, start, cfg_scale, negative):
    engine, components, plain, _ = flux_cn
    steps = 4 if start else 3
    ours, result = generate(
        engine,
        [unit(weight=weight, guidance_start=start)],
        steps=steps,
        cfg_scale=cfg_scale,
        negative=negative,
    )
    assert result.warnings == []
    assert "ControlNet 0: " in result.infotexts[0] and "Model: tiny-flux-cn" in result.infotexts[0]
    expected = reference(
        components, [plain], [circle()], [weight], steps=steps, start=start,
        cfg_scale=cfg_scale, negative=negative or None,
    )  # fmt: skip
    assert np.abs(ours - expected).max() <= TOLERANCE
    # ... and the comparison can tell: the ControlNet moves the image well past it
    base, _ = generate(engine, steps=steps, cfg_scale=cfg_scale, negative=negative)
    assert np.abs(ours - base).max() > 20 * TOLERANCE


def test_weight_zero_or_disabled_is_the_plain_image_and_the_file_equals_the_folder(flux_cn):
    engine, _, _, _ = flux_cn
    base, _ = generate(engine)
    for off in (unit(weight=0.0), unit(enabled=False)):
        image, result = generate(engine, [off])
        assert np.array_equal(image, base) and "ControlNet 0" not in result.infotexts[0]
    folder, _ = generate(engine, [unit()])
    single, result = generate(engine, [unit(model="tiny-flux-cn-file")])
    assert result.warnings == [] and np.array_equal(single, folder)


def test_two_units_with_a_union_controlnet_equal_diffusers_multi_controlnet(flux_cn):
    """A plain and a Union ControlNet of different depths (1+1 and 2+0 blocks): their
    samples add as FluxMultiControlNetModel adds them; the Union mode comes from the
    unit's union_control_type."""
    engine, components, plain, union = flux_cn
    second = circle(cx=0.65)
    units = [
        unit(weight=0.6),
        unit(model="tiny-flux-union", weight=0.8, input_image=b64(second), union_control_type="depth"),
    ]
    ours, result = generate(engine, units)
    assert result.warnings == []
    expected = reference(components, [plain, union], [circle(), second], [0.6, 0.8], modes=[None, 2])
    assert np.abs(ours - expected).max() <= TOLERANCE
    # the mode reaches the model (one token among 512 T5 ones: a small change on a tiny
    # model, so the names are checked in test_union_mode_names), and a canny
    # preprocessor names it when the unit does not
    other_mode, _ = generate(engine, [units[0], {**units[1], "union_control_type": "tile"}])
    assert not np.array_equal(other_mode, ours)
    canny, _ = generate(engine, [unit(model="tiny-flux-union", module="canny")])
    by_name, _ = generate(engine, [unit(model="tiny-flux-union", module="canny", union_control_type="canny")])
    assert np.array_equal(canny, by_name)


def test_refusals_name_the_file_the_families_and_the_field(flux_cn):
    engine, _, _, _ = flux_cn
    cases = [
        (
            unit(model="tiny-sd15-cn"),
            "tiny-flux",
            ".model",
            ["tiny-sd15-cn", "is a sd15 ControlNet", "is flux"],
        ),
        (
            unit(model="tiny-flux-cn"),
            "tiny-sd15",
            ".model",
            ["tiny-flux-cn", "is a flux ControlNet", "is sd15"],
        ),
        (unit(model="tiny-flux-xlabs"), "tiny-flux", ".model", ["tiny-flux-xlabs.safetensors", "XLabs"]),
        (unit(model="tiny-flux-union"), "tiny-flux", ".union_control_type", ["Union", "'depth'"]),
        (
            unit(model="tiny-flux-union", union_control_type="sideways"),
            "tiny-flux",
            ".union_control_type",
            ["unknown union_control_type 'sideways'"],
        ),
    ]
    for bad, model, field, words in cases:
        with pytest.raises(RequestError) as error:  # at submit time: /sdapi/v1 answers 422
            engine.validate(request_for([bad], model=model))
        assert error.value.field.endswith(field), (field, error.value.field)
        assert all(w in str(error.value) for w in words), (words, str(error.value))
    _, result = generate(engine, [unit()])  # and the next request works
    assert result.warnings == [] and "ControlNet 0" in result.infotexts[0]


def test_sd_control_modes_are_ignored_with_a_warning(flux_cn):
    engine, _, _, _ = flux_cn
    balanced, _ = generate(engine, [unit()])
    for mode in ("My prompt is more important", "ControlNet is more important"):
        image, result = generate(engine, [unit(control_mode=mode)])
        assert np.array_equal(image, balanced)
        assert any(mode in w and "Balanced" in w for w in result.warnings), result.warnings


def test_union_mode_names():
    """InstantX's and Shakker-Labs' Union modes by sd-webui-controlnet's names, by index,
    or from the preprocessor; a plain ControlNet ignores a mode with a warning."""
    from extensions.controlnet.flux import union_mode
    from extensions.controlnet.units import parse_units

    def mode(num_mode=7, **raw):
        warnings: list[str] = []
        parsed = parse_units([{"input_image": b64(circle()), "model": "u", **raw}])[0]
        return union_mode(parsed, num_mode, warnings), warnings

    assert mode(union_control_type="Depth") == (2, [])
    assert mode(union_control_type="OpenPose") == (4, [])
    assert mode(union_control_type="low quality") == (6, [])
    assert mode(union_control_type=3) == (3, [])
    assert mode(union_control_type="Unknown", module="canny") == (0, [])
    assert mode(module="depth_midas") == (2, [])
    assert mode(module="tile_resample") == (1, [])
    none, warnings = mode(num_mode=None, union_control_type="canny")
    assert none is None and "not a Union ControlNet" in warnings[0]
    for bad in ({"union_control_type": 7}, {"module": "none"}):
        with pytest.raises(ValueError, match="union_control_type"):
            mode(**bad)


def test_hires_pass_gets_the_map_at_its_own_size(flux_cn):
    """The hires pass's latents are larger: the map is encoded again at that size (a
    ControlNet fed the first pass's tokens would fail there)."""
    engine = flux_cn[0]

    def hires(units):
        request = GenerationRequest(
            prompt=PROMPT, seed=SEED, steps=2, width=SIZE, height=SIZE, model="tiny-flux", sampler="Euler",
            distilled_cfg_scale=GUIDANCE, save_images=False, enable_hr=True, hr_scale=1.5, denoising_strength=0.6,
            extension_args={"controlnet": {"args": units}},
        )  # fmt: skip
        return engine.generate(request)

    with_unit, without = hires([unit()]), hires([unit(weight=0.0)])
    assert with_unit.warnings == [] and with_unit.images[0].size == (96, 96)
    assert np.abs(np.asarray(with_unit.images[0], float) - np.asarray(without.images[0], float)).max() > 20


def test_single_file_config_is_read_from_its_shapes(tmp_path):
    """A diffusers-layout file has no config: Union modes, guidance embedding, block counts
    and an XLabs-style hint block (its patch size from the hint's channels) come from the
    tensor shapes, and the loaded model is the saved one."""
    from diffusers import FluxControlNetModel

    from extensions.controlnet import flux
    from extensions.controlnet.library import ControlNetInfo

    transformer = flux_files.tiny_flux_components(seed=5)["transformer"]
    config = {k: v for k, v in transformer.config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    hinted = FluxControlNetModel.from_config(
        {**config, "num_layers": 2, "num_single_layers": 3, "num_mode": 4, "patch_size": 2,
         "conditioning_embedding_channels": 16}
    ).eval()  # fmt: skip
    path = tmp_path / "hinted.safetensors"
    save_file({k: v.contiguous() for k, v in hinted.state_dict().items()}, str(path))
    loaded = flux.load(ControlNetInfo("hinted", path, "flux", "single-file", 0), transformer)
    for key in ("num_layers", "num_single_layers", "num_mode", "patch_size", "conditioning_embedding_channels",
                "guidance_embeds", "in_channels", "joint_attention_dim", "num_attention_heads"):  # fmt: skip
        assert loaded.config[key] == hinted.config[key], key
    saved = hinted.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in loaded.state_dict().items())
    # a file that does not fit the model is refused naming it
    wide = FluxControlNetModel.from_config(
        {**config, "num_layers": 1, "num_single_layers": 0, "joint_attention_dim": 48}
    )
    wide_path = tmp_path / "wide.safetensors"
    save_file({k: v.contiguous() for k, v in wide.state_dict().items()}, str(wide_path))
    with pytest.raises(
        flux.FluxControlNetError, match=r"wide\.safetensors does not fit.*joint_attention_dim 48"
    ):
        flux.load(ControlNetInfo("wide", wide_path, "flux", "single-file", 0), transformer)
