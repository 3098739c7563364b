"""`python -m bench` runs on the CPU and prints its JSON (a smoke test: no timing asserted).

One workload runs as `python -m bench` in its own process (the command people type); the
others call the same ``main`` in this process, which spares a Python + torch start-up each.
The LoRA-switch and memory-mode runs repeat what tests/test_lora.py and
tests/test_memory_modes.py check in-process, so they are marked slow.
"""

import json
import subprocess
import sys

import pytest


def bench_report(args: list[str], capsys, in_process: bool = True) -> dict:
    """The JSON line ``python -m bench ARGS`` prints last."""
    if in_process:
        from bench.__main__ import main

        assert main(args) == 0
        out = capsys.readouterr().out
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        out = proc.stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("workload", ["demo", "tiny-sd15", "sdxl", "zimage", "flux", "qwen_image"])
def test_bench_prints_the_comparison_json(workload, capsys):
    args = [workload, "--repeat", "1", "--steps", "2", "--batch", "1"]
    report = bench_report(args, capsys, in_process=workload != "tiny-sd15")
    for key in ("workload", "device", "easel_s_per_image", "diffusers_s_per_image",
                "ratio_vs_diffusers", "peak_mem_gib", "warmup_s", "denoiser_gflops_per_image",
                "acceleration"):  # fmt: skip
        assert key in report
    assert report["workload"] == workload and report["steps"] == 2
    assert report["easel_s_per_image"] > 0 and report["diffusers_s_per_image"] > 0
    assert report["denoiser_gflops_per_image"] > 0
    # same weights, sampler and seeds: the images must agree
    assert report["max_pixel_diff_vs_diffusers"] <= 2


@pytest.mark.slow
def test_bench_lora_switch_prints_switch_costs(capsys):
    report = bench_report(["lora-switch", "--steps", "2"], capsys)
    demo = report["demo"]
    assert demo["model"] == "easel-demo" and demo["switch_ms"] > 0
    assert demo["base_model_loads_during_switching"] == 0
    assert demo["lora_file_reads"] == 2  # each LoRA read once, then only switched
    for key in ("request_s_switching", "request_s_same_lora", "request_s_no_lora", "all_off_ms"):
        assert demo[key] > 0
    assert report["sdxl"].startswith("skipped") or report["sdxl"]["switch_ms"] > 0


def test_sdxl_switch_harness_runs_on_a_tiny_sdxl_unet(tiny_sdxl_dir):
    from diffusers import UNet2DConditionModel

    from bench.lora_switch import sdxl_switch

    report = sdxl_switch("cpu", dict(UNet2DConditionModel.load_config(tiny_sdxl_dir / "unet")), rank=4)
    assert report["switch_ms"] > 0 and len(report["first_load_ms"]) == 2
    assert report["lora_params"] > 0 and report["unet_step_ms_cfg_batch2"] > 0


@pytest.mark.slow
def test_bench_memory_modes_runs_every_mode(capsys):
    report = bench_report(["memory-modes", "--workload", "sd15", "--steps", "2", "--repeat", "1"], capsys)
    modes = report["modes"]
    assert list(modes) == ["auto", "full", "tiled-vae", "model-offload", "sequential-offload"]
    assert modes["auto"]["mode_used"] == "full"  # the CPU
    for mode, row in modes.items():
        assert row["s_per_image"] > 0 and row["max_pixel_diff_vs_auto"] == 0, mode
        assert mode == "auto" or row["mode_used"] == mode


@pytest.mark.slow
def test_bench_scale_prints_images_per_minute(capsys):
    # its worker processes are the point: they start as `easel worker` processes anyway
    report = bench_report(["scale", "--workers", "1", "--jobs", "2", "--steps", "2"], capsys)
    (result,) = report["results"]
    assert result["workers"] == 1 and result["jobs"] == 2 and result["images_per_min"] > 0
    assert result["jobs_per_worker_incl_warmup"] == [3]  # the warm-up job and the two timed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("workload", "cache", "extra"),
    [("demo", "deepcache:2", ["--judge-prompts", "2"]), ("zimage", "taylorseer:2", [])],
)
def test_bench_cache_prints_savings_and_quality(workload, cache, extra):
    proc = subprocess.run(
        [sys.executable, "-m", "bench", workload, "--cache", cache, "--repeat", "1", "--steps", "6",
         "--batch", "1", *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["cache"] == cache.replace(":", " ")
    assert report["denoiser_calls"] == 6 and report["full_calls"] < 6
    assert report["calls_saved"] == 6 - report["full_calls"]
    assert report["ratio_vs_uncached"] > 0 and report["ratio_vs_diffusers"] > 0
    assert report["psnr_db"] >= 20 and 0.5 <= report["ssim"] <= 1.0
    if workload == "demo":
        for side in ("judge_uncached", "judge_cached"):
            assert report[side]["n"] == 2 and 0 <= report[side]["all"] <= 1
