"""Several workers as real processes: an API node (``easel serve --workers 0``) and two
``easel worker`` processes on one queue, SQLite and PostgreSQL, on a tiny model and the
shipped demo model.

What is killed is killed for real (SIGKILL, SIGTERM), and what is checked is read back
from the queue, the workers' logs and the outputs folder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from core.config import SHIPPED_MODELS_DIR
from core.jobs.open_queue import open_queue
from tests.api.conftest import TINY_MODEL, free_port, wait_healthy

pytestmark = pytest.mark.slow

LEASE_S = 3.0
DEMO_MODEL = "easel-demo"
QUICK = {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64}
# long enough on a shared 2-core CPU to be caught running (a few seconds)
LONG = {"prompt": "a long one", "steps": 60, "width": 128, "height": 128}


def _env() -> dict[str, str]:
    # one torch thread per process: three processes share two cores
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@dataclass
class Cluster:
    url: str
    data_dir: Path
    models_dir: Path
    logs: Path
    api: subprocess.Popen | None = None
    client: httpx.Client | None = None
    workers: dict[int, subprocess.Popen] = field(default_factory=dict)

    def start_worker(self) -> subprocess.Popen:
        log = self.logs / f"worker-{len(list(self.logs.glob('worker-*')))}.log"
        command = [
            sys.executable, "-m", "core", "worker", "--queue", self.url, "--device", "cpu", "--safe-mode",
            "--data-dir", str(self.data_dir), "--models-dir", str(self.models_dir), "--lease-s", str(LEASE_S),
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=_env())
        self.workers[process.pid] = process
        return process

    def live_workers(self) -> list[dict]:
        pids = {pid for pid, p in self.workers.items() if p.poll() is None}
        return [w for w in self.client.get("/api/v1/workers").json() if w["pid"] in pids and w["alive"]]

    def ensure_workers(self, count: int = 2, timeout: float = 180) -> list[dict]:
        for pid in [pid for pid, p in self.workers.items() if p.poll() is not None]:
            del self.workers[pid]
        while len(self.workers) < count:
            self.start_worker()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.live_workers()
            if len(seen) == count:
                return seen
            time.sleep(0.3)
        raise AssertionError(f"workers did not register:\n{self.log_text()[-4000:]}")

    def submit(self, **body: object) -> str:
        answer = self.client.post("/api/v1/jobs", json={**QUICK, "model": TINY_MODEL, **body})
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    def job(self, job_id: str) -> dict:
        return self.client.get(f"/api/v1/jobs/{job_id}").json()

    def wait_for(self, predicate, timeout: float = 240, what: str = "condition") -> object:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.log_text()[-4000:]}")

    def running_on(self, job_id: str) -> dict:
        """The worker that runs this job, once it does."""
        return self.wait_for(
            lambda: next((w for w in self.live_workers() if w["current_job"] == job_id), None),
            what=f"job {job_id} to run",
        )

    def log_text(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.logs.glob("*.log"))
        )

    def took(self) -> Counter:
        """How many times each job was taken, from the workers' logs."""
        text = "".join(p.read_text(errors="replace") for p in self.logs.glob("worker-*.log"))
        return Counter(re.findall(r"took job ([0-9a-f]{32})", text))

    def stop(self) -> None:
        for process in [*self.workers.values(), self.api]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
        if self.client is not None:
            self.client.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(request, tmp_path_factory, tiny_models_dir) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp(f"scale-{request.param}")
    data_dir, logs = root / "data", root / "logs"
    logs.mkdir()
    if request.param == "sqlite":
        url = f"sqlite:///{data_dir / 'shared-queue.db'}"
    else:
        url = request.getfixturevalue("pg_cluster").new_database()
    # the tiny models and the shipped demo model in one models folder (links, nothing copied)
    models_dir = root / "models"
    (models_dir / "Stable-diffusion").mkdir(parents=True)
    for model in (tiny_models_dir / "Stable-diffusion").iterdir():
        (models_dir / "Stable-diffusion" / model.name).symlink_to(model)
    demo = SHIPPED_MODELS_DIR / "Stable-diffusion" / DEMO_MODEL
    (models_dir / "Stable-diffusion" / DEMO_MODEL).symlink_to(demo)
    port = free_port()
    command = [
        sys.executable, "-m", "core", "serve", "--workers", "0", "--queue", url, "--no-ui", "--safe-mode",
        "--port", str(port), "--data-dir", str(data_dir), "--models-dir", str(models_dir),
        "--lease-s", str(LEASE_S),
    ]  # fmt: skip
    log = logs / "api.log"
    running = Cluster(url, data_dir, models_dir, logs)
    running.api = subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=_env())
    running.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        wait_healthy(running.client, running.api, log)
        running.ensure_workers(2)
        yield running
    finally:
        running.stop()


