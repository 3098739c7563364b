"""A1111 1.10's sampler and schedule catalogue through /sdapi/v1/txt2img on the tiny
SD1.5, SDXL and Z-Image models, over HTTP against a real server.

Fast tests: every sampler with "Automatic", and every schedule type with Euler and
DPM++ 2M, on each family. The full sampler x schedule cross product is marked slow.
Each answer is checked for what a client reads: an image, the sampler and schedule
type in the infotext, and a warning wherever Easel ran something nearer than exact.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.api.conftest import decode, serving

# A1111 1.10's lists (modules/sd_samplers_kdiffusion.py, sd_samplers_timesteps.py,
# sd_samplers_lcm.py, sd_schedulers.py), written out here as the reference
A1111_SAMPLERS = [
    "DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE",
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart",
    "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM",
]  # fmt: skip
A1111_SCHEDULES = [
    "Automatic", "Uniform", "Karras", "Exponential", "Polyexponential", "SGM Uniform", "KL Optimal",
    "Align Your Steps", "Simple", "Normal", "DDIM", "Beta",
]  # fmt: skip
APPROXIMATED = {"DPM++ 2S a", "DPM fast", "DPM adaptive", "Restart", "DDIM CFG++"}
MODELS = {"tiny-sd15": 64, "tiny-sdxl": 64, "tiny-zimage": 64}  # model -> side (Z-Image: x16)


@pytest.fixture(scope="module")
def easel3(tmp_path_factory, tiny_sd15_dir: Path, tiny_sdxl_dir: Path, tiny_zimage_dir: Path):
    root = tmp_path_factory.mktemp("catalogue-models")
    for name, folder in (
        ("tiny-sd15", tiny_sd15_dir),
        ("tiny-sdxl", tiny_sdxl_dir),
        ("tiny-zimage", tiny_zimage_dir),
    ):
        shutil.copytree(folder, root / "Stable-diffusion" / name)
    with serving(tmp_path_factory.mktemp("catalogue-data"), root) as running:
        yield running


def txt2img(client, model: str, sampler: str, scheduler: str) -> tuple[dict, str]:
    side = MODELS[model]
    response = client.post(
        "/sdapi/v1/txt2img",
        json={
            "prompt": "a red circle", "steps": 2, "width": side, "height": side, "seed": 5, "cfg_scale": 2,
            "sampler_name": sampler, "scheduler": scheduler,
            "override_settings": {"sd_model_checkpoint": model},
        },
    )  # fmt: skip
    assert response.status_code == 200, f"{model} {sampler} {scheduler}: {response.text[:400]}"
    body = response.json()
    image = decode(body["images"][0])
    assert image.size == (side, side)
    info = json.loads(body["info"])
    return info, info["infotexts"][0]


def check_answer(model: str, sampler: str, scheduler: str, info: dict, infotext: str) -> None:
    warnings = " | ".join(info["warnings"])
    if model == "tiny-zimage":
        # flow matching: "Euler"/"Euler a" have flow forms; the others run Euler, warned
        if sampler not in ("Euler", "Euler a"):
            assert f"{sampler!r} has no flow-matching form" in warnings
            assert "Sampler: Euler," in infotext
        else:
            assert f"Sampler: {sampler}," in infotext
    else:
        assert f"Sampler: {sampler}," in infotext
        if sampler in APPROXIMATED:
            assert "nearest" in warnings and sampler in warnings
    assert f"Schedule type: {scheduler}," in infotext


def test_the_lists_are_a1111s(easel3):
    with easel3.client() as client:
        samplers = client.get("/sdapi/v1/samplers").json()
        schedulers = client.get("/sdapi/v1/schedulers").json()
    by_name = {s["name"]: s for s in samplers}
    assert [s for s in by_name if s in A1111_SAMPLERS] == A1111_SAMPLERS  # A1111's order
    assert by_name["DPM++ 2M"] == {
        "name": "DPM++ 2M",
        "aliases": ["k_dpmpp_2m"],
        "options": {"scheduler": "karras"},
    }
    assert by_name["DPM++ 2M SDE"]["options"]["scheduler"] == "exponential"
    assert by_name["Euler a"]["aliases"] == ["k_euler_a", "k_euler_ancestral"]
    for name in APPROXIMATED:  # said in the list, not only in each result
        assert "nearest" in by_name[name]["options"]["easel_nearest"]
    assert [s["label"] for s in schedulers] == A1111_SCHEDULES
    karras = next(s for s in schedulers if s["name"] == "karras")
    assert karras == {"name": "karras", "label": "Karras", "aliases": None, "default_rho": 7.0,
                      "need_inner_model": False}  # fmt: skip
    assert next(s for s in schedulers if s["name"] == "sgm_uniform")["aliases"] == ["SGMUniform"]


@pytest.mark.parametrize("model", list(MODELS))
def test_every_sampler_with_automatic(easel3, model):
    with easel3.client() as client:
        for sampler in A1111_SAMPLERS:
            info, infotext = txt2img(client, model, sampler, "Automatic")
            check_answer(model, sampler, "Automatic", info, infotext)


@pytest.mark.parametrize("model", list(MODELS))
def test_every_schedule_type(easel3, model):
    with easel3.client() as client:
        for sampler in ("Euler", "DPM++ 2M"):
            for scheduler in A1111_SCHEDULES:
                info, infotext = txt2img(client, model, sampler, scheduler)
                check_answer(model, sampler, scheduler, info, infotext)
                warnings = " | ".join(info["warnings"])
                if model == "tiny-zimage" and scheduler in ("KL Optimal", "Align Your Steps", "DDIM"):
                    assert "no flow-matching form" in warnings
                elif model != "tiny-zimage" and sampler == "Euler":
                    assert "Schedule type" not in warnings  # Euler makes every one exactly


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
def test_every_sampler_times_every_schedule(easel3, model):
    with easel3.client() as client:
        for sampler in A1111_SAMPLERS:
            for scheduler in A1111_SCHEDULES:
                info, infotext = txt2img(client, model, sampler, scheduler)
                check_answer(model, sampler, scheduler, info, infotext)


def test_names_clients_send(easel3, caplog):
    with easel3.client() as client:
        # an A1111 < 1.9 name with the schedule folded in, and an old k_ alias
        _, infotext = txt2img(client, "tiny-sd15", "DPM++ 2M SDE Karras", "Automatic")
        assert "Sampler: DPM++ 2M SDE, Schedule type: Karras," in infotext
        _, infotext = txt2img(client, "tiny-sd15", "k_dpmpp_2m", "karras")
        assert "Sampler: DPM++ 2M, Schedule type: Karras," in infotext
        body = {"prompt": "x", "steps": 2, "width": 64, "height": 64}
        with caplog.at_level("INFO", logger="easel.api"):
            missing = client.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "Heun++ Quantum"})
            assert (missing.status_code, missing.json()) == (404, {"detail": "Sampler not found"})
            missing = client.post("/sdapi/v1/txt2img", json={**body, "sampler_index": "Heun++ Quantum"})
            assert missing.status_code == 404
            unknown = client.post("/sdapi/v1/txt2img", json={**body, "scheduler": "sharp"})
            assert unknown.status_code == 422 and "scheduler" in unknown.json()["errors"]
            assert "Karras" in unknown.json()["errors"]  # the choices are named
    logged = caplog.text
    assert "'Heun++ Quantum' not found" in logged
    assert "unknown schedule type 'sharp'" in logged and "refused POST /sdapi/v1/txt2img (422)" in logged
