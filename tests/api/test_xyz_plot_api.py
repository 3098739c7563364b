"""The X/Y/Z plot over the real server (tests/api/conftest.py, tiny SD1.5): A1111's
``script_name``/``script_args`` on /sdapi/v1 (positional, A1111 1.10's axis indices),
the native API's named form, refusals naming the argument, progress per cell and cancel.

The reference for every cell is the same request generated alone (a plain txt2img):
the grid must hold exactly those pixels, at A1111's legend layout (x across, y down).
"""

from __future__ import annotations

import base64
import io
import json
import re
import time

import numpy as np
import pytest
from PIL import Image

from core.saving import parse_infotext
from tests.api.conftest import TINY_MODEL

BODY = {"prompt": "a red circle", "negative_prompt": "blurry", "steps": 3, "width": 64, "height": 64,
        "sampler": "Euler", "model": TINY_MODEL}  # fmt: skip
SDAPI_BODY = {**{k: v for k, v in BODY.items() if k not in ("model", "sampler")}, "sampler_name": "Euler"}


def a1111_args(x_type=1, x_values="", y_type=0, y_values="", z_type=0, z_values="", *, lone=False, sub_grids=False,
               keep_seeds=False, vary_x=False, margin=0):  # fmt: skip
    """A1111 1.10's script_args list, in its order."""
    return [x_type, x_values, [], y_type, y_values, [], z_type, z_values, [], True, lone, sub_grids, keep_seeds,
            vary_x, False, False, margin, False]  # fmt: skip


def decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def alone(client, seed: int, cfg: float) -> np.ndarray:
    response = client.post("/sdapi/v1/txt2img", json={**SDAPI_BODY, "seed": seed, "cfg_scale": cfg})
    assert response.status_code == 200, response.text
    return pixels(decode(response.json()["images"][0]))