def test_progress_from_a_worker_reaches_the_api_nodes_sse(cluster):
    job_id = cluster.submit(**LONG)
    progress, result = [], None
    with cluster.client.stream("GET", f"/api/v1/jobs/{job_id}/events", timeout=240) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "progress":
                progress.append(json.loads(line[6:]))
            elif line.startswith("data: ") and event == "result":
                result = json.loads(line[6:])
                break
    assert result is not None and result["status"] == "done"
    assert progress, "no progress event reached the API node"
    fractions = [p["progress"] for p in progress]
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1
    if cluster.url.startswith("postgresql"):
        # LISTEN/NOTIFY: every step is sent; the subscriber may drop some when slow
        steps = [p["step"] for p in progress]
        assert len(set(steps)) >= 10 and max(steps) <= LONG["steps"], steps
        assert any(p["preview"] for p in progress)  # 128x128 JPEG previews fit in a notification


def test_cancel_reaches_a_job_on_another_worker_process(cluster):
    job_id = cluster.submit(**{**LONG, "steps": 150})
    cluster.running_on(job_id)
    cluster.wait_for(lambda: cluster.job(job_id)["progress"] > 0, what="a first step")
    asked = time.monotonic()
    assert cluster.client.delete(f"/api/v1/jobs/{job_id}").status_code == 200
    record = cluster.wait_for(
        lambda: (r := cluster.job(job_id))["status"] != "running" and r, timeout=30, what="the interrupt"
    )
    took = time.monotonic() - asked
    assert record["status"] == "interrupted" and record["progress"] < 1, record
    assert took < 10, took


def test_sdapi_interrupt_without_a_job_id_reaches_a_worker_process(cluster):
    """A1111 clients stop a generation with a bare POST /sdapi/v1/interrupt; here the API
    node runs no job itself (``--workers 0``): the job runs in an ``easel worker``."""
    with httpx.Client(base_url=cluster.client.base_url, timeout=240) as client:
        answer: dict = {}
        payload = {**LONG, "steps": 150, "override_settings": {"sd_model_checkpoint": TINY_MODEL}}
        thread = threading.Thread(
            target=lambda: answer.update(response=client.post("/sdapi/v1/txt2img", json=payload))
        )
        thread.start()
        job_id = cluster.wait_for(
            lambda: next((w["current_job"] for w in cluster.live_workers() if w["current_job"]), None),
            what="the txt2img job to run on a worker",
        )
        cluster.wait_for(lambda: cluster.job(job_id)["progress"] > 0, what="a first step")
        asked = time.monotonic()
        assert cluster.client.post("/sdapi/v1/interrupt").json() == {"interrupted": True}
        thread.join(60)
    took = time.monotonic() - asked
    assert cluster.job(job_id)["status"] == "interrupted" and took < 10, took
    # A1111 answers an interrupted txt2img with the images made so far (none here): a 200
    assert answer["response"].status_code == 200, answer["response"].text
    assert cluster.client.post("/sdapi/v1/interrupt").json() == {"interrupted": False}  # nothing runs


