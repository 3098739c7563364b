"""Quantised T5 encoder files for FLUX.1 and Chroma's split layouts (issue #26): city96's
GGUF (``t5-v1_1-xxl-encoder-Q8_0.gguf``, a K-quant one) and ComfyUI's FP8
(``t5xxl_fp8_e4m3fn.safetensors``, ``..._scaled.safetensors``).

Each file is written from one tiny T5 v1.1 encoder (two blocks, T5-XXL's vocabulary) and
loaded through the real split-layout path (``Engine.generate`` on a tiny FLUX.1 whose
sidecar names the file; Chroma finding the GGUF in ``text_encoders/`` by its tensors).
The reference is diffusers' pipeline on the same components with the T5 holding what the
file means (the weights dequantised/widened, float32). The GGUF writer names tensors with
gguf-py's own table, and the dequantised weights are also checked against transformers'
GGUF reader.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from core.errors import ModelError
from plugin_api import GenerationRequest
from tests import flux_files, text_encoder_files, tiny_models

# one 8-bit level after rounding plus summation-order noise, as tests/test_flux.py
TOLERANCE = 1.5 / 255.0
PROMPT = "a red fox in the snow, watercolor"
SIZE, STEPS, SEED, GUIDANCE = 64, 3, 11, 4.0
T5_FILES = {  # what users have in text_encoders/ -> the writer's name for its meaning
    "t5-v1_1-xxl-encoder-Q8_0.gguf": "q8",
    "t5-v1_1-xxl-encoder-Q4_K_M.gguf": "q4k",
    "t5xxl_fp8_e4m3fn.safetensors": "fp8",
    "t5xxl_fp8_e4m3fn_scaled.safetensors": "fp8-scaled",
}
pytestmark = pytest.mark.slow  # writes and loads five tiny FLUX.1/Chroma models


def write_t5_files(folder, t5) -> dict[str, dict[str, torch.Tensor]]:
    """Every kind of T5 file in ``folder``; {kind: what it means}."""
    meant = {
        "q8": text_encoder_files.write_t5_gguf(folder / "t5-v1_1-xxl-encoder-Q8_0.gguf", t5, "Q8_0"),
        # a K-quant file mixes types as Q4_K_M does: Q4_K, Q8_0, F16 embeddings, F32 norms
        "q4k": text_encoder_files.write_t5_gguf(
            folder / "t5-v1_1-xxl-encoder-Q4_K_M.gguf", t5, "Q4_K", embed_type="F16"
        ),
    }
    weights = text_encoder_files.encoder_weights(t5)
    for kind, convert in (
        ("fp8", text_encoder_files.to_fp8),
        ("fp8-scaled", text_encoder_files.to_fp8_scaled),
    ):
        name = next(n for n, k in T5_FILES.items() if k == kind)
        file, meant[kind] = convert(weights)
        tiny_models.write_single_file(folder / name, file)
    return meant


def config_folder(components, pipeline_class, target):
    """The tiny model's configs only (no weights), as ``<name>.config/``."""
    pipeline_class(**components).save_pretrained(str(target))
    for weights in target.rglob("*.safetensors"):
        weights.unlink()
    return target


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    from diffusers import FluxPipeline

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    root = tmp_path_factory.mktemp("flux-t5")
    components = flux_files.tiny_flux_components(seed=5)
    components["text_encoder_2"] = text_encoder_files.tiny_t5(seed=6)
    models = root / "models"
    meant = write_t5_files(models / "text_encoders", components["text_encoder_2"])
    text_encoder_files.write_other_gguf(models / "text_encoders" / "Llama-3.2-1B-Q8_0.gguf")
    clip = {"text_model." + k: v for k, v in components["text_encoder"].state_dict().items()}
    tiny_models.write_single_file(models / "text_encoders" / "clip_l.safetensors", clip)
    vae = components["vae"]
    vae_state = tiny_models.vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    tiny_models.write_single_file(
        models / "vae" / "ae.safetensors",
        {k.removeprefix("first_stage_model."): v for k, v in vae_state.items()},
    )
    bfl = {
        "model.diffusion_model." + k: v for k, v in flux_files.flux_to_bfl(components["transformer"]).items()
    }
    configs = config_folder(components, FluxPipeline, root / "configs")
    for t5_name in [*T5_FILES, "Llama-3.2-1B-Q8_0.gguf"]:
        name = "flux-" + t5_name.split(".")[0]
        tiny_models.write_single_file(models / "diffusion_models" / f"{name}.safetensors", bfl)
        shutil.copytree(configs, models / "diffusion_models" / f"{name}.config")
        sidecar = {"t5xxl": t5_name, "clip_l": "clip_l.safetensors", "vae": "ae.safetensors"}
        (models / "diffusion_models" / f"{name}.easel.json").write_text(json.dumps(sidecar))
    host = Host(Settings(data_dir=root / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    yield Engine(host), components, meant, models
    host.stop()


def flux_reference(components: dict) -> np.ndarray:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline

    scheduler = FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config)
    pipe = FluxPipeline(**{**components, "scheduler": scheduler})
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        PROMPT, guidance_scale=GUIDANCE, num_inference_steps=STEPS, height=SIZE, width=SIZE, output_type="np",
        generator=torch.Generator("cpu").manual_seed(SEED), max_sequence_length=512,
    ).images[0]  # fmt: skip