@pytest.mark.slow
def test_sdapi_seed_by_cfg_plot_gives_a_labelled_grid_of_the_alone_images(easel):
    # x: Seed (index 1), y: CFG Scale (index 6) as A1111 clients send them
    body = {**SDAPI_BODY, "seed": 5, "cfg_scale": 7, "script_name": "x/y/z plot",
            "script_args": a1111_args(1, "11, 12", 6, "2, 9", lone=True)}  # fmt: skip
    with easel.client(timeout=300) as client:
        response = client.post("/sdapi/v1/txt2img", json=body)
        assert response.status_code == 200, response.text
        data = response.json()
        references = {(seed, cfg): alone(client, seed, cfg) for seed in (11, 12) for cfg in (2, 9)}
        listed = client.get("/sdapi/v1/scripts").json()
    assert "x/y/z plot" in listed["txt2img"] and "x/y/z plot" in listed["img2img"]
    info = json.loads(data["info"])
    assert len(data["images"]) == 5 and len(info["infotexts"]) == 5  # the grid, then 4 cells
    grid, cells = decode(data["images"][0]), [decode(b) for b in data["images"][1:]]
    # the cells in grid order (x fastest) are the same requests made alone, pixel for pixel
    order = [(11, 2), (12, 2), (11, 9), (12, 9)]
    for (seed, cfg), cell, text in zip(order, cells, info["infotexts"][1:], strict=True):
        assert np.array_equal(pixels(cell), references[(seed, cfg)]), (seed, cfg)
        params = parse_infotext(text)
        assert (params["Seed"], params["CFG scale"]) == (str(seed), str(cfg))
        assert "Script" not in params  # a cell's infotext is the plain generation's
    assert references[(11, 2)].tolist() != references[(12, 2)].tolist()  # the axes matter
    assert references[(11, 2)].tolist() != references[(11, 9)].tolist()
    # A1111's legend layout: row labels in a left margin 3/4 of a cell wide, column labels
    # in a band above; no margins between cells
    pad_left = 64 * 3 // 4
    pad_top = grid.height - 2 * 64
    assert grid.width == pad_left + 2 * 64 and 0 < pad_top < 64
    for (seed, cfg), cell in zip(order, cells, strict=True):
        col, row = (0 if seed == 11 else 1), (0 if cfg == 2 else 1)
        box = (pad_left + 64 * col, pad_top + 64 * row, pad_left + 64 * (col + 1), pad_top + 64 * (row + 1))
        assert np.array_equal(pixels(grid.crop(box)), pixels(cell)), (seed, cfg)
    band, margin = (
        pixels(grid.crop((pad_left, 0, grid.width, pad_top))),
        pixels(grid.crop((0, pad_top, pad_left, grid.height))),
    )
    assert (band < 128).any() and (margin < 128).any()  # text drawn: the labels
    assert (band[:, : band.shape[1] // 2] < 128).any() and (band[:, band.shape[1] // 2 :] < 128).any()
    grid_params = parse_infotext(info["infotexts"][0])
    assert grid_params["Script"] == "X/Y/Z plot"
    assert (grid_params["X Type"], grid_params["X Values"]) == ("Seed", "11, 12")
    assert (grid_params["Y Type"], grid_params["Y Values"]) == ("CFG Scale", "2, 9")
    assert grid_params["Fixed X Values"] == "11, 12" and grid_params["Seed"] == "11"


@pytest.mark.slow
def test_native_named_args_save_the_grid_as_a1111_names_it(easel):
    body = {**BODY, "seed": -1, "script_name": "X/Y/Z plot",
            "script_args": {"x_type": "Seed", "x_values": "-1, 7", "y_type": "Steps", "y_values": "2-3"}}  # fmt: skip
    with easel.client(timeout=300) as client:
        accepted = client.post("/api/v1/jobs", json=body)
        assert accepted.status_code == 202, accepted.text
        job = wait_done(client, accepted.json()["id"])
        assert job["status"] == "done", job
        result = job["result"]
        plot = result["results"]["xyz_plot"]
        # include_lone_images is off (A1111's default): the grid only, yet 4 cells saved
        assert len(job["images"]) == 1 and len(result["files"]) == 1
        assert re.fullmatch(r"txt2img-grids/\d{4}-\d\d-\d\d/xyz_grid-\d{4}-\d+\.png", result["files"][0])
        assert len(plot["cells"]) == 4 and all(len(c["paths"]) == 1 for c in plot["cells"])
        # -1 was drawn once per X value ("Fixed X Values"), shared down the Y axis
        drawn = plot["axes"]["x"]["values"]
        assert drawn[1] == 7 and drawn[0] != -1
        assert [c["seeds"][0] for c in plot["cells"]] == [drawn[0], 7, drawn[0], 7]
        assert plot["axes"]["y"]["values"] == [2, 3]
        grid_png = Image.open(io.BytesIO(client.get(job["images"][0]).content))
        grid_png.load()
    params = parse_infotext(grid_png.info["parameters"])
    assert params["Fixed X Values"] == f"{drawn[0]}, 7" and params["X Values"] == "-1, 7"
    assert result["files"][0].endswith(f"-{drawn[0]}.png")  # the first cell's seed


def wait_done(client, job_id: str, timeout: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "interrupted", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_bad_plots_are_refused_naming_the_argument(easel):
    cases = [
        (a1111_args(13, "1, 2"), "script_args.x_type"),  # Sigma Churn: no such setting
        (a1111_args(7, "blue, green"), "script_args.x_values"),  # Prompt S/R: "blue" not in the prompt
        (a1111_args(9, "Euler, No Such Sampler"), "script_args.x_values"),
        (a1111_args(1, "1, two"), "script_args.x_values"),
        (a1111_args(1, "1", margin=9000), "script_args.margin_size"),
        ([*a1111_args(1, "1"), True, "extra"], "script_args"),
    ]
    with easel.client() as client:
        for args, field in cases:
            response = client.post(
                "/sdapi/v1/txt2img", json={**SDAPI_BODY, "script_name": "X/Y/Z plot", "script_args": args}
            )
            assert response.status_code == 422, (args, response.text)
            assert field in response.text, (args, response.text)
        assert client.get("/api/v1/jobs", params={"status": "queued"}).json()["jobs"] == []


@pytest.mark.slow
def test_progress_counts_cells_and_interrupt_stops_the_plot(easel):
    body = {**BODY, "steps": 40, "seed": 1, "script_name": "X/Y/Z plot",
            "script_args": {"x_type": "Seed", "x_values": "1-4", "y_type": "CFG Scale", "y_values": "2, 4"}}  # fmt: skip
    with easel.client(timeout=60) as client:
        job_id = client.post("/api/v1/jobs", json=body).json()["id"]
        seen: set[tuple[int, int]] = set()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            live = client.get(f"/api/v1/jobs/{job_id}").json().get("live") or {}
            if live.get("step"):  # a step was reported (at the start: no cell yet)
                seen.add((live["batch_index"], live["batch_count"]))
            if any(index >= 1 for index, _ in seen):
                break
            time.sleep(0.05)
        assert {count for _, count in seen} == {8}  # A1111's job_count: one per cell
        assert client.post("/sdapi/v1/interrupt").status_code == 200
        job = wait_done(client, job_id)
    assert job["status"] == "interrupted"
    made = [
        c for c in (job["result"] or {}).get("results", {}).get("xyz_plot", {}).get("cells", []) if c["paths"]
    ]
    assert 1 <= len(made) < 8
