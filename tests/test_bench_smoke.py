"""`python -m bench` runs on the CPU and prints its JSON (a smoke test: no timing asserted)."""

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("workload", ["tiny-sd15", "sdxl", "zimage"])
def test_bench_prints_the_comparison_json(workload):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", workload, "--repeat", "1", "--steps", "2", "--batch", "1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("workload", "device", "easel_s_per_image", "diffusers_s_per_image",
                "ratio_vs_diffusers", "peak_mem_gib", "warmup_s", "denoiser_gflops_per_image",
                "acceleration"):  # fmt: skip
        assert key in report
    assert report["workload"] == workload and report["steps"] == 2
    assert report["easel_s_per_image"] > 0 and report["diffusers_s_per_image"] > 0
    assert report["denoiser_gflops_per_image"] > 0
    # same weights, sampler and seeds: the images must agree
    assert report["max_pixel_diff_vs_diffusers"] <= 2
