"""`easel serve` as a real subprocess, killed with SIGKILL in the middle of a generation
and started again: queued jobs survive, the running one is marked interrupted (not run
again), no partial image is left, and the database is intact. Also checks Basic auth,
which this server is started with."""

from __future__ import annotations

import signal
import sqlite3
import time

import httpx
from PIL import Image

from tests.api.conftest import TINY_MODEL, free_port, start_server_process, wait_healthy

AUTH = ("easel", "s3cret")
LONG = {"prompt": "long one", "width": 192, "height": 192, "steps": 150, "model": TINY_MODEL}


def test_sigkill_during_generation_then_restart(tmp_path, tiny_models_dir):
    data_dir, log, port = tmp_path / "data", tmp_path / "server.log", free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server_process(data_dir, tiny_models_dir, port, log, auth=AUTH)
    try:
        with httpx.Client(base_url=url, timeout=60, auth=AUTH) as client:
            wait_healthy(client, process, log)
            # auth is enforced on every route, and compared properly
            assert httpx.get(f"{url}/api/v1/health").status_code == 401
            assert httpx.get(f"{url}/sdapi/v1/progress", auth=("easel", "wrong")).status_code == 401
            assert httpx.get(f"{url}/docs", auth=("x", "s3cret")).status_code == 401
            for header in (
                "Basic !!!",
                "Bearer s3cret",
                "Basic " + "ZWFzZWw=",
            ):  # garbage, wrong scheme, no ":"
                assert httpx.get(f"{url}/api/v1/health", headers={"Authorization": header}).status_code == 401

            done = client.post(
                "/api/v1/jobs", json={"prompt": "finished first", "steps": 2, "width": 64, "height": 64}
            )
            done_id = done.json()["id"]
            while client.get(f"/api/v1/jobs/{done_id}").json()["status"] != "done":
                time.sleep(0.1)
            running_id = client.post("/api/v1/jobs", json=LONG).json()["id"]
            queued_ids = [
                client.post(
                    "/api/v1/jobs", json={"prompt": f"queued {i}", "steps": 2, "width": 64, "height": 64}
                ).json()["id"]
                for i in range(3)
            ]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                state = client.get("/sdapi/v1/progress").json()
                if state["current_task"] == running_id and state["state"]["sampling_step"] >= 2:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the long job never started sampling")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

        db_path = data_dir / ".easel" / "queue.db"
        with sqlite3.connect(db_path) as conn:  # as the crash left it (WAL replayed on open)
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            statuses = dict(conn.execute("SELECT id, status FROM jobs"))
        assert statuses[running_id] == "running" and statuses[done_id] == "done"
        assert all(statuses[i] == "queued" for i in queued_ids)
        outputs = data_dir / "outputs"
        assert not [p for p in outputs.rglob("*") if p.is_file() and p.name.startswith(".tmp")]

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server_process(data_dir, tiny_models_dir, port, log, auth=AUTH)
        with httpx.Client(base_url=url, timeout=60, auth=AUTH) as client:
            wait_healthy(client, process, log)
            lost = client.get(f"/api/v1/jobs/{running_id}").json()
            assert lost["status"] == "interrupted" and lost["attempts"] == 1
            assert "server stopped" in lost["error"]
            for job_id in queued_ids:  # kept, and now they run
                deadline = time.monotonic() + 120
                while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                assert job["status"] == "done" and job["attempts"] == 1
            assert client.get(f"/api/v1/jobs/{done_id}").json()["status"] == "done"
            time.sleep(0.5)
            assert client.get(f"/api/v1/jobs/{running_id}").json()["status"] == "interrupted"  # not re-run
            retried = client.post(f"/api/v1/jobs/{running_id}/retry")
            assert retried.status_code == 200
            client.delete(f"/api/v1/jobs/{running_id}")  # no need to run the long one here
        process.send_signal(signal.SIGTERM)  # a clean stop this time
        # uvicorn re-raises the signal once it has shut down
        assert process.wait(timeout=60) in (0, -signal.SIGTERM), log.read_text()[-3000:]
        assert "job worker stopped" in log.read_text()

        with sqlite3.connect(db_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        images = [p for p in outputs.rglob("*") if p.is_file()]
        assert len(images) == 4  # the first job and the three queued ones; nothing partial
        for path in images:
            assert not path.name.startswith(".tmp")
            with Image.open(path) as image:
                image.load()  # complete files only
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
