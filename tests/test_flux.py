"""FLUX.1 in every layout users have, against diffusers' FluxPipeline.

One tiny FLUX.1-dev (hidden 64, one double and one single block; real CLIP-L and T5
tokenizers) is written as: a diffusers folder; BFL's original single file with a full
``<name>.config/`` beside it; ComfyUI's split files (``diffusion_models/`` +
``text_encoders/clip_l`` + ``text_encoders/t5xxl`` + ``vae/ae.safetensors``); a GGUF file
(Q8_0 and Q4_K blocks) and a ComfyUI scaled-FP8 file, both with the same companions. Each
is generated through the engine (the path ``easel generate --model`` takes) and compared
with diffusers' ``FluxPipeline`` run on what the files mean (for GGUF and FP8: the weights
dequantised), same seed, same prompt.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from plugin_api import GenerationRequest
from tests import flux_files, tiny_models

# one 8-bit level after rounding plus summation-order noise (GGUF/FP8 are compared with
# their own dequantised weights, so they meet the same bound)
TOLERANCE = 1.5 / 255.0
PROMPT = "a red fox in the snow, watercolor"
SIZE, STEPS, SEED, GUIDANCE = 64, 3, 11, 4.0
pytestmark = pytest.mark.slow  # builds six tiny models and loads each (~25 s of CPU in all)


def reference(
    components: dict,
    cfg_scale: float = 1.0,
    negative: str | None = None,
    steps: int = STEPS,
    max_sequence_length: int = 512,
) -> np.ndarray:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    pipe = FluxPipeline(
        **{
            **components,
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config),
        }
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        PROMPT, negative_prompt=negative, true_cfg_scale=cfg_scale, guidance_scale=GUIDANCE,
        num_inference_steps=steps, height=SIZE, width=SIZE, output_type="np",
        generator=torch.Generator("cpu").manual_seed(SEED), max_sequence_length=max_sequence_length,
    ).images[0]  # fmt: skip


def with_transformer_weights(components: dict, bfl_meant: dict[str, torch.Tensor]) -> dict:
    """The components with a transformer holding ``bfl_meant`` (BFL names; the name mapping
    itself is checked exactly by test_bfl_names_round_trip)."""
    from diffusers import FluxTransformer2DModel

    from core.families.flux_keys import bfl_to_diffusers

    transformer = FluxTransformer2DModel.from_config(components["transformer"].config)
    transformer.load_state_dict(bfl_to_diffusers(dict(bfl_meant), flux_files.HIDDEN), strict=True)
    return {**components, "transformer": transformer.eval()}


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    from diffusers import FluxPipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("flux")
    components = flux_files.tiny_flux_components(seed=5)
    models = root / "models"
    FluxPipeline(**components).save_pretrained(str(models / "Stable-diffusion" / "tiny-flux-folder"))
    bfl = flux_files.flux_to_bfl(components["transformer"])
    # BFL's single file with a full diffusers folder beside it
    single = tiny_models.write_single_file(models / "Stable-diffusion" / "tiny-flux-bfl.safetensors", bfl)
    shutil.copytree(
        models / "Stable-diffusion" / "tiny-flux-folder", single.with_name("tiny-flux-bfl.config")
    )
    # ComfyUI: transformer (prefixed), clip_l (text_model. level), t5xxl, ae (BFL VAE keys)
    comfy_prefixed = {"model.diffusion_model." + k: v for k, v in bfl.items()}
    split = tiny_models.write_single_file(
        models / "diffusion_models" / "tiny-flux-split.safetensors", comfy_prefixed
    )
    clip_state = {"text_model." + k: v for k, v in components["text_encoder"].state_dict().items()}
    tiny_models.write_single_file(models / "text_encoders" / "clip_l.safetensors", clip_state)
    t5_state = dict(components["text_encoder_2"].state_dict())
    tiny_models.write_single_file(models / "text_encoders" / "t5xxl_fp16.safetensors", t5_state)
    vae = components["vae"]
    vae_state = tiny_models.vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    tiny_models.write_single_file(
        models / "vae" / "ae.safetensors",
        {k.removeprefix("first_stage_model."): v for k, v in vae_state.items()},
    )
    # GGUF (unet/, as ComfyUI-GGUF users keep them) and scaled FP8
    meant = {"split": bfl}
    meant["q8"] = flux_files.write_gguf(models / "unet" / "tiny-flux-Q8_0.gguf", bfl, "Q8_0")
    meant["q4k"] = flux_files.write_gguf(models / "unet" / "tiny-flux-Q4_K.gguf", bfl, "Q4_K")
    fp8_file, meant["fp8"] = flux_files.to_fp8_scaled(comfy_prefixed)
    tiny_models.write_single_file(models / "diffusion_models" / "tiny-flux-fp8-scaled.safetensors", fp8_file)
    meant["fp8"] = {k.removeprefix("model.diffusion_model."): v for k, v in meant["fp8"].items()}
    # the shapes of every single file: configs of the tiny model (the shipped ones are 12B)
    configs = root / "configs"
    shutil.copytree(models / "Stable-diffusion" / "tiny-flux-folder", configs)
    for component in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        for weights in (configs / component).glob("*.safetensors"):
            weights.unlink()
    for name in ("tiny-flux-split", "tiny-flux-fp8-scaled"):
        shutil.copytree(configs, models / "diffusion_models" / f"{name}.config")
    for name in ("tiny-flux-Q8_0", "tiny-flux-Q4_K"):
        shutil.copytree(configs, models / "unet" / f"{name}.config")
    assert split.exists()
    flux_files.write_kohya_lora(models / "Lora" / "flux-kohya.safetensors", seed=2)
    host = Host(Settings(data_dir=root / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    engine = Engine(host)
    engine.models_root = models  # for tests that start hosts of their own on the same files
    yield engine, components, meant
    host.stop()


def generate(
    engine,
    model: str,
    cfg_scale: float = 1.0,
    negative: str = "",
    prompt: str = PROMPT,
    steps: int | None = STEPS,
    distilled: float | None = GUIDANCE,
) -> tuple[np.ndarray, list[str]]:
    request = GenerationRequest(
        prompt=prompt, negative_prompt=negative, seed=SEED, steps=steps, width=SIZE, height=SIZE, model=model,
        sampler="Euler", cfg_scale=cfg_scale, distilled_cfg_scale=distilled,
    )  # fmt: skip
    result = engine.generate(request)
    return np.asarray(result.images[0], dtype=np.float32) / 255.0, list(result.warnings)


def test_listing_names_family_variant_precision_and_format(flux):
    engine, _, _ = flux
    infos = {i.name: i for i in engine.models.list()}
    expected = {
        "tiny-flux-folder": ("diffusers", "fp32"),
        "tiny-flux-bfl": ("safetensors", "fp32"),
        "tiny-flux-split": ("safetensors", "fp32"),
        "tiny-flux-fp8-scaled": ("safetensors", "fp8"),
        "tiny-flux-Q8_0": ("gguf", "Q8_0"),
        "tiny-flux-Q4_K": ("gguf", "Q4_K"),
    }
    for name, (fmt, precision) in expected.items():
        info = infos[name]
        assert (info.family, info.variant, info.format, info.precision) == (
            "flux",
            "flux-dev",
            fmt,
            precision,
        ), name
        assert info.as_dict()["precision"] == precision
    assert not {"clip_l", "t5xxl_fp16", "ae"} & set(infos)  # companions are not checkpoints


@pytest.mark.parametrize("model", ["tiny-flux-folder", "tiny-flux-bfl", "tiny-flux-split"])
def test_layouts_equal_diffusers_flux_pipeline(flux, model):
    engine, components, _ = flux
    ours, _ = generate(engine, model)
    assert np.abs(ours - reference(components)).max() <= TOLERANCE


@pytest.mark.parametrize(
    ("model", "key"), [("tiny-flux-Q8_0", "q8"), ("tiny-flux-Q4_K", "q4k"), ("tiny-flux-fp8-scaled", "fp8")]
)
def test_quantized_files_equal_diffusers_on_their_dequantized_weights(flux, model, key):
    engine, components, meant = flux
    ours, _ = generate(engine, model)
    expected = reference(with_transformer_weights(components, meant[key]))
    assert np.abs(ours - expected).max() <= TOLERANCE
    # and the quantisation is real: the dequantised weights differ from the originals
    original = flux_files.flux_to_bfl(components["transformer"])
    assert any(not torch.equal(meant[key][k], original[k]) for k in original)


def test_true_cfg_with_negative_prompt_equals_diffusers(flux):
    engine, components, _ = flux
    ours, warnings = generate(engine, "tiny-flux-folder", cfg_scale=2.5, negative="blurry")
    assert np.abs(ours - reference(components, cfg_scale=2.5, negative="blurry")).max() <= TOLERANCE
    assert not any("negative prompt" in w for w in warnings)


def test_negative_prompt_without_true_cfg_is_ignored_with_a_warning(flux):
    engine, components, _ = flux
    ours, warnings = generate(engine, "tiny-flux-folder", cfg_scale=1.0, negative="blurry")
    assert any("ignores the negative prompt" in w for w in warnings), warnings
    assert np.abs(ours - reference(components)).max() <= TOLERANCE


def test_bfl_names_round_trip():
    """Easel's BFL -> diffusers mapping inverts the tests' diffusers -> BFL writer exactly
    and yields exactly the model's keys (diffusers then loads it without converting)."""
    from core.families.flux_keys import bfl_to_diffusers

    transformer = flux_files.tiny_flux_components(seed=1)["transformer"]
    back = bfl_to_diffusers(flux_files.flux_to_bfl(transformer), flux_files.HIDDEN)
    reference = transformer.state_dict()
    assert set(back) == set(reference)
    assert all(torch.equal(back[k], reference[k]) for k in reference)