def generate(engine, model: str, cfg_scale: float = 1.0, negative: str = "") -> np.ndarray:
    request = GenerationRequest(
        prompt=PROMPT, negative_prompt=negative, seed=SEED, steps=STEPS, width=SIZE, height=SIZE, model=model,
        sampler="Euler", cfg_scale=cfg_scale, distilled_cfg_scale=GUIDANCE, save_images=False,
    )  # fmt: skip
    return np.asarray(engine.generate(request).images[0], dtype=np.float32) / 255.0


@pytest.mark.parametrize(("t5_file", "kind"), list(T5_FILES.items()))
def test_flux_with_quantized_t5_equals_diffusers_on_its_dequantized_weights(flux, t5_file, kind):
    from diffusers import FluxPipeline

    from core.families.flux import FAMILY

    engine, components, meant, _ = flux
    model = "flux-" + t5_file.split(".")[0]
    ours = generate(engine, model)
    t5 = text_encoder_files.with_weights(components["text_encoder_2"], meant[kind])
    reference = {**components, "text_encoder_2": t5}
    assert np.abs(ours - flux_reference(reference)).max() <= TOLERANCE
    # the encoder holds exactly what the file means, so the prompt's embeddings are equal
    loaded = engine.models.get(model).components
    loaded_t5 = loaded["text_encoder_2"].state_dict()
    assert set(loaded_t5) == set(t5.state_dict())
    assert all(torch.equal(loaded_t5[k], v) for k, v in t5.state_dict().items())
    with torch.no_grad():  # (with autograd on, SDPA takes another kernel: ~1e-6 apart)
        cond, _ = FAMILY.encode_prompt_pair(loaded, PROMPT, "", 0, SIZE, SIZE, need_negative=False)
        expected, _, _ = FluxPipeline(**reference).encode_prompt(PROMPT, None, max_sequence_length=512)
    assert torch.equal(cond.embeds, expected)
    # and the quantisation is real: the file's weights differ from the model it came from
    original = text_encoder_files.encoder_weights(components["text_encoder_2"])
    assert any(not torch.equal(meant[kind][k], original[k]) for k in original)


