"""Workload definitions and the timing harness behind ``python -m bench``."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.config import SHIPPED_MODELS_DIR, Settings


@dataclass(frozen=True)
class Workload:
    name: str
    models_dir: Callable[[str], Path]  # scratch dir -> a models folder holding the model
    model: str
    width: int
    height: int
    steps: int
    cfg: float
    batch: int
    sampler: str = "Euler"
    prompt: str = "a red circle on a blue background"


def _shipped(_: str) -> Path:
    return SHIPPED_MODELS_DIR


def _tiny_sd15(scratch: str) -> Path:
    from plugin_api.testing import make_tiny_sd15

    root = Path(scratch) / "models"
    make_tiny_sd15(root / "Stable-diffusion" / "tiny-sd15")
    return root


WORKLOADS = {
    # the shipped demo model, as the README's main command runs it
    "demo": Workload("demo", _shipped, "easel-demo", 128, 128, 20, 7.0, 4),
    # a tiny SD1.5-shaped model: a CPU smoke test of the harness itself
    "tiny-sd15": Workload("tiny-sd15", _tiny_sd15, "tiny-sd15", 64, 64, 10, 7.0, 2),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _diffusers_pipeline(model: Any, sampler: str) -> Any:
    """A plain StableDiffusionPipeline on the very modules Easel loaded."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    if sampler != "Euler":
        raise ValueError("the harness compares with diffusers' Euler only")
    c = model.components
    scheduler = EulerDiscreteScheduler.from_config(c["scheduler"].config)
    pipe = StableDiffusionPipeline(
        vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
        scheduler=scheduler, safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def run_workload(
    workload: Workload,
    device: str,
    repeat: int,
    scratch: str,
    steps: int | None = None,
    batch: int | None = None,
) -> dict[str, Any]:
    from core.engine import Engine
    from core.host import Host
    from plugin_api import GenerationRequest

    steps = steps or workload.steps
    batch = batch or workload.batch
    settings = Settings.from_env(
        data_dir=Path(scratch) / "data", models_dir=workload.models_dir(scratch), device=device
    )
    host = Host(settings).start()
    engine = Engine(host)
    started = time.perf_counter()
    model = engine.models.get(workload.model)
    load_s = time.perf_counter() - started
    dev = torch.device(model.device)
    pipe = _diffusers_pipeline(model, workload.sampler)
    seed = 1

    def easel_run() -> list[Any]:
        request = GenerationRequest(
            prompt=workload.prompt, seed=seed, steps=steps, cfg_scale=workload.cfg,
            width=workload.width, height=workload.height, batch_size=batch,
            sampler=workload.sampler, model=workload.model, save_images=False,
        )  # fmt: skip
        return engine.generate(request).images

    def diffusers_run() -> list[Any]:
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(batch)]
        with torch.inference_mode():
            return pipe(
                workload.prompt, num_inference_steps=steps, guidance_scale=workload.cfg,
                width=workload.width, height=workload.height, num_images_per_prompt=batch,
                generator=generators, output_type="pil",
            ).images  # fmt: skip

    def timed(fn: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
        _sync(dev)
        t0 = time.perf_counter()
        images = fn()
        _sync(dev)
        return time.perf_counter() - t0, images

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    warm_easel, easel_images = timed(easel_run)
    warm_diffusers, diffusers_images = timed(diffusers_run)
    diffs = [
        np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max()
        for a, b in zip(easel_images, diffusers_images, strict=True)
    ]
    easel_times, diffusers_times = [], []
    for _ in range(repeat):  # alternate, so background load hits both sides alike
        easel_times.append(timed(easel_run)[0])
        diffusers_times.append(timed(diffusers_run)[0])
    easel_s, diffusers_s = float(np.median(easel_times)), float(np.median(diffusers_times))
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
    images = batch
    return {
        "workload": workload.name,
        "device": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "model": workload.model,
        "size": f"{workload.width}x{workload.height}",
        "steps": steps,
        "batch": batch,
        "cfg": workload.cfg,
        "sampler": workload.sampler,
        "easel_s_per_batch": round(easel_s, 4),
        "diffusers_s_per_batch": round(diffusers_s, 4),
        "easel_s_per_image": round(easel_s / images, 4),
        "diffusers_s_per_image": round(diffusers_s / images, 4),
        "easel_it_per_s": round(steps / easel_s, 2),
        "diffusers_it_per_s": round(steps / diffusers_s, 2),
        "ratio_vs_diffusers": round(easel_s / diffusers_s, 3),
        "max_pixel_diff_vs_diffusers": int(max(diffs)),
        "peak_mem_gib": None if peak is None else round(peak, 3),
        "warmup_s": round(warm_easel, 3),
        "diffusers_warmup_s": round(warm_diffusers, 3),
        "model_load_s": round(load_s, 3),
        "repeat": repeat,
        "torch": torch.__version__,
    }
