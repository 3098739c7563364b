"""The worker in shared mode (one of several on a queue), with the plain Python runner of
tests/test_jobs_queue.py in place of the engine, on real SQLite files: it reclaims a dead
worker's job, keeps its registry row, obeys a cancel set by another client, prefers its
model, and drains."""

from __future__ import annotations

import time

from core.jobs import JobService, SqliteJobQueue
from core.jobs.record import DONE, INTERRUPTED
from tests.test_jobs_queue import StepRunner


def shared_service(tmp_path, runner=None, lease_s: float = 0.6) -> JobService:
    return JobService(
        SqliteJobQueue(tmp_path / "queue.db"),
        runner or StepRunner(),
        transient_dir=tmp_path / "transient",
        shared=True,
        device="cpu",
        lease_s=lease_s,
        max_attempts=3,
    )


def wait_status(queue, job_id: str, status: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while queue.get(job_id).status != status:
        assert time.monotonic() < deadline, queue.get(job_id)
        time.sleep(0.02)


def test_a_dead_workers_job_is_reclaimed_and_run_then_the_worker_leaves_the_registry(tmp_path):
    other = SqliteJobQueue(tmp_path / "queue.db")  # the dead worker's client
    job = other.put("txt2img", {"prompt": "p", "steps": 2})
    other.claim("dead-worker", lease_s=0.2)
    service = shared_service(tmp_path).start(recover=False)
    try:
        wait_status(other, job.id, DONE)
        record = other.get(job.id)
        assert record.attempts == 2 and record.worker_id == service.worker_id
        # the worker writes its registry row right after the job's result (its own
        # transaction): on a loaded machine a reader can see the job done first
        deadline = time.monotonic() + 20
        while (rows := other.workers()) and rows[0].jobs_done == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        (row,) = rows
        assert row.id == service.worker_id and row.jobs_done == 1 and row.device == "cpu"
    finally:
        service.stop()
    assert other.workers() == []
    other.close()


def test_a_cancel_from_another_client_interrupts_within_a_step(tmp_path):
    runner = StepRunner(step_s=0.05)
    service = shared_service(tmp_path, runner, lease_s=5).start(recover=False)
    api = SqliteJobQueue(tmp_path / "queue.db")
    try:
        job = api.put("txt2img", {"prompt": "p", "steps": 400})  # 20 s if not stopped
        wait_status(api, job.id, "running")
        assert runner.started.wait(10)
        asked = time.monotonic()
        assert api.request_interrupt(job.id)
        wait_status(api, job.id, INTERRUPTED)
        assert time.monotonic() - asked < 2  # the flag is read every 0.25 s between steps
    finally:
        service.stop()
        api.close()


def test_the_worker_prefers_its_model_and_counts_its_loads(tmp_path):
    api = SqliteJobQueue(tmp_path / "queue.db")
    for i in range(8):
        api.put("txt2img", {"prompt": "p", "steps": 1, "model": "ab"[i % 2]})
    service = shared_service(tmp_path)
    service.start(recover=False)
    try:
        deadline = time.monotonic() + 20
        while api.count(("done",)) < 8:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # 8 jobs alternating models: a a a a(b passed over 3 times) ... at most 3 loads
        assert service.worker.info.model_loads <= 3
    finally:
        service.stop()
        api.close()


def test_drain_finishes_the_running_job_and_takes_no_more(tmp_path):
    runner = StepRunner(step_s=0.05)
    service = shared_service(tmp_path, runner, lease_s=5).start(recover=False)
    api = SqliteJobQueue(tmp_path / "queue.db")
    try:
        first = api.put("txt2img", {"prompt": "p", "steps": 20})
        assert runner.started.wait(10)
        second = api.put("txt2img", {"prompt": "p", "steps": 2})
        service.worker.drain()
        service.worker.join(20)
        assert not service.worker.is_alive()
        assert api.get(first.id).status == DONE
        assert api.get(second.id).status == "queued"
    finally:
        service.stop()
        api.close()
