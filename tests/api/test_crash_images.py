"""Crash consistency of saved images (issue #23, point 6): a kill -9 between the rename
that makes a PNG visible and the job record, a crash between recording and renaming, a
crash before recording, and a crash during recovery each end with every image accounted
for: adopted into its job's record, no ``.tmp-*`` file left, and a retry that writes no
second copy."""

from __future__ import annotations

import signal
import time

import httpx

from core.jobs.record import INTERRUPTED
from core.jobs.recovery import recover_images
from core.jobs.sqlite_queue import SqliteJobQueue
from core.saving.journal import ImageJournal
from tests.api.conftest import TINY_MODEL, free_port, start_server_process, wait_healthy

# an extension that kills its own server right after the first image is renamed into
# place (image_saved), before the job can be recorded
KILLER = """
import os, signal
from plugin_api import hookimpl

@hookimpl
def image_saved(ctx, path):
    if "die after the rename" in ctx.request.prompt:
        os.kill(os.getpid(), signal.SIGKILL)
"""
JOB = {"prompt": "die after the rename", "steps": 1, "width": 64, "height": 64, "seed": 7, "batch_size": 2}


def images(outputs):
    return sorted(
        p for p in outputs.glob("txt2img-images/*/*") if p.suffix == ".png" and not p.name.startswith(".")
    )


def test_kill_between_rename_and_record_then_recover_and_retry(tmp_path, tiny_models_dir):
    data_dir, log, port = tmp_path / "data", tmp_path / "server.log", free_port()
    extensions = tmp_path / "extensions"
    extensions.mkdir()
    (extensions / "killer.py").write_text(KILLER)
    url = f"http://127.0.0.1:{port}"
    process = start_server_process(data_dir, tiny_models_dir, port, log, extensions_dir=extensions)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_healthy(client, process, log)
            job_id = client.post("/api/v1/jobs", json={**JOB, "model": TINY_MODEL}).json()["id"]
        assert process.wait(timeout=120) == -signal.SIGKILL, log.read_text()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
    outputs = data_dir / "outputs"
    [first] = images(outputs)  # the first image made it to disk, the job record never heard
    stray = first.parent / ".tmp-crashed-before-record.png"
    stray.write_bytes(b"half an image")  # what a crash before the journal step leaves

    process = start_server_process(data_dir, tiny_models_dir, port, log)  # no killer now
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_healthy(client, process, log)
            job = client.get(f"/api/v1/jobs/{job_id}").json()
            assert job["status"] == "interrupted", job
            # adopted into the record: listed and served, marked as found after the crash
            assert job["images"] == [f"/api/v1/jobs/{job_id}/images/0"] and job["result"]["recovered"] is True
            assert not stray.exists()
            assert client.get(f"/api/v1/jobs/{job_id}/images/0").content == first.read_bytes()

            assert client.post(f"/api/v1/jobs/{job_id}/retry").status_code == 200
            deadline = time.monotonic() + 120
            while (job := client.get(f"/api/v1/jobs/{job_id}").json())["status"] in ("queued", "running"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            assert job["status"] == "done", job
            # image 0 reused, image 1 written: two files, not three, and they are the job's
            assert len(job["images"]) == 2 and len(images(outputs)) == 2, images(outputs)
            served = {client.get(url).content for url in job["images"]}
            assert served == {p.read_bytes() for p in images(outputs)}
            assert client.get(f"/api/v1/jobs/{job_id}/images/0").content == first.read_bytes()
            assert not list(outputs.glob("txt2img-images/*/.tmp-*"))
            assert not (
                data_dir / ".easel" / "image-journal" / f"{job_id}.json"
            ).exists()  # recorded: forgotten
    finally:
        process.terminate()
        process.wait(timeout=30)


def interrupted_job(tmp_path):
    queue = SqliteJobQueue(tmp_path / "queue.db")
    job = queue.put("generate", {"prompt": "x"})
    assert queue.claim("w", 60).id == job.id
    queue.recover_running(only_expired=False, reason="interrupted: the server stopped")
    return queue, job.id


def test_a_crash_between_recording_and_renaming_is_finished_at_start(tmp_path):
    queue, job_id = interrupted_job(tmp_path)
    folder = tmp_path / "outputs" / "txt2img-images" / "2026-12-02"
    folder.mkdir(parents=True)
    tmp, final = folder / ".tmp-abc.png", folder / "00000-7.png"
    tmp.write_bytes(b"a complete image")
    journal = ImageJournal(tmp_path / "journal")
    journal.record(job_id, 0, 7, tmp, final)  # step 2 done; the rename (step 3) never ran

    adopted = recover_images(queue, journal, tmp_path / "outputs")
    assert adopted == {job_id: [final]} and final.read_bytes() == b"a complete image" and not tmp.exists()
    record = queue.get(job_id)
    assert record.status == INTERRUPTED and record.result["paths"] == [str(final)]
    # recovery killed half way runs again: idempotent, nothing duplicated
    recover_images(queue, journal, tmp_path / "outputs")
    assert queue.get(job_id).result["paths"] == [str(final)]
    assert sorted(p.name for p in folder.iterdir()) == ["00000-7.png"]
    assert journal.existing(job_id, 0, 7) == final and journal.existing(job_id, 0, 8) is None


def test_journals_of_done_or_unknown_jobs_are_dropped(tmp_path):
    queue = SqliteJobQueue(tmp_path / "queue.db")
    done = queue.put("generate", {"prompt": "x"})
    queue.claim("w", 60)
    final = tmp_path / "00000-1.png"
    final.write_bytes(b"image")
    queue.finish(done.id, "w", "done", result={"paths": [str(final)]})
    journal = ImageJournal(tmp_path / "journal")
    journal.record(done.id, 0, 1, tmp_path / ".tmp-a.png", final)  # crash after the record
    journal.record("f" * 32, 0, 1, tmp_path / ".tmp-x.png", tmp_path / "gone.png")  # no such job
    assert recover_images(queue, journal, tmp_path / "outputs") == {}
    assert journal.job_ids() == [] and queue.get(done.id).result["paths"] == [str(final)]