def test_gguf_of_another_architecture_is_refused_naming_the_file(flux, tmp_path):
    engine, _, _, models = flux
    with pytest.raises(ModelError) as caught:
        engine.models.get("flux-Llama-3")  # its sidecar names the llama GGUF as t5xxl
    message = str(caught.value)
    assert "Llama-3.2-1B-Q8_0.gguf" in message and "'llama'" in message and "T5 encoder" in message
    # found by tensors, a GGUF of another kind is passed over, a T5 GGUF is found
    from core.models import comfyui

    folders = {"text_encoders": [models / "text_encoders"], "VAE": [models / "vae"]}
    lonely = tmp_path / "flux.safetensors"  # no sidecar: companions found by their tensors
    found = comfyui.flux_companions(lonely, flux_files.TEXT_WIDTH, flux_files.TEXT_WIDTH, folders)
    assert found.t5.name == "t5-v1_1-xxl-encoder-Q4_K_M.gguf"  # the first T5 by name
    assert found.clip.name == "clip_l.safetensors"
    # Wan's UMT5 (same names and width, a relative bias in every block) is passed over
    from transformers import UMT5Config, UMT5EncoderModel

    umt5 = UMT5EncoderModel(
        UMT5Config(vocab_size=300, d_model=flux_files.TEXT_WIDTH, d_kv=16, d_ff=64, num_layers=2, num_heads=2)
    )
    only_umt5 = tmp_path / "text_encoders"
    tiny_models.write_single_file(only_umt5 / "a_umt5_xxl_fp8_e4m3fn_scaled.safetensors", umt5.state_dict())
    shutil.copy(models / "text_encoders" / "t5xxl_fp8_e4m3fn.safetensors", only_umt5)
    found = comfyui.flux_companions(
        lonely, flux_files.TEXT_WIDTH, None, {**folders, "text_encoders": [only_umt5]}
    )
    assert found.t5.name == "t5xxl_fp8_e4m3fn.safetensors"


def test_t5_gguf_names_and_values_agree_with_transformers_reader(flux, tmp_path):
    """Easel's llama.cpp -> transformers table against transformers' own GGUF reader (which
    goes through gguf-py's table): the same names, the same dequantised values."""
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    from core.models.gguf_text import read_text_encoder

    _, components, _, models = flux
    for name in ("t5-v1_1-xxl-encoder-Q8_0.gguf", "t5-v1_1-xxl-encoder-Q4_K_M.gguf"):
        path = models / "text_encoders" / name
        ours = read_text_encoder(path, "t5", torch.float32)
        theirs = load_gguf_checkpoint(
            str(path), return_tensors=True, model_to_load=components["text_encoder_2"]
        )
        assert set(ours) == set(theirs["tensors"]), name
        assert all(torch.equal(ours[k], v) for k, v in theirs["tensors"].items()), name