def test_kohya_lora_equals_diffusers_and_switches_off_exactly(flux, tmp_path):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    from extensions.lora import STATE

    engine, components, _ = flux
    info = {i.name: i for i in STATE.library.scan()}["flux-kohya"]
    assert info.family == "flux"
    base, _ = generate(engine, "tiny-flux-folder")
    styled, _ = generate(engine, "tiny-flux-folder", prompt=f"{PROMPT} <lora:flux-kohya:1>")
    off, _ = generate(engine, "tiny-flux-folder")
    assert np.array_equal(off, base)  # switching it off restores the base image exactly
    assert np.abs(styled - base).max() > 0.05  # it changes the image
    pipe = FluxPipeline(
        **{
            **components,
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config),
        }
    )
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(info.path), adapter_name="kohya")
    try:
        expected = pipe(
            PROMPT, guidance_scale=GUIDANCE, num_inference_steps=STEPS, height=SIZE, width=SIZE, output_type="np",
            generator=torch.Generator("cpu").manual_seed(SEED), max_sequence_length=512,
        ).images[0]  # fmt: skip
    finally:
        pipe.unload_lora_weights()  # the components are the module's reference
    assert np.abs(styled - expected).max() <= TOLERANCE


@pytest.mark.parametrize("model", ["tiny-flux-folder", "tiny-flux-Q8_0"])
def test_offload_modes_give_the_full_mode_image(flux, tmp_path, model):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    engine, _, _ = flux
    full, _ = generate(engine, model)
    for mode in ("model-offload", "sequential-offload"):
        settings = Settings(
            data_dir=tmp_path / mode,
            models_dir=engine.models_root,
            safe_mode=True,
            device="cpu",
            memory_mode=mode,
        )
        host = Host(settings).start()
        try:
            request = GenerationRequest(
                prompt=PROMPT, seed=SEED, steps=STEPS, width=SIZE, height=SIZE, model=model,
                sampler="Euler", distilled_cfg_scale=GUIDANCE, save_images=False,
            )  # fmt: skip
            result = Engine(host).generate(request)
        finally:
            host.stop()
        assert result.parameters["memory_mode"] == mode
        assert np.array_equal(np.asarray(result.images[0], dtype=np.float32) / 255.0, full), mode


