"""The NaN guard (issue #23, point 9): a LoRA whose weights are NaN used to give an
all-black image reported "done". Through the native API the job now fails, and its error
names the LoRA; the same server still makes a normal image afterwards."""

from __future__ import annotations

import shutil
import time

import torch
from safetensors.torch import load_file, save_file

from tests.api.conftest import TINY_MODEL, serving
from tests.lora_files import make_peft_lora

SMALL = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2, "model": TINY_MODEL, "seed": 1}
NAN_LORA = "broken_nan"


def wait_finished(client, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled", "interrupted"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish; last {job['status']}")


def test_a_lora_with_nan_weights_fails_the_job_naming_it(tmp_path, tiny_sd15_dir):
    models = tmp_path / "models"
    shutil.copytree(tiny_sd15_dir, models / "Stable-diffusion" / TINY_MODEL)
    path = make_peft_lora(tiny_sd15_dir, models / "Lora" / f"{NAN_LORA}.safetensors", seed=3)
    # a real trainer's file whose up-projections went NaN (an fp16 overflow in training)
    state = {
        k: (torch.full_like(v, float("nan")) if "lora_B" in k else v) for k, v in load_file(path).items()
    }
    save_file(state, str(path))

    with serving(tmp_path / "data", models) as easel, easel.client() as client:
        body = {**SMALL, "extension_args": {"lora": {"loras": [{"name": NAN_LORA, "weight": 1.0}]}}}
        response = client.post("/api/v1/jobs", json=body)
        assert response.status_code == 202, response.text  # the file exists: valid request
        job = wait_finished(client, response.json()["id"])
        assert job["status"] == "failed", job
        assert "NaN" in job["error"] and NAN_LORA in job["error"], job["error"]
        assert not job["images"]  # no black image saved

        # the base model is untouched: the next request without the LoRA is a real image
        plain = client.post("/api/v1/jobs", json=SMALL).json()
        assert wait_finished(client, plain["id"])["status"] == "done"