def test_two_workers_run_each_job_once_and_a_killed_workers_job_is_finished_by_the_other(cluster):
    workers = cluster.ensure_workers(2)
    first_took = cluster.took()
    victim = cluster.submit(**LONG, batch_count=2, seed=77)
    killed = cluster.running_on(victim)
    cluster.wait_for(lambda: cluster.job(victim)["progress"] > 0, what="the victim's first step")
    os.kill(killed["pid"], signal.SIGKILL)
    survivor = next(w for w in workers if w["pid"] != killed["pid"])
    # 19 more, 20 in all (issue #27): the demo model and a tiny one, alternating
    jobs = [
        cluster.submit(model=TINY_MODEL if i % 2 else DEMO_MODEL, seed=i, batch_size=1 + i % 2)
        for i in range(19)
    ]
    everything = [victim, *jobs]
    cluster.wait_for(
        lambda: all(cluster.job(j)["status"] in ("done", "failed") for j in everything),
        what="every job to finish",
    )
    records = {j: cluster.job(j) for j in everything}
    assert {j: r["status"] for j, r in records.items()} == dict.fromkeys(everything, "done")
    assert records[victim]["attempts"] == 2
    assert all(records[j]["attempts"] == 1 for j in jobs)
    queue = open_queue(cluster.url)
    try:
        assert queue.get(victim).worker_id == survivor["id"]
        assert queue.count(("running",)) == 0
    finally:
        queue.close()
    took = cluster.took() - first_took
    assert took[victim] == 2 and all(took[j] == 1 for j in jobs), took
    # every image once, under its job's name; nothing else (no half-written temp files)
    files = sorted(p for p in (cluster.data_dir / "outputs").rglob("*") if p.is_file())
    mine = [p for p in files if p.name.split("-")[0] in everything]
    expected = {victim: 2} | {j: 1 + i % 2 for i, j in enumerate(jobs)}  # images per job
    assert Counter(p.name.split("-")[0] for p in mine) == Counter(expected)
    for job_id, record in records.items():
        names = sorted(Path(f).name for f in record["result"]["files"])
        assert names == sorted(p.name for p in mine if p.name.startswith(job_id))
    assert not [p for p in files if p.name.startswith(".tmp-")]

    # the killed worker's row stays and turns stale once two leases pass without a
    # heartbeat (on a quiet machine the 20 jobs can finish sooner than that: wait for it)
    def listed() -> dict[int, dict]:
        return {w["pid"]: w for w in cluster.client.get("/api/v1/workers").json()}

    cluster.wait_for(
        lambda: listed()[killed["pid"]]["alive"] is False,
        timeout=10 * LEASE_S,
        what="the killed worker shown stale",
    )
    rows = listed()
    assert rows[killed["pid"]]["heartbeat_age_s"] >= 2 * LEASE_S
    assert rows[survivor["pid"]]["alive"] is True


def test_sigterm_drains_the_worker(cluster):
    workers = cluster.ensure_workers(2)
    job_id = cluster.submit(**LONG)
    draining = cluster.running_on(job_id)
    process = cluster.workers[draining["pid"]]
    process.send_signal(signal.SIGTERM)
    cluster.wait_for(lambda: process.poll() is not None, timeout=120, what="the drained worker to exit")
    assert process.returncode == 0
    record = cluster.job(job_id)
    assert record["status"] == "done" and record["attempts"] == 1, record
    queue = open_queue(cluster.url)
    try:
        assert queue.get(job_id).worker_id == draining["id"]  # finished, not handed over
        after = cluster.submit(seed=5)
        cluster.wait_for(lambda: cluster.job(after)["status"] == "done", what="the next job")
        other = next(w for w in workers if w["pid"] != draining["pid"])
        assert queue.get(after).worker_id == other["id"]
        assert draining["id"] not in {w.id for w in queue.workers()}  # left the registry
    finally:
        queue.close()


def test_serve_workers_n_starts_worker_processes_and_stops_them(tmp_path, tiny_models_dir):
    """`easel serve --workers 1`: the job runs in a child `easel worker` process, which
    the server drains and stops when it stops."""
    port, log = free_port(), tmp_path / "serve.log"
    command = [
        sys.executable, "-m", "core", "serve", "--workers", "1", "--no-ui", "--safe-mode",
        "--port", str(port), "--data-dir", str(tmp_path / "data"), "--models-dir", str(tiny_models_dir),
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=_env())
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_healthy(client, server, log)
            job_id = client.post("/api/v1/jobs", json={**QUICK, "model": TINY_MODEL}).json()["id"]
            deadline = time.monotonic() + 240
            while client.get(f"/api/v1/jobs/{job_id}").json()["status"] != "done":
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            (worker,) = client.get("/api/v1/workers").json()
            assert worker["pid"] != server.pid and not worker["in_process"]
            assert worker["loaded_model"] == TINY_MODEL and worker["jobs_done"] == 1
        server.send_signal(signal.SIGTERM)
        server.wait(90)
        with pytest.raises(ProcessLookupError):
            os.kill(worker["pid"], 0)  # the worker process is gone too
    finally:
        if server.poll() is None:
            server.kill()
