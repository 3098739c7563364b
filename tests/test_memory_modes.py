"""Memory modes (core/models/memory_modes.py, core/models/offload.py) on the CPU.

The planner is checked against the real SDXL component sizes (built on the meta device
from the shipped configs). The placements run the real engine on the tiny models of every
family: every mode must give the same image as ``full``, the offload modes must really keep
the weights away (meta placeholders, which fail loudly if something reads them outside a
hooked call) and put the original parameters back afterwards, and an out-of-memory error
retries in the next mode and says so.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.config import MODEL_CONFIGS_DIR, Settings
from core.engine import Engine
from core.errors import OutOfMemory
from core.models.memory_modes import MODES, choose_mode, estimate_needs, validate_mode
from plugin_api.types import GenerationRequest
from tests.lora_files import make_peft_lora

GIB = 1024**3


def request(model: str, **extra) -> GenerationRequest:
    fields = dict(prompt="a red circle", seed=4, steps=2, width=64, height=64, model=model, save_images=False)
    return GenerationRequest(**{**fields, **extra})


@pytest.fixture(scope="module")
def engines(make_host):
    """One engine per explicit memory mode (each with its own model instances)."""
    return {mode: Engine(make_host(memory_mode=mode)) for mode in MODES}


@pytest.fixture(scope="module")
def sdxl_weight_bytes() -> dict[str, int]:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = MODEL_CONFIGS_DIR / "sdxl"
    with torch.device("meta"):
        modules = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder")),
            "text_encoder_2": CLIPTextModelWithProjection(
                CLIPTextConfig.from_pretrained(folder / "text_encoder_2")
            ),
        }
    return {name: sum(p.numel() for p in m.parameters()) * 2 for name, m in modules.items()}  # bf16


@pytest.mark.parametrize(
    ("free_gib", "expected"),
    [(24, "full"), (10, "full"), (9, "tiled-vae"), (8, "model-offload"), (4, "sequential-offload")],
)
def test_planner_on_real_sdxl_sizes(sdxl_weight_bytes, free_gib, expected):
    assert 6.2 * GIB < sum(sdxl_weight_bytes.values()) < 6.7 * GIB  # SDXL in bf16: ~6.5 GiB
    needs = estimate_needs(
        sdxl_weight_bytes, "unet", width=1024, height=1024, batch_size=1, cfg=True, element_size=2
    )
    peaks = [needs.peak(mode) for mode in MODES]
    assert peaks == sorted(peaks, reverse=True)  # each mode needs less than the one before
    mode, why = choose_mode(needs, free_gib * GIB)
    assert mode == expected, why
    assert f"{free_gib:.1f} GiB" in why


def test_bigger_requests_need_lower_modes(sdxl_weight_bytes):
    def mode_for(**size):
        needs = estimate_needs(sdxl_weight_bytes, "unet", cfg=True, element_size=2, **size)
        return MODES.index(choose_mode(needs, 10 * GIB)[0])

    assert mode_for(width=1024, height=1024, batch_size=1) < mode_for(width=2048, height=2048, batch_size=4)


def test_mode_setting_is_checked():
    assert validate_mode("Model_Offload") == "model-offload"
    with pytest.raises(ValueError, match="EASEL_MEMORY_MODE"):
        validate_mode("lowvram")


def test_the_cli_passes_the_mode():
    from core.cli.main import build_parser, settings_from_args

    args = build_parser().parse_args(["generate", "a red circle", "--memory-mode", "sequential-offload"])
    assert settings_from_args(args).memory_mode == "sequential-offload"
    assert Settings.from_env().memory_mode == "auto"


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sdxl-file", "tiny-zimage"])
def test_every_mode_gives_the_full_mode_image(engines, model):
    images = {}
    for mode, engine in engines.items():
        result = engine.generate(request(model))
        assert result.parameters["memory_mode"] == mode
        assert not result.warnings
        images[mode] = np.asarray(result.images[0])
    for mode in MODES[1:]:
        assert np.array_equal(images[mode], images["full"]), mode


def test_auto_is_full_on_the_cpu(engine):
    assert engine.generate(request("tiny-sd15")).parameters["memory_mode"] == "full"


def parameter_devices(module: torch.nn.Module) -> set[str]:
    return {p.device.type for p in module.parameters()}


def test_sequential_offload_streams_the_weights(engines):
    engine = engines["sequential-offload"]
    model = engine.load_model("tiny-sd15")
    unet = model.components["unet"]
    originals = {name: p for name, p in unet.named_parameters()}
    seen = []

    def on_progress(event):
        if event.phase != "sampling":  # loading/encoding/decoding report too (progress phases)
            return
        # between denoiser calls, every weight of every component is a meta placeholder
        seen.append(set().union(*(parameter_devices(m) for m in model.modules().values())))

    engine.generate(request("tiny-sd15", steps=3), on_progress=on_progress)
    assert seen and all(devices == {"meta"} for devices in seen)
    # afterwards the original parameters are back, in CPU memory, and no hook is left
    assert all(p is originals[name] for name, p in unet.named_parameters())
    assert parameter_devices(unet) == {"cpu"}
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in unet.modules())


def test_model_offload_keeps_only_the_working_component(engines):
    engine = engines["model-offload"]
    model = engine.load_model("tiny-sdxl")
    seen = []

    def on_progress(event):
        if event.phase == "sampling":  # between the UNet's calls (the other phases report too)
            seen.append({name: parameter_devices(m) for name, m in model.modules().items()})

    engine.generate(request("tiny-sdxl", steps=2), on_progress=on_progress)
    assert seen
    for devices in seen:
        assert devices["unet"] == {"cpu"}  # the device of this run
        assert devices["text_encoder"] == devices["text_encoder_2"] == devices["vae"] == {"meta"}


def test_offload_modes_apply_loras(make_host, tmp_path, tiny_sd15_dir):
    (tmp_path / "Stable-diffusion").mkdir()
    (tmp_path / "Stable-diffusion" / "tiny-sd15").symlink_to(tiny_sd15_dir, target_is_directory=True)
    make_peft_lora(tiny_sd15_dir, tmp_path / "Lora" / "style.safetensors", seed=1)
    images = {}
    for mode in ("full", "sequential-offload", "model-offload"):
        engine = Engine(make_host(models_dir=tmp_path, memory_mode=mode))
        images[mode] = np.asarray(
            engine.generate(request("tiny-sd15", prompt="a circle <lora:style:1>")).images[0]
        )
    base = np.asarray(
        Engine(make_host(models_dir=tmp_path)).generate(request("tiny-sd15", prompt="a circle")).images[0]
    )
    assert not np.array_equal(images["full"], base)  # the LoRA did something
    assert np.array_equal(images["sequential-offload"], images["full"])
    assert np.array_equal(images["model-offload"], images["full"])


def failing(method, times: int):
    """``method`` raising a CUDA-style out-of-memory error the first ``times`` calls."""
    left = {"n": times}

    def wrapper(*args, **kwargs):
        if left["n"] > 0:
            left["n"] -= 1
            raise torch.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return method(*args, **kwargs)

    return wrapper


def test_decode_out_of_memory_steps_down_without_sampling_again(host):
    engine = Engine(host)  # its own model instance: the wrapped decode stays local
    model = engine.models.get("tiny-sd15")
    # the live preview's colour map is fitted with the VAE the first time: fit it now, so
    # the injected failures hit the decode of the image (the previews branch)
    engine.previews.approx(model, engine.models.hashes)
    vae = model.components["vae"]
    vae.decode = failing(vae.decode, 2)
    steps = []
    result = engine.generate(
        request("tiny-sd15"), on_progress=lambda e: e.phase == "sampling" and steps.append(e.step)
    )
    reference = Engine(host).generate(request("tiny-sd15"))
    assert result.warnings == [
        "out of memory in the vae phase in full mode: retried in tiled-vae mode",
        "out of memory in the vae phase in tiled-vae mode: retried in model-offload mode",
    ]
    assert result.parameters["memory_mode"] == "model-offload"
    assert steps == [1, 2]  # the decode was retried, not the sampling
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(reference.images[0]))


def test_sampling_out_of_memory_skips_vae_tiling(host):
    engine = Engine(host)
    unet = engine.models.get("tiny-sd15").components["unet"]
    unet.forward = failing(unet.forward, 1)
    result = engine.generate(request("tiny-sd15"))
    reference = Engine(host).generate(request("tiny-sd15"))
    assert result.warnings == [
        "out of memory in the denoiser phase in full mode: retried in model-offload mode"
    ]
    assert np.array_equal(np.asarray(result.images[0]), np.asarray(reference.images[0]))
    # the next generation plans afresh, in the mode the settings say
    assert engine.generate(request("tiny-sd15")).parameters["memory_mode"] == "full"


def test_out_of_memory_in_every_mode_is_a_clear_error(host):
    engine = Engine(host)
    model = engine.models.get("tiny-sd15")
    unet = model.components["unet"]
    unet.forward = failing(unet.forward, 99)
    with pytest.raises(OutOfMemory, match="denoiser phase even in sequential-offload mode"):
        engine.generate(request("tiny-sd15"))
    assert parameter_devices(unet) == {"cpu"}  # put back, usable again


def test_a_bad_mode_in_the_environment_is_one_clear_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "EASEL_MEMORY_MODE": "lowvram", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "core", "generate", "a red circle", "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("easel: error: EASEL_MEMORY_MODE")
    assert "Traceback" not in proc.stderr
