"""``python -m bench WORKLOAD [--device cpu|cuda]``: time Easel against diffusers.

``python -m bench lora-switch`` instead times LoRA hot-swapping (see ``bench/lora_switch.py``).

Both run in this process on the same components (Easel's model manager loads them; the
diffusers pipeline is assembled from the very same modules), with the same sampler,
seeds and settings. The images are compared, then each side is timed over ``--repeat``
alternating runs after one warm-up. The last line printed is one JSON object.
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
    parser.add_argument("workload", choices=[*sorted(WORKLOADS), "lora-switch"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per side")
    parser.add_argument("--steps", type=int, help="override the workload's steps")
    parser.add_argument("--batch", type=int, help="override the workload's batch size")
    parser.add_argument("--out", help="also write the JSON to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="easel-bench-") as scratch:
        if args.workload == "lora-switch":
            from bench.lora_switch import run_lora_switch

            report = run_lora_switch(args.device, scratch, steps=args.steps)
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
