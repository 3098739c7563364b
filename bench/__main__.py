"""``python -m bench WORKLOAD [--device cpu|cuda]``: time Easel against diffusers.

Workloads: ``demo`` (the shipped model, batch of 4 at 128x128), ``sd15``, ``sdxl``,
``zimage``, ``flux`` (FLUX.1-dev) and ``qwen_image`` (on a GPU: the real architectures with
random weights, batch 1, at 512/1024/1024/1024/1328; on the CPU: the same code on tiny
configs), ``tiny-sd15``. Both sides run in this process on
the same weights: Easel through its model manager (with the accelerated path its settings
choose: ``EASEL_COMPILE`` & co.), diffusers' own pipeline loaded separately from the same
folder, with the same sampler, seeds and settings. The images are compared, then each side
is timed over ``--repeat`` alternating runs after one warm-up run (reported as
``warmup_s``: it includes compilation). The last line printed is one JSON object.

``python -m bench lora-switch`` instead times LoRA hot-swapping (see ``bench/lora_switch.py``),
``python -m bench memory-modes --workload sdxl`` every memory mode (``bench/memory_modes.py``),
``python -m bench scale --workers 1,2`` images per minute per number of worker processes
(``bench/scale.py``).

``python -m bench demo --cache deepcache:3`` (or ``zimage --cache fbcache:0.1``...) measures a
step cache instead: calls saved, time vs uncached Easel and diffusers, PSNR/SSIM vs the
uncached image and, on the demo model, the judge's held-out accuracy (``bench/cache.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.workloads import WORKLOADS, run_workload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=[*sorted(WORKLOADS), "lora-switch", "memory-modes", "scale"])
    parser.add_argument(
        "--workload",
        dest="workload_name",
        default="sd15",
        help="memory-modes: the workload to run in every mode",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side")
    parser.add_argument("--steps", type=int, help="override the workload's steps")
    parser.add_argument("--batch", type=int, help="override the workload's batch size")
    parser.add_argument("--out", help="also write the JSON to this file")
    parser.add_argument("--workers", default="1,2", help="scale: worker counts, comma-separated")
    parser.add_argument("--jobs", type=int, default=8, help="scale: timed jobs per worker count")
    parser.add_argument(
        "--cache", metavar="METHOD[:THRESHOLD]", help="measure this step cache against the uncached run"
    )
    parser.add_argument(
        "--judge-prompts", type=int, default=48, help="--cache on demo: held-out prompts to judge (0: none)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="easel-bench-") as scratch:
        if args.workload == "scale":
            from bench.scale import run_scale

            counts = [int(n) for n in args.workers.split(",") if n.strip()]
            report = run_scale(counts, args.jobs, args.steps or 20, args.device, scratch)
        elif args.workload == "lora-switch":
            from bench.lora_switch import run_lora_switch

            report = run_lora_switch(args.device, scratch, steps=args.steps)
        elif args.workload == "memory-modes":
            from bench.memory_modes import run_memory_modes

            report = run_memory_modes(args.workload_name, args.device, scratch, args.repeat, args.steps)
        elif args.cache:
            from bench.cache import run_cache

            report = run_cache(
                WORKLOADS[args.workload], args.cache, args.device, args.repeat, scratch,
                steps=args.steps, batch=args.batch, judge_prompts=args.judge_prompts,
            )  # fmt: skip
        else:
            report = run_workload(
                WORKLOADS[args.workload],
                args.device,
                args.repeat,
                scratch,
                steps=args.steps,
                batch=args.batch,
            )
    line = json.dumps(report)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(json.dumps(report, indent=2) + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
