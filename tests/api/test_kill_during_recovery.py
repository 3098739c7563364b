"""kill -9 in the middle of start-up recovery (issue #23, acceptance: "a kill -9 test at
each moment"; sampling: test_serve_crash.py, between rename and record:
test_crash_images.py). A real `easel serve` starts on the state a crash leaves: many jobs
still marked running, each with a complete image journalled but not yet renamed into
place, and jobs still queued. The server is killed with SIGKILL as soon as recovery has
renamed its first image, while it is renaming and adopting the rest; the next start must
end with every job accounted for: each interrupted job holds exactly its own image, the
queued jobs run once, no image belongs to no job, no file is written twice, no ``.tmp-*``
file is left.

No test seam: the moment is found by watching the outputs folder from outside, and
enough jobs are journalled that recovery takes far longer than the watcher's reaction
(the test checks that the kill did land before recovery had finished)."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import time

import httpx
import pytest
from PIL import Image

from core.jobs.sqlite_queue import SqliteJobQueue
from core.saving.journal import ImageJournal
from tests.api.conftest import TINY_MODEL, free_port, start_server_process, wait_healthy

pytestmark = pytest.mark.slow

CRASHED_JOBS = 120  # each recovered with a rename, an fsync and a database write


def digest_of(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def final_images(outputs):
    return sorted(p for p in outputs.glob("txt2img-images/*/*.png") if not p.name.startswith("."))


def crashed_state(data_dir):
    """What a crash leaves: jobs running, their images written to temp files and journalled
    (step 2 of core/saving/journal.py), the renames never done; two jobs still queued."""
    queue = SqliteJobQueue(data_dir / ".easel" / "queue.db")
    journal = ImageJournal(data_dir / ".easel" / "image-journal")
    folder = data_dir / "outputs" / "txt2img-images" / "2026-12-02"
    folder.mkdir(parents=True)
    expected = {}
    for n in range(CRASHED_JOBS):
        job = queue.put("generate", {"prompt": f"crashed {n}", "model": TINY_MODEL, "steps": 1})
        assert queue.claim("dead-worker", 600).id == job.id
        tmp, final = folder / f".tmp-{n}.png", folder / f"{n:05d}-{n}.png"
        Image.new("RGB", (8, 8), (n % 256, n // 256, 7)).save(tmp)  # a distinct, complete image
        journal.record(job.id, 0, n, tmp, final)
        expected[job.id] = (final, digest_of(tmp))
    queued = [
        queue.put(
            "generate", {"prompt": f"queued {i}", "model": TINY_MODEL, "steps": 1, "width": 64, "height": 64}
        ).id
        for i in range(2)
    ]
    queue.close()
    return expected, queued


def test_kill_during_recovery_then_restart_accounts_for_every_job(tmp_path, tiny_models_dir):
    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    expected, queued = crashed_state(data_dir)
    outputs = data_dir / "outputs"

    process = start_server_process(data_dir, tiny_models_dir, free_port(), log)
    try:
        deadline = time.monotonic() + 120
        while not final_images(outputs):  # recovery has renamed its first image
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "recovery never started"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    db = data_dir / ".easel" / "queue.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        adopted = conn.execute("SELECT COUNT(*) FROM jobs WHERE result LIKE '%recovered%'").fetchone()[0]
    renamed = len(final_images(outputs))
    # the kill landed inside recovery: not every image renamed, or not every one adopted
    print(f"killed with {renamed} images renamed and {adopted} adopted of {CRASHED_JOBS}")
    assert renamed < CRASHED_JOBS or adopted < CRASHED_JOBS, (renamed, adopted)

    port = free_port()
    process = start_server_process(data_dir, tiny_models_dir, port, log)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            wait_healthy(client, process, log)
            for job_id in queued:  # still queued after both starts, and run once now
                deadline = time.monotonic() + 120
                while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
                assert job["status"] == "done" and job["attempts"] == 1 and len(job["images"]) == 1, job
            for job_id, (_final, digest) in expected.items():
                job = client.get(f"/api/v1/jobs/{job_id}").json()
                assert job["status"] == "interrupted" and job["result"]["recovered"], job
                assert job["images"] == [f"/api/v1/jobs/{job_id}/images/0"], job  # its image, once
                served = client.get(job["images"][0]).content
                assert hashlib.sha256(served).hexdigest() == digest  # complete: the bytes it wrote
    finally:
        process.terminate()
        process.wait(timeout=60)
    queue = SqliteJobQueue(db)
    owners: dict[str, str] = {}
    for job_id in [*expected, *queued]:
        for path in queue.get(job_id).result["paths"]:
            assert path not in owners, f"{path} belongs to {owners.get(path)} and {job_id}"
            owners[path] = job_id
    assert all(owners[str(final)] == job_id for job_id, (final, _) in expected.items())
    queue.close()
    files = final_images(outputs)
    # every image file belongs to exactly one job, and no image exists twice
    assert sorted(str(p) for p in files) == sorted(owners), set(map(str, files)) ^ set(owners)
    assert len({digest_of(p) for p in files}) == len(files)
    assert not [p for p in outputs.rglob(".tmp-*")]
