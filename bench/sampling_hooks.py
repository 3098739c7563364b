"""``python -m bench.sampling_hooks``: what the sampling-maths hooks cost per step.

Builds the tiny SD1.5 model (plugin_api.testing) in a scratch folder and times one
request (20 Euler steps, 64x64, CFG) through the real engine, median of ``--repeat`` runs,
in four set-ups: no extension at all (the loop's hook-free path), the bundled
``cfg_rescale`` and ``freeu`` loaded but not asked for (their hooks run and return at
once), CFG rescale on, FreeU on. Prints one JSON line; the per-step differences are the
hooks' cost on this device (on the tiny model a step is a few milliseconds, so the
overhead shows far more than it would next to a real UNet step).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

STEPS = 20


def _engine(root: Path, disabled: set[str]):
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host

    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(dir=root)), models_dir=root / "models", device="cpu",
        disabled_extensions=disabled,
    )  # fmt: skip
    return Engine(Host(settings).start())


def _median_s(engine, repeat: int, **extension_args) -> float:
    from plugin_api import GenerationRequest

    def once() -> float:
        request = GenerationRequest(
            prompt="a red circle", negative_prompt="blurry", seed=1, steps=STEPS, width=64, height=64,
            model="tiny-sd15", sampler="Euler", cfg_scale=7.0, save_images=False,
            extension_args=dict(extension_args),
        )  # fmt: skip
        started = time.perf_counter()
        engine.generate(request)
        return time.perf_counter() - started

    once()  # warm-up: model load, first-call allocations
    return statistics.median(once() for _ in range(repeat))


def run(repeat: int) -> dict[str, float]:
    import torch

    from core.config import BUNDLED_EXTENSION_NAMES
    from plugin_api.testing import make_tiny_sd15

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        make_tiny_sd15(root / "models" / "Stable-diffusion" / "tiny-sd15")
        everything = set(BUNDLED_EXTENSION_NAMES)
        bare = _engine(root, everything)
        loaded = _engine(root, everything - {"cfg_rescale", "freeu"})
        timings = {
            "no_extensions_s": _median_s(bare, repeat),
            "hooks_loaded_inactive_s": _median_s(loaded, repeat),
            "cfg_rescale_on_s": _median_s(loaded, repeat, cfg_rescale=0.7),
            "freeu_on_s": _median_s(loaded, repeat, freeu={"b1": 1.5, "b2": 1.6, "s1": 0.9, "s2": 0.2}),
        }
    base = timings["no_extensions_s"]
    report: dict[str, float] = {
        "steps": STEPS,
        "repeat": repeat,
        **{k: round(v, 4) for k, v in timings.items()},
    }
    for key in ("hooks_loaded_inactive_s", "cfg_rescale_on_s", "freeu_on_s"):
        report[key.replace("_s", "_ms_per_step_over_none")] = round((timings[key] - base) / STEPS * 1000, 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    print(json.dumps(run(parser.parse_args().repeat)))


if __name__ == "__main__":
    main()
