"""A job record whose image paths point outside the image folders is refused by both
APIs: the record comes from the queue, which another worker (another machine, a shared
database) writes, so a path in it is data, never a file to serve.

An API-only node (no worker of its own) is served; the test plays the remote worker on
the same SQLite queue file: it claims the job and finishes it with a path to a file that
lies outside the outputs (absolute, and ``..`` out of the outputs folder).
"""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import pytest

from core.jobs.record import DONE
from tests.api.conftest import TINY_MODEL, LiveServer, RunningEasel

ROGUE = "rogue-worker"
SECRET = b"\x89PNG\r\n\x1a\n-- a file outside the outputs, never to be served --"


@pytest.fixture(scope="module")
def api_node(tmp_path_factory, tiny_models_dir):
    from core.api.app import create_app
    from core.config import Settings
    from core.engine import Engine
    from core.host import Host
    from core.jobs import JobService, SqliteJobQueue

    settings = Settings.from_env(
        data_dir=tmp_path_factory.mktemp("api-node"), models_dir=tiny_models_dir, safe_mode=True
    )
    host = Host(settings).start()
    engine = Engine(host)
    queue = SqliteJobQueue(settings.state_dir / "queue.db")
    service = JobService.for_engine(engine, queue, settings=settings, shared=True)
    service.start(run_worker=False)
    live = LiveServer(create_app(host, service, engine=engine)).start()
    try:
        yield RunningEasel(live.url, host, engine, service, settings)
    finally:
        live.stop()
        service.stop()
        host.stop()


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("elsewhere") / "secret.png"
    path.write_bytes(SECRET)
    return path


def outside_paths(node: RunningEasel, secret: Path) -> list[str]:
    outputs = node.settings.outputs_dir
    hops = "/".join([".."] * len(outputs.resolve().parts))
    return [str(secret), f"{outputs}/{hops}{secret}"]  # absolute, and `..` out of outputs/


def finish_next_job_as_rogue(node: RunningEasel, paths: list[str], timeout: float = 30) -> str:
    from core.jobs import SqliteJobQueue

    queue = SqliteJobQueue(node.settings.state_dir / "queue.db")
    deadline = time.monotonic() + timeout
    try:
        while (record := queue.claim(ROGUE, lease_s=60)) is None:
            assert time.monotonic() < deadline, "no job was queued"
            time.sleep(0.05)
        result = {"paths": paths, "seeds": [1] * len(paths), "infotexts": ["x"] * len(paths), "saved": True}
        assert queue.finish(record.id, ROGUE, DONE, result=result) is not None
        return record.id
    finally:
        queue.close()


def test_native_api_refuses_a_job_image_outside_the_outputs(api_node, secret):
    paths = outside_paths(api_node, secret)
    with api_node.client() as client:
        job = client.post("/api/v1/jobs", json={"prompt": "p", "steps": 2, "model": TINY_MODEL})
        assert job.status_code in (200, 201, 202), job.text
        job_id = finish_next_job_as_rogue(api_node, paths)
        assert job_id == job.json()["id"]
        for index in range(len(paths)):
            response = client.get(f"/api/v1/jobs/{job_id}/images/{index}")
            assert response.status_code == 403, (index, response.status_code, response.text)
            assert SECRET not in response.content
            assert "outside the image folders" in response.text
        # the job itself stays readable, only the file is refused
        view = client.get(f"/api/v1/jobs/{job_id}")
        assert view.status_code == 200 and view.json()["status"] == DONE


def test_sdapi_refuses_a_job_image_outside_the_outputs(api_node, secret):
    responses = []

    def call() -> None:
        with api_node.client() as client:
            body = {"prompt": "p", "steps": 2, "width": 64, "height": 64}
            responses.append(client.post("/sdapi/v1/txt2img", json=body))

    caller = threading.Thread(target=call)
    caller.start()
    finish_next_job_as_rogue(api_node, outside_paths(api_node, secret))
    caller.join(60)
    (response,) = responses
    assert response.status_code == 403, (response.status_code, response.text)
    assert base64.b64encode(SECRET).decode()[:40] not in response.text
    assert "outside the image folders" in response.text