def test_broken_t5_files_are_refused_naming_file_and_tensor(flux, tmp_path):
    import gguf

    from core.families import flux_files as loaders

    _, _, _, models = flux
    config_dir = models / "diffusion_models" / "flux-t5xxl_fp8_e4m3fn.config"
    # a T5 GGUF with a tensor no T5 has
    odd = tmp_path / "odd.gguf"
    writer = gguf.GGUFWriter(str(odd), arch="t5encoder")
    writer.add_tensor("enc.blk.0.attn_qkv.weight", np.ones((96, 32), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match=r"odd\.gguf: tensor 'enc\.blk\.0\.attn_qkv\.weight' is not part"):
        loaders.load_text_model(odd, config_dir, "text_encoder_2", torch.float32, "T5-XXL text encoder")
    # one block short of the config: the missing weight is named
    short = tmp_path / "short.gguf"
    text_encoder_files.write_t5_gguf(short, text_encoder_files.tiny_t5(seed=6, layers=1), "Q8_0")
    with pytest.raises(
        ModelError, match=r"short\.gguf: not a T5-XXL text encoder for this config: encoder\.block\.1"
    ):
        loaders.load_text_model(short, config_dir, "text_encoder_2", torch.float32, "T5-XXL text encoder")
    # a block too many
    deep = tmp_path / "deep.gguf"
    text_encoder_files.write_t5_gguf(deep, text_encoder_files.tiny_t5(seed=6, layers=3), "Q8_0")
    with pytest.raises(ModelError, match=r"deep\.gguf: not a T5-XXL text encoder for this config: it has"):
        loaders.load_text_model(deep, config_dir, "text_encoder_2", torch.float32, "T5-XXL text encoder")
    # a GGUF named as CLIP-L
    with pytest.raises(ModelError, match="GGUF CLIP-L text encoder is not supported"):
        loaders.load_text_model(
            models / "text_encoders" / "t5-v1_1-xxl-encoder-Q8_0.gguf", config_dir, "text_encoder",
            torch.float32, "CLIP-L text encoder",
        )  # fmt: skip
    # a truncated file
    cut = tmp_path / "cut.gguf"
    cut.write_bytes((models / "text_encoders" / "t5-v1_1-xxl-encoder-Q8_0.gguf").read_bytes()[:300])
    with pytest.raises(ModelError, match=r"cut\.gguf: unreadable GGUF file"):
        loaders.load_text_model(cut, config_dir, "text_encoder_2", torch.float32, "T5-XXL text encoder")


def test_chroma_finds_a_gguf_t5_in_text_encoders_and_equals_diffusers(tmp_path):
    """Chroma (T5 only, with its attention mask; real CFG with a negative prompt) from
    split files whose T5 is the Q8_0 GGUF, found in text_encoders/ by its tensors beside
    a GGUF of another architecture."""
    from diffusers import ChromaPipeline, FlowMatchEulerDiscreteScheduler

    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    components = flux_files.tiny_chroma_components(seed=8)
    components["text_encoder"] = text_encoder_files.tiny_t5(seed=9)
    models = tmp_path / "models"
    meant = text_encoder_files.write_t5_gguf(
        models / "clip" / "t5-v1_1-xxl-encoder-Q8_0.gguf", components["text_encoder"], "Q8_0"
    )
    text_encoder_files.write_other_gguf(models / "clip" / "a-llama.gguf")
    vae = components["vae"]
    vae_state = tiny_models.vae_to_ldm(vae.state_dict(), len(vae.config.block_out_channels))
    tiny_models.write_single_file(
        models / "vae" / "ae.safetensors",
        {k.removeprefix("first_stage_model."): v for k, v in vae_state.items()},
    )
    bfl = {
        "model.diffusion_model." + k: v for k, v in flux_files.flux_to_bfl(components["transformer"]).items()
    }
    tiny_models.write_single_file(models / "diffusion_models" / "chroma-split.safetensors", bfl)
    config_folder(components, ChromaPipeline, models / "diffusion_models" / "chroma-split.config")
    host = Host(Settings(data_dir=tmp_path / "data", models_dir=models, safe_mode=True, device="cpu")).start()
    try:
        request = GenerationRequest(
            prompt=PROMPT, negative_prompt="blurry", seed=SEED, steps=STEPS, width=SIZE, height=SIZE,
            model="chroma-split", sampler="Euler", cfg_scale=3.0, save_images=False,
        )  # fmt: skip
        ours = np.asarray(Engine(host).generate(request).images[0], dtype=np.float32) / 255.0
    finally:
        host.stop()
    t5 = text_encoder_files.with_weights(components["text_encoder"], meant)
    pipe = ChromaPipeline(
        **{
            **components,
            "text_encoder": t5,
            "scheduler": FlowMatchEulerDiscreteScheduler.from_config(components["scheduler"].config),
        }
    )
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        PROMPT, negative_prompt="blurry", guidance_scale=3.0, num_inference_steps=STEPS, height=SIZE, width=SIZE,
        output_type="np", generator=torch.Generator("cpu").manual_seed(SEED), max_sequence_length=512,
    ).images[0]  # fmt: skip
    assert np.abs(ours - expected).max() <= TOLERANCE
