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

from bench.builders import real_size_folder, tiny_folder
from core.config import SHIPPED_MODELS_DIR, Settings


@dataclass(frozen=True)
class Size:
    width: int
    height: int
    steps: int
    batch: int


@dataclass(frozen=True)
class Workload:
    """One benchmark. ``cpu``/``cuda``: the size of the run on that device (the CPU runs
    the tiny configs or the demo model, a GPU the real architectures)."""

    name: str
    family: str
    cpu: Size
    cuda: Size
    cfg: float
    model: str = ""  # a shipped model; empty: built by bench/builders.py
    sampler: str = "Euler"
    prompt: str = "a red circle on a blue background"
    # a real negative prompt: with an empty one diffusers' SDXL uses zeros, Easel (as
    # A1111) the encoded empty prompt, and the images would differ for that reason alone
    negative_prompt: str = "blurry, low quality"
    # FLUX.1-dev's guidance embedding (Easel's distilled_cfg_scale, diffusers' guidance_scale)
    distilled_cfg: float | None = None

    def size(self, device: torch.device) -> Size:
        return self.cuda if device.type == "cuda" else self.cpu


WORKLOADS = {
    # the shipped demo model, as the README's main command runs it (batch of 4)
    "demo": Workload("demo", "sd15", Size(128, 128, 20, 4), Size(128, 128, 20, 4), 7.0, model="easel-demo"),
    # the GPU workloads (batch 1); on the CPU the same code on tiny configs
    "sd15": Workload("sd15", "sd15", Size(64, 64, 10, 1), Size(512, 512, 20, 1), 7.0),
    "sdxl": Workload("sdxl", "sdxl", Size(64, 64, 10, 1), Size(1024, 1024, 30, 1), 6.0),
    "zimage": Workload("zimage", "zimage", Size(64, 64, 9, 1), Size(1024, 1024, 9, 1), 1.0),
    # FLUX.1-dev at Easel's defaults: CFG 1 (no negative prompt: it would need true CFG),
    # Distilled CFG 3.5, 20 steps
    "flux": Workload(
        "flux",
        "flux",
        Size(64, 64, 10, 1),
        Size(1024, 1024, 20, 1),
        1.0,
        negative_prompt="",
        distilled_cfg=3.5,
    ),
    # Qwen-Image at Easel's defaults: true CFG 4 (two transformer passes a step), 30 steps
    "qwen_image": Workload("qwen_image", "qwen_image", Size(64, 64, 10, 1), Size(1328, 1328, 30, 1), 4.0),
    # kept for scripts written against the first harness: sd15 on tiny configs, batch 2
    "tiny-sd15": Workload("tiny-sd15", "sd15", Size(64, 64, 10, 2), Size(64, 64, 10, 2), 7.0),
}


def _models_dir(
    workload: Workload, device: torch.device, dtype: torch.dtype, scratch: str
) -> tuple[Path, str]:
    """(models folder, model name) for a workload."""
    if workload.model:
        return SHIPPED_MODELS_DIR, workload.model
    root = Path(scratch) / "models"
    if device.type == "cuda" and workload.name != "tiny-sd15":
        folder = real_size_folder(workload.family, root, device, dtype)
    else:
        folder = tiny_folder(workload.family, root)
    return root, folder.name


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def easel_request(
    workload: Workload, size: Size, model_name: str, steps: int, batch: int, seed: int = 1
) -> Any:
    """The request Easel runs for a workload (diffusers gets the same settings)."""
    from plugin_api import GenerationRequest

    # late_cfg_scale = cfg_scale: one scale throughout, as diffusers runs it; left empty, a
    # model's easel.json (the demo model recommends a late CFG) would fill in a second scale
    return GenerationRequest(
        prompt=workload.prompt, negative_prompt=workload.negative_prompt, seed=seed, steps=steps,
        cfg_scale=workload.cfg, late_cfg_scale=workload.cfg, width=size.width, height=size.height,
        batch_size=batch, sampler=workload.sampler, model=model_name, save_images=False,
        distilled_cfg_scale=workload.distilled_cfg,
    )  # fmt: skip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _diffusers_pipeline(family: str, folder: Path, device: torch.device, dtype: torch.dtype) -> Any:
    """The plain diffusers pipeline for the family, loaded separately from the same folder
    (its own modules: Easel's accelerated path changes its modules in place)."""
    import diffusers

    common = dict(torch_dtype=dtype, local_files_only=True)
    if family == "sd15":
        pipe = diffusers.StableDiffusionPipeline.from_pretrained(
            str(folder), safety_checker=None, feature_extractor=None, requires_safety_checker=False, **common
        )
    elif family == "sdxl":
        pipe = diffusers.StableDiffusionXLPipeline.from_pretrained(str(folder), **common)
    else:
        pipeline = {"zimage": "ZImagePipeline", "flux": "FluxPipeline", "qwen_image": "QwenImagePipeline"}
        pipe = getattr(diffusers, pipeline[family]).from_pretrained(str(folder), **common)
    if family in ("sd15", "sdxl"):  # Easel's "Euler" is diffusers' Euler on the model's config
        pipe.scheduler = diffusers.EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    # flow models: Easel's "Euler" is the model's own flow-matching Euler scheduler
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def _diffusers_guidance(workload: Workload) -> dict[str, Any]:
    """The pipeline arguments that say what Easel's CFG (and Distilled CFG) say."""
    if workload.family == "zimage":  # its pipeline counts guidance from 0 (no CFG); A1111's from 1
        return {"guidance_scale": workload.cfg - 1.0, "negative_prompt": workload.negative_prompt}
    if workload.family == "flux":  # CFG > 1 is true CFG; guidance_scale is the distilled one
        return {
            "true_cfg_scale": workload.cfg, "guidance_scale": workload.distilled_cfg,
            "negative_prompt": workload.negative_prompt or None,
        }  # fmt: skip
    if workload.family == "qwen_image":  # A1111's CFG scale is Qwen's true CFG scale
        return {"true_cfg_scale": workload.cfg, "negative_prompt": workload.negative_prompt}
    return {"guidance_scale": workload.cfg, "negative_prompt": workload.negative_prompt}


