"""``python -m bench WORKLOAD --cache METHOD[:THRESHOLD]``: what a step cache saves and costs.

One process, one model: Easel uncached, Easel cached and diffusers' plain pipeline run
with the same sampler, seeds and settings, timed over ``--repeat`` alternating runs after
one warm-up each. Printed as one JSON line:

- ``denoiser_calls`` / ``full_calls`` / ``calls_saved``: counted by the cache (a call is
  "full" when the whole network ran);
- ``ratio_vs_uncached`` (cached s / uncached s, Easel both) and ``ratio_vs_diffusers``
  (cached Easel s / diffusers' plain pipeline s). diffusers has no DeepCache, and its
  Z-Image pipeline sets no cache context, without which its own cache hooks refuse to run,
  so diffusers is timed uncached;
- ``psnr_db`` (100: identical) and ``ssim`` of the cached images against the uncached ones
  (same seeds): the worst image of the batch, and ``*_per_image``;
- for the demo model, the demo judge's accuracy (colour, background, shape, position; all
  four right = ``all``) on its held-out prompts, cached and uncached.

No speed figure without its quality figure.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.workloads import Workload, _diffusers_guidance, _diffusers_pipeline, _models_dir, easel_request

IDENTICAL_DB = 100.0  # PSNR reported for identical images (JSON has no infinity)


def psnr_db(a: Any, b: Any) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mse = float(((x - y) ** 2).mean())
    return IDENTICAL_DB if mse == 0 else min(IDENTICAL_DB, float(10 * np.log10(255.0**2 / mse)))


def ssim(a: Any, b: Any) -> float:
    """Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03)
    over the RGB channels, on 0-255 images."""
    x = torch.tensor(np.asarray(a, np.float64)).permute(2, 0, 1).unsqueeze(1)
    y = torch.tensor(np.asarray(b, np.float64)).permute(2, 0, 1).unsqueeze(1)
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :])[None, None]

    def blur(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(t, window)

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    value = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(value.mean())


def _judge_accuracy(engine: Any, model_name: str, cache: str | None, count: int) -> dict[str, float]:
    """The demo judge on the held-out prompts, with the model's own settings (its easel.json)."""
    import sys

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from plugin_api import GenerationRequest
    from tools.demo_model.evaluate import KEYS, evaluate
    from tools.demo_model.scenes import held_out_prompts

    def generate(prompts: list[str], seeds: list[int]) -> list[Any]:
        # one request per prompt: each held-out prompt has its own seed
        return [
            engine.generate(
                GenerationRequest(prompt=p, seed=s, model=model_name, save_images=False, cache=cache)
            ).images[0]
            for p, s in zip(prompts, seeds, strict=True)
        ]

    scores = evaluate(generate_batch_fn=generate, prompts=held_out_prompts()[:count])
    rows = scores.pop("rows")
    prompts = held_out_prompts()[:count]
    scores["all"] = sum(
        all(r["got"][k] == p[k] for k in KEYS) for r, p in zip(rows, prompts, strict=True)
    ) / len(rows)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}


def run_cache(
    workload: Workload,
    cache: str,
    device: str,
    repeat: int,
    scratch: str,
    steps: int | None = None,
    batch: int | None = None,
    judge_prompts: int = 48,
) -> dict[str, Any]:
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host
    from core.models.manager import pick_device, pick_dtype
    from core.sampling.step_cache import parse_cache

    plan = parse_cache(cache, "--cache")
    dev = pick_device(device)
    dtype = pick_dtype(dev)
    size = workload.size(dev)
    steps = steps or size.steps
    batch = batch or size.batch
    models_dir, model_name = _models_dir(workload, dev, dtype, scratch)
    settings = Settings.from_env(data_dir=Path(scratch) / "data", models_dir=models_dir, device=device)
    engine = Engine(Host(settings).start())
    model = engine.models.get(model_name)
    pipe = _diffusers_pipeline(workload.family, model.path, dev, dtype)
    seed = 1

    def easel_run(cached: bool) -> Any:
        request = easel_request(workload, size, model_name, steps, batch, seed)
        request.cache = plan.as_request() if cached and plan is not None else None
        return engine.generate(request)

    def diffusers_run() -> list[Any]:
        generators = [torch.Generator("cpu").manual_seed(seed + i) for i in range(batch)]
        if workload.family == "zimage":
            generators = generators[0] if batch == 1 else generators
        with torch.inference_mode():
            return pipe(
                workload.prompt, num_inference_steps=steps, **_diffusers_guidance(workload),
                width=size.width, height=size.height, num_images_per_prompt=batch,
                generator=generators, output_type="pil",
            ).images  # fmt: skip

    def timed(fn: Any) -> tuple[float, Any]:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        out = fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0, out

    warm_plain, plain = timed(lambda: easel_run(False))
    warm_cached, cached = timed(lambda: easel_run(True))  # magcache measures its ratios here
    timed(diffusers_run)
    times: dict[str, list[float]] = {"plain": [], "cached": [], "diffusers": []}
    for _ in range(repeat):  # alternate, so background load hits every side alike
        times["plain"].append(timed(lambda: easel_run(False))[0])
        seconds, cached = timed(lambda: easel_run(True))
        times["cached"].append(seconds)
        times["diffusers"].append(timed(diffusers_run)[0])
    median = {side: float(np.median(values)) for side, values in times.items()}
    stats = cached.parameters.get("cache") or {}
    pairs = list(zip(cached.images, plain.images, strict=True))
    psnrs, ssims = [psnr_db(a, b) for a, b in pairs], [ssim(a, b) for a, b in pairs]
    report: dict[str, Any] = {
        "workload": workload.name,
        "cache": plan.label if plan else "off",
        "device": str(dev),
        "model": model_name,
        "size": f"{size.width}x{size.height}",
        "steps": steps,
        "batch": batch,
        "denoiser_calls": stats.get("calls"),
        "full_calls": stats.get("full_calls"),
        "calls_saved": stats.get("saved"),
        "easel_uncached_s": round(median["plain"], 4),
        "easel_cached_s": round(median["cached"], 4),
        "diffusers_s": round(median["diffusers"], 4),
        "ratio_vs_uncached": round(median["cached"] / median["plain"], 3),
        "ratio_vs_diffusers": round(median["cached"] / median["diffusers"], 3),
        "psnr_db": round(min(psnrs), 2),
        "ssim": round(min(ssims), 4),
        "psnr_db_per_image": [round(v, 2) for v in psnrs],
        "ssim_per_image": [round(v, 4) for v in ssims],
        "warmup_s": round(warm_cached, 3),
        "uncached_warmup_s": round(warm_plain, 3),
        "warnings": cached.warnings,
        "repeat": repeat,
    }
    if workload.model == "easel-demo" and judge_prompts > 0:
        report["judge_uncached"] = _judge_accuracy(engine, model_name, None, judge_prompts)
        report["judge_cached"] = _judge_accuracy(
            engine, model_name, plan.label if plan else None, judge_prompts
        )
    return report
