"""``python -m bench memory-modes [--workload sdxl] [--device cuda]``: every memory mode on one
workload: seconds per image, peak device memory, and whether the image matches ``full``.

The same components serve every mode (one model manager per mode, each loading the
folder the workload builds); each mode runs once to warm up and ``--repeat`` times timed.
The report also says which mode ``auto`` picks on this device for this request and why
(``core.models.memory_modes.choose_mode``). Peak memory is the CUDA allocator's peak
(``torch.cuda.max_memory_allocated``); on the CPU there is no device memory to report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.workloads import WORKLOADS, _models_dir, _sync, device_name, easel_request
from core.config import Settings
from core.models.memory_modes import MODES


def run_memory_modes(
    workload_name: str, device: str, scratch: str, repeat: int = 1, steps: int | None = None
) -> dict[str, Any]:
    from core.engine import Engine
    from core.host import Host
    from core.models.manager import pick_device, pick_dtype

    workload = WORKLOADS[workload_name]
    dev = pick_device(device)
    dtype = pick_dtype(dev)
    size = workload.size(dev)
    steps = steps or size.steps
    models_dir, model_name = _models_dir(workload, dev, dtype, scratch)
    request = easel_request(workload, size, model_name, steps, size.batch)
    modes: dict[str, Any] = {}
    reference = None
    for mode in ("auto", *MODES):
        settings = Settings.from_env(
            data_dir=Path(scratch) / "data", models_dir=models_dir, device=device, memory_mode=mode
        )
        engine = Engine(Host(settings).start())
        engine.generate(request)  # warm-up (and compilation, where the settings compile)
        times, peak = [], 0.0
        for _ in range(repeat):
            _sync(dev)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            t0 = time.perf_counter()
            result = engine.generate(request)
            _sync(dev)
            times.append(time.perf_counter() - t0)
            if dev.type == "cuda":
                peak = max(peak, torch.cuda.max_memory_allocated(dev) / 2**30)
        image = np.asarray(result.images[0], np.int16)
        reference = image if reference is None else reference
        modes[mode] = {
            "mode_used": result.parameters["memory_mode"],
            "s_per_image": round(float(np.median(times)) / size.batch, 4),
            "peak_mem_gib": round(peak, 3) if dev.type == "cuda" else None,
            "max_pixel_diff_vs_auto": int(np.abs(image - reference).max()),
            "warnings": result.warnings,
        }
        engine.models.unload()
        del engine
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return {
        "workload": workload.name,
        "device": device_name(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "size": f"{size.width}x{size.height}",
        "steps": steps,
        "batch": size.batch,
        "modes": modes,
        "torch": torch.__version__,
    }
