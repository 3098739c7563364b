"""GET /api/v1/workers on the embedded server: its own worker thread is listed."""

from __future__ import annotations

import os
import time


def test_the_embedded_worker_is_listed(easel):
    with easel.client() as client:
        job = client.post("/api/v1/jobs", json={"prompt": "a dot", "steps": 2, "width": 64, "height": 64})
        client.get(f"/api/v1/jobs/{job.json()['id']}/events").raise_for_status()  # ends with the job
        # the worker counts the job just after it publishes the result: on a loaded machine
        # the listing can come first, so give it a moment
        deadline = time.monotonic() + 5
        while True:
            (worker,) = client.get("/api/v1/workers").json()
            if (worker["jobs_done"] >= 1 and worker["current_job"] is None) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert worker["in_process"] and worker["alive"] and worker["pid"] == os.getpid()
    assert worker["heartbeat_age_s"] == 0.0  # in this process: alive by definition
    assert worker["device"] == "cpu" and worker["current_job"] is None
    assert worker["loaded_model"] == easel.service.queue.get(job.json()["id"]).request["model"]
    assert worker["jobs_done"] >= 1
