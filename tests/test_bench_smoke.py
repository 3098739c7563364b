"""`python -m bench` runs on the CPU and prints its JSON (a smoke test: no timing asserted)."""

import json
import subprocess
import sys


def test_bench_prints_the_comparison_json():
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "tiny-sd15", "--repeat", "1", "--steps", "2", "--batch", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("workload", "device", "easel_s_per_image", "diffusers_s_per_image",
                "ratio_vs_diffusers", "peak_mem_gib", "warmup_s"):  # fmt: skip
        assert key in report
    assert report["easel_s_per_image"] > 0 and report["diffusers_s_per_image"] > 0
    # same components, sampler and seeds: the images must agree
    assert report["max_pixel_diff_vs_diffusers"] <= 2
