"""A queued job cancelled while an ``/sdapi/v1/txt2img`` caller waits for it (issue #23,
point 7): the caller gets A1111's error shape with a 409, not a 500."""

from __future__ import annotations

import threading
import time

from tests.api.test_native_api import LONG, SMALL, wait_for_status, wait_until_sampling


def test_a_cancelled_queued_job_answers_the_waiting_a1111_caller(easel):
    answers: dict = {}
    with easel.client() as client:
        blocker = client.post("/api/v1/jobs", json={"prompt": "blocker", **LONG}).json()["id"]
        wait_until_sampling(client, blocker)
        queued_before = {
            j["id"] for j in client.get("/api/v1/jobs", params={"status": ["queued"]}).json()["jobs"]
        }

        def call() -> None:
            with easel.client() as waiting:
                answers["response"] = waiting.post("/sdapi/v1/txt2img", json={"prompt": "waits", **SMALL})

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 30
        while True:
            queued = client.get("/api/v1/jobs", params={"status": ["queued"]}).json()["jobs"]
            new = [j["id"] for j in queued if j["id"] not in queued_before]
            if new:
                break
            assert time.monotonic() < deadline, "the txt2img job never appeared in the queue"
            time.sleep(0.05)
        [job_id] = new
        assert client.delete(f"/api/v1/jobs/{job_id}").json()["status"] == "cancelled"
        caller.join(timeout=60)
        assert not caller.is_alive(), "the txt2img caller is still waiting"
        client.delete(f"/api/v1/jobs/{blocker}")
        wait_for_status(client, blocker, {"interrupted", "done", "failed"})

    response = answers["response"]
    assert response.status_code == 409, response.text
    body = response.json()
    assert {"error", "detail", "body", "errors"} <= set(body)  # A1111's api error fields
    assert body["error"] == "JobCancelled" and job_id in body["detail"] and body["job_id"] == job_id