def _denoiser_flops(pipe: Any, run_one_step: Callable[[], Any]) -> int | None:
    """FLOPs of one denoiser call (the batched CFG input), counted by torch's FLOP
    counter on the inputs the pipeline really passes."""
    from torch.utils.flop_counter import FlopCounterMode

    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    captured: list[tuple[tuple, dict]] = []

    def grab(_module: Any, args: tuple, kwargs: dict) -> None:
        if not captured:
            captured.append((args, kwargs))

    handle = denoiser.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        run_one_step()
    finally:
        handle.remove()
    if not captured:
        return None
    args, kwargs = captured[0]
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        denoiser(*args, **kwargs)
    return int(counter.get_total_flops())


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
    from core.models.manager import pick_device, pick_dtype

    dev = pick_device(device)
    dtype = pick_dtype(dev)
    size = workload.size(dev)
    steps = steps or size.steps
    batch = batch or size.batch
    started = time.perf_counter()
    models_dir, model_name = _models_dir(workload, dev, dtype, scratch)
    build_s = time.perf_counter() - started
    settings = Settings.from_env(data_dir=Path(scratch) / "data", models_dir=models_dir, device=device)
    host = Host(settings).start()
    engine = Engine(host)
    started = time.perf_counter()
    model = engine.models.get(model_name)
    load_s = time.perf_counter() - started
    pipe = _diffusers_pipeline(workload.family, model.path, dev, dtype)
    seed = 1

    def easel_run(run_steps: int = steps) -> list[Any]:
        return engine.generate(easel_request(workload, size, model_name, run_steps, batch, seed)).images

    def diffusers_run(run_steps: int = steps) -> list[Any]:
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(batch)]
        if workload.family == "zimage":  # its pipeline takes one generator for the batch
            generators = generators[0] if batch == 1 else generators
        with torch.inference_mode():
            return pipe(
                workload.prompt, num_inference_steps=run_steps, **_diffusers_guidance(workload),
                width=size.width, height=size.height, num_images_per_prompt=batch,
                generator=generators, output_type="pil",
            ).images  # fmt: skip

    peaks = {"easel": 0.0, "diffusers": 0.0}

    def timed(side: str, fn: Callable[[], list[Any]]) -> tuple[float, list[Any]]:
        _sync(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        images = fn()
        _sync(dev)
        elapsed = time.perf_counter() - t0
        if dev.type == "cuda":
            peaks[side] = max(peaks[side], torch.cuda.max_memory_allocated(dev) / 2**30)
        return elapsed, images

    # the first run of each side includes compilation / kernel selection: the warm-up
    warm_easel, easel_images = timed("easel", easel_run)
    warm_diffusers, diffusers_images = timed("diffusers", diffusers_run)
    diffs = [
        np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
        for a, b in zip(easel_images, diffusers_images, strict=True)
    ]
    easel_times, diffusers_times = [], []
    for _ in range(repeat):  # alternate, so background load hits both sides alike
        easel_times.append(timed("easel", easel_run)[0])
        diffusers_times.append(timed("diffusers", diffusers_run)[0])
    easel_s, diffusers_s = float(np.median(easel_times)), float(np.median(diffusers_times))
    # two steps, though only the first call is counted: Qwen-Image's schedule (shift_terminal)
    # divides by zero on a one-step schedule and its image would be NaN (a numpy warning)
    flops_per_call = _denoiser_flops(pipe, lambda: diffusers_run(2))
    flops_per_image = flops_per_call * steps / batch if flops_per_call else None
    return {
        "workload": workload.name,
        "device": device_name(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "model": model_name,
        "weights": "shipped"
        if workload.model
        else ("random, real size" if dev.type == "cuda" else "random, tiny"),
        "size": f"{size.width}x{size.height}",
        "steps": steps,
        "batch": batch,
        "cfg": workload.cfg,
        "distilled_cfg": workload.distilled_cfg,
        "sampler": workload.sampler,
        "acceleration": model.acceleration,
        "easel_s_per_batch": round(easel_s, 4),
        "diffusers_s_per_batch": round(diffusers_s, 4),
        "easel_s_per_image": round(easel_s / batch, 4),
        "diffusers_s_per_image": round(diffusers_s / batch, 4),
        "easel_it_per_s": round(steps / easel_s, 2),
        "diffusers_it_per_s": round(steps / diffusers_s, 2),
        "ratio_vs_diffusers": round(easel_s / diffusers_s, 3),
        "max_pixel_diff_vs_diffusers": int(max(d.max() for d in diffs)),
        "mean_pixel_diff_vs_diffusers": round(float(np.mean([d.mean() for d in diffs])), 4),
        "denoiser_gflops_per_image": None if flops_per_image is None else round(flops_per_image / 1e9, 4),
        "easel_tflop_per_s": None
        if flops_per_image is None
        else round(flops_per_image / (easel_s / batch) / 1e12, 6),
        "peak_mem_gib": round(peaks["easel"], 3) if dev.type == "cuda" else None,
        "diffusers_peak_mem_gib": round(peaks["diffusers"], 3) if dev.type == "cuda" else None,
        "warmup_s": round(warm_easel, 3),
        "diffusers_warmup_s": round(warm_diffusers, 3),
        "model_load_s": round(load_s, 3),
        "build_s": round(build_s, 3),
        "repeat": repeat,
        "torch": torch.__version__,
    }
