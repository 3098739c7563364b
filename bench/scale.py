"""``python -m bench scale --workers 1,2``: throughput (images per minute) of the shipped
demo model per number of ``easel worker`` processes on one SQLite queue.

For each count: an API node (``easel serve --workers 0``) and that many workers on a fresh
data folder; one warm-up job per worker (model load, first-call costs), then ``--jobs``
jobs submitted at once and timed from the first submission until the last is done.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from core.config import SHIPPED_MODELS_DIR


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench scale: timed out waiting for {what}")
        time.sleep(0.1)


def _run_count(workers: int, jobs: int, steps: int, device: str, scratch: Path) -> dict[str, Any]:
    import httpx

    data = scratch / f"workers-{workers}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    common = ["--data-dir", str(data), "--models-dir", str(SHIPPED_MODELS_DIR), "--safe-mode"]
    port = _free_port()
    log = (scratch / f"log-{workers}.txt").open("ab")
    api = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--workers", "0", "--no-ui", "--port", str(port), *common],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    worker = [sys.executable, "-m", "core", "worker", "--device", device, *common]
    procs = [subprocess.Popen(worker, stdout=log, stderr=subprocess.STDOUT, env=env) for _ in range(workers)]
    body = {"prompt": "a small green star at the top left, white background", "steps": steps, "seed": 1}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

            def healthy() -> bool:
                try:
                    return client.get("/api/v1/health").status_code == 200
                except httpx.TransportError:
                    return False

            _wait(healthy, 180, "the API node")
            _wait(lambda: len(client.get("/api/v1/workers").json()) == workers, 300, "the workers")

            def run(count: int) -> float:
                started = time.perf_counter()
                ids = [
                    client.post("/api/v1/jobs", json={**body, "seed": i}).json()["id"] for i in range(count)
                ]
                _wait(
                    lambda: all(client.get(f"/api/v1/jobs/{j}").json()["status"] == "done" for j in ids),
                    1800,
                    "the jobs",
                )
                return time.perf_counter() - started

            run(workers)  # warm-up: every worker loads the model once
            elapsed = run(jobs)
            per_worker = [w["jobs_done"] for w in client.get("/api/v1/workers").json()]
    finally:
        for process in [*procs, api]:
            process.terminate()
        for process in [*procs, api]:
            process.wait(60)
        log.close()
    return {
        "workers": workers,
        "jobs": jobs,
        "elapsed_s": round(elapsed, 2),
        "images_per_min": round(jobs / elapsed * 60, 1),
        "jobs_per_worker_incl_warmup": per_worker,
    }


def run_scale(counts: list[int], jobs: int, steps: int, device: str, scratch: str) -> dict[str, Any]:
    results = [_run_count(n, jobs, steps, device, Path(scratch)) for n in counts]
    return {
        "workload": "scale",
        "model": "easel-demo",
        "steps": steps,
        "device": device,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "results": results,
    }
