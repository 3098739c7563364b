"""``--result-images db`` on real processes: an API node (``easel serve --workers 0``) and
one ``easel worker`` with SEPARATE data folders, so no file is shared; the only way an
image reaches the API node is its bytes in the queue (SQLite, then PostgreSQL).

Checked against the worker's own files: the API node serves each image byte for byte as
the worker wrote it, writes it once into its own outputs folder under the same name and
serves the second request from that file; /sdapi/v1/txt2img's base64 images and the
WebUI's job client get the same bytes.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.jobs.open_queue import open_queue
from core.jobs.service import JobService
from tests.api.conftest import TINY_MODEL, free_port, wait_healthy
from ui.job_client import JobClient

pytestmark = pytest.mark.slow

QUICK = {"prompt": "a red circle", "steps": 2, "width": 64, "height": 64, "model": TINY_MODEL}


def _env() -> dict[str, str]:
    # the setting by its flag below; the variable must not leak in from the caller
    env = {k: v for k, v in os.environ.items() if k != "EASEL_RESULT_IMAGES"}
    return {**env, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


@dataclass
class Nodes:
    url: str
    api_data: Path
    worker_data: Path
    api_log: Path
    worker_log: Path
    client: httpx.Client

    def wait_done(self, job_id: str, timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.client.get(f"/api/v1/jobs/{job_id}").json()
            if job["status"] not in ("queued", "running"):
                return job
            time.sleep(0.2)
        raise AssertionError(self.logs())

    def logs(self) -> str:
        return f"== api\n{self.api_log.read_text()[-3000:]}\n== worker\n{self.worker_log.read_text()[-3000:]}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def nodes(request, tmp_path_factory, tiny_models_dir) -> Iterator[Nodes]:
    root = tmp_path_factory.mktemp(f"result-images-{request.param}")
    api_data, worker_data = root / "api-data", root / "worker-data"
    if request.param == "sqlite":
        # a file both processes open (one machine); the data folders stay apart
        url = f"sqlite:///{root / 'queue.db'}"
    else:
        url = request.getfixturevalue("pg_cluster").new_database()
    common = ["--queue", url, "--safe-mode", "--models-dir", str(tiny_models_dir), "--result-images", "db"]
    port = free_port()
    api_log, worker_log = root / "api.log", root / "worker.log"
    api = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--workers", "0", "--no-ui", "--port", str(port),
         "--data-dir", str(api_data), *common],
        stdout=api_log.open("ab"), stderr=subprocess.STDOUT, env=_env(),
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "core", "worker", "--device", "cpu", "--data-dir", str(worker_data), *common],
        stdout=worker_log.open("ab"), stderr=subprocess.STDOUT, env=_env(),
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=240)
    try:
        wait_healthy(client, api, api_log)
        yield Nodes(url, api_data, worker_data, api_log, worker_log, client)
    finally:
        for process in (worker, api):
            if process.poll() is None:
                process.kill()
                process.wait(10)
        client.close()


def test_the_api_node_serves_a_remote_workers_images_from_the_queue(nodes):
    answer = nodes.client.post("/api/v1/jobs", json={**QUICK, "batch_size": 2, "seed": 11})
    assert answer.status_code == 202, answer.text
    job = nodes.wait_done(answer.json()["id"])
    assert job["status"] == "done", (job, nodes.logs())
    files = job["result"]["files"]
    assert len(files) == 2 and all(files), job["result"]
    assert "stored_images" not in job["result"]  # the API shows names, not the queue's bookkeeping
    for index, name in enumerate(files):
        written = nodes.worker_data / "outputs" / name  # the worker's own file
        assert written.is_file()
        mine = nodes.api_data / "outputs" / name
        assert not mine.exists()  # nothing shared: the API node has no copy yet
        first = nodes.client.get(f"/api/v1/jobs/{job['id']}/images/{index}")
        assert first.status_code == 200 and first.headers["content-type"] == "image/png"
        assert first.content == written.read_bytes()  # byte-identical, infotext included
        assert b"parameters" in first.content
        assert mine.read_bytes() == written.read_bytes()  # written under the same name
        stamp = mine.stat().st_mtime_ns
        second = nodes.client.get(f"/api/v1/jobs/{job['id']}/images/{index}")
        assert second.content == written.read_bytes()
        assert mine.stat().st_mtime_ns == stamp  # served from the file, not written again
    # each image came from the queue once; the second requests were served from disk
    assert nodes.api_log.read_text().count(f"job {job['id']}: image") == 2, nodes.logs()
    assert not [p for p in (nodes.api_data / "outputs").rglob(".tmp-*")]


def test_second_request_needs_no_bytes_in_the_queue(nodes):
    """The second request is served from the API node's file: with the stored bytes
    deleted from the database after the first, it still answers with the image."""
    job_id = nodes.client.post("/api/v1/jobs", json={**QUICK, "seed": 12}).json()["id"]
    job = nodes.wait_done(job_id)
    written = (nodes.worker_data / "outputs" / job["result"]["files"][0]).read_bytes()
    assert nodes.client.get(f"/api/v1/jobs/{job_id}/images/0").content == written
    queue = open_queue(nodes.url)
    try:
        assert queue.result_image(job_id, 0) == written  # what the worker stored
        _delete_stored_bytes(queue, job_id)
        assert queue.result_image(job_id, 0) is None
    finally:
        queue.close()
    again = nodes.client.get(f"/api/v1/jobs/{job_id}/images/0")
    assert again.status_code == 200 and again.content == written


@pytest.mark.parametrize("save_images", [True, False])
def test_sdapi_txt2img_answers_with_the_workers_bytes(nodes, save_images):
    """Saved images go to the outputs folder; unsaved ones (A1111's default) to the
    transient folder of each node: either way the base64 is the worker's file."""
    body = {"prompt": "a blue square", "steps": 2, "width": 64, "height": 64, "seed": 13}
    answer = nodes.client.post("/sdapi/v1/txt2img", json={**body, "save_images": save_images})
    assert answer.status_code == 200, (answer.text, nodes.logs())
    (image,) = answer.json()["images"]
    (newest,) = nodes.client.get("/api/v1/jobs", params={"limit": 1}).json()["jobs"]
    name = newest["result"]["files"][0]
    folder = Path("outputs") if save_images else Path(".easel") / "transient"
    assert base64.b64decode(image) == (nodes.worker_data / folder / name).read_bytes()
    assert (nodes.api_data / folder / name).read_bytes() == base64.b64decode(image)


def test_the_webui_job_client_gets_the_images_on_its_own_node(nodes, tmp_path):
    """The WebUI reads results through JobClient: on a node without the files, the
    paths it shows are this node's copies, written from the queue."""
    job_id = nodes.client.post("/api/v1/jobs", json={**QUICK, "seed": 14}).json()["id"]
    job = nodes.wait_done(job_id)
    queue = open_queue(nodes.url)
    service = JobService(
        queue, lambda *a, **k: None, transient_dir=tmp_path / ".easel" / "transient",
        image_roots=(tmp_path / "outputs",),
    )  # fmt: skip
    try:
        snapshot = JobClient(service).snapshot(job_id)
        (path,) = JobClient.result_paths(snapshot.result)
        name = job["result"]["files"][0]
        assert Path(path) == (tmp_path / "outputs" / name).resolve()
        assert Path(path).read_bytes() == (nodes.worker_data / "outputs" / name).read_bytes()
    finally:
        queue.close()


def _delete_stored_bytes(queue, job_id: str) -> None:
    """Straight SQL on the real database: the queue has no call that drops a job's bytes."""
    if hasattr(queue, "db_path"):
        with queue._write() as conn:
            conn.execute("DELETE FROM job_images WHERE job_id = ?", (job_id,))
    else:
        with queue._tx() as cur:
            cur.execute("DELETE FROM easel_job_images WHERE job_id = %s", (job_id,))