@pytest.fixture(scope="module")
def schnell(tmp_path_factory):
    """A tiny FLUX.1-schnell folder: no guidance embedding, schnell's scheduler (static
    shift 1, core/model_configs/flux-schnell), on an engine of its own."""
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("flux-schnell")
    folder = root / "models" / "Stable-diffusion" / "tiny-flux-schnell"
    components = flux_files.write_flux_folder(folder, seed=7, guidance=False)
    host = Host(
        Settings(data_dir=root / "data", models_dir=root / "models", safe_mode=True, device="cpu")
    ).start()
    yield Engine(host), components
    host.stop()


def test_schnell_equals_diffusers_flux_pipeline_at_its_defaults(schnell):
    """FLUX.1-schnell through the engine at its own defaults (4 steps, CFG 1, no Distilled
    CFG) equals FluxPipeline as diffusers' docs run schnell (256 T5 tokens)."""
    engine, components = schnell
    assert not components["transformer"].config.guidance_embeds
    assert (
        not components["scheduler"].config.use_dynamic_shifting
        and components["scheduler"].config.shift == 1.0
    )
    info = {i.name: i for i in engine.models.list()}["tiny-flux-schnell"]
    assert (info.family, info.variant) == ("flux", "flux-schnell")
    filled = engine.validate(GenerationRequest(model="tiny-flux-schnell"))
    assert (filled.steps, filled.cfg_scale, filled.distilled_cfg_scale) == (4, 1.0, None)
    ours, warnings = generate(engine, "tiny-flux-schnell", steps=None, distilled=None)
    assert warnings == []
    assert np.abs(ours - reference(components, steps=4, max_sequence_length=256)).max() <= TOLERANCE
    # the prompt's length is schnell's own (on a tiny model 512 tokens change the image by
    # less than the tolerance, so the embeddings are compared): FluxPipeline's at 256
    from diffusers import FluxPipeline

    from core.families.flux import FAMILY

    cond, _ = FAMILY.encode_prompt_pair(components, PROMPT, "", 0, SIZE, SIZE, need_negative=False)
    expected, pooled, _ = FluxPipeline(**components).encode_prompt(PROMPT, None, max_sequence_length=256)
    assert cond.embeds.shape[1] == 256
    assert torch.allclose(cond.embeds, expected) and torch.allclose(cond.extra["pooled"], pooled)
