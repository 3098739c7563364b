"""The job queue and its service, with a plain Python runner in place of the engine.

This tests the queue (ordering, atomic claims, cancel, interrupt, retry, restart
recovery, events); the engine itself runs in the API tests.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time

import pytest
from PIL import Image

from core.jobs import JobNotFound, JobService, JobStateError, SqliteJobQueue
from core.jobs.live import FINISHED, PROGRESS
from core.results import CancelToken, GenerationInterrupted, GenerationResult, ProgressEvent
from plugin_api.types import GenerationRequest


class StepRunner:
    """Runs ``request.steps`` steps of ``step_s`` seconds, honouring the cancel token."""

    def __init__(self, step_s: float = 0.01) -> None:
        self.step_s = step_s
        self.ran: list[str] = []
        self.started = threading.Event()

    def __call__(self, request: GenerationRequest, *, job_id, on_progress, cancel: CancelToken):
        if request.prompt == "explode":
            raise ValueError("the runner failed on purpose")
        self.ran.append(job_id)
        self.started.set()
        steps = request.steps or 3
        seeds = []
        images = []
        for batch in range(request.batch_count):
            for step in range(steps):
                if cancel.interrupted:
                    raise GenerationInterrupted()
                if cancel.take_skip():
                    break
                time.sleep(self.step_s)
                preview = Image.new("RGB", (8, 8), (step * 20, 0, 0))
                on_progress(ProgressEvent(step + 1, steps, batch, request.batch_count, 0.1, 0.1, preview))
            seeds.append(1000 + batch)
            images.append(Image.new("RGB", (8, 8), (0, 255, 0)))
        return GenerationResult(
            images=images, seeds=seeds, infotexts=[f"{request.prompt}\nSeed: {s}" for s in seeds]
        )


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "state" / "queue.db"


def make_service(tmp_path, db_path, runner=None) -> JobService:
    return JobService(SqliteJobQueue(db_path), runner or StepRunner(), transient_dir=tmp_path / "transient")


def test_priority_then_arrival_order(db_path):
    queue = SqliteJobQueue(db_path)
    low = [queue.put("txt2img", {"prompt": f"low{i}"}) for i in range(3)]
    high = queue.put("txt2img", {"prompt": "high"}, priority=5)
    assert [queue.queue_position(j.id) for j in (high, *low)] == [1, 2, 3, 4]
    order = [queue.claim("w", 30).id for _ in range(4)]
    assert order == [high.id, low[0].id, low[1].id, low[2].id]
    assert queue.claim("w", 30) is None
    assert all(queue.get(i).attempts == 1 for i in order)


def test_concurrent_claims_never_share_a_job(db_path):
    queue = SqliteJobQueue(db_path)
    ids = {queue.put("txt2img", {"n": i}).id for i in range(120)}
    claimed: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (record := queue.claim(name, 30)) is not None:
            with lock:
                claimed.append(record.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)  # every job exactly once


def test_only_jobs_whose_lease_ran_out_are_reclaimed(db_path):
    """What a multi-worker backend runs periodically: a worker that stopped heartbeating
    loses its job; one that keeps its lease does not."""
    queue = SqliteJobQueue(db_path)
    for prompt in ("dead worker's", "live worker's"):
        queue.put("txt2img", {"prompt": prompt})
    dead = queue.claim("dead", lease_s=0.05)
    alive = queue.claim("alive", lease_s=0.05)
    time.sleep(0.1)
    assert queue.heartbeat(alive.id, "alive", lease_s=60)
    assert not queue.heartbeat(alive.id, "someone-else", lease_s=60)
    assert queue.recover_running(only_expired=True, reason="lease expired") == [dead.id]
    assert queue.get(dead.id).status == "interrupted"
    assert queue.get(alive.id).status == "running"
    # the dead worker's late answer is ignored: the job is no longer its own
    assert queue.finish(dead.id, "dead", "done", result={}) is None


def test_database_is_wal(db_path):
    SqliteJobQueue(db_path)
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_jobs_run_and_results_are_stored(tmp_path, db_path):
    service = make_service(tmp_path, db_path).start()
    try:
        job_id = service.submit(GenerationRequest(prompt="a cat", steps=2, batch_count=2))
        record = service.wait(job_id, timeout=20)
        assert record.status == "done", record.error
        assert record.kind == "txt2img"
        assert record.result["seeds"] == [1000, 1001]
        assert record.result["saved"] is False
        paths = service.image_paths(job_id)
        assert len(paths) == 2 and all(p.is_file() for p in paths)
        with Image.open(paths[0]) as image:
            assert image.info["parameters"] == "a cat\nSeed: 1000"
        assert record.progress == 1.0
    finally:
        service.stop()


def test_cancel_queued_and_refuse_cancelling_finished(tmp_path, db_path):
    queue = SqliteJobQueue(db_path)
    service = JobService(queue, StepRunner(), transient_dir=tmp_path / "t")  # worker not started
    job_id = service.submit(GenerationRequest(prompt="x"))
    assert service.cancel(job_id).status == "cancelled"
    with pytest.raises(JobStateError):
        service.cancel(job_id)
    with pytest.raises(JobNotFound):
        service.cancel("nope")
    assert queue.claim("w", 30) is None  # a cancelled job never runs


def test_interrupt_running_job_within_a_step_then_retry(tmp_path, db_path):
    runner = StepRunner(step_s=0.05)
    service = make_service(tmp_path, db_path, runner).start()
    try:
        job_id = service.submit(GenerationRequest(prompt="slow", steps=200))
        assert runner.started.wait(10)
        time.sleep(0.1)
        assert service.cancel(job_id).status == "running"  # running: cancel interrupts
        started = time.monotonic()
        record = service.wait(job_id, timeout=10)
        assert time.monotonic() - started < 2.0  # well within a few 0.05 s steps
        assert record.status == "interrupted"
        assert record.attempts == 1
        retried = service.retry(job_id)
        assert retried.status == "queued"
        # make the retry quick: the record keeps its request, so interrupt it again
        with pytest.raises(JobStateError):
            service.retry(job_id)  # only finished-without-result jobs can be retried
        time.sleep(0.2)
        service.interrupt(job_id)
        record = service.wait(job_id, timeout=10)
        assert record.status == "interrupted" and record.attempts == 2
    finally:
        service.stop()


def test_interrupt_without_a_job_id_reaches_a_job_on_another_worker(tmp_path, db_path):
    """A1111's /interrupt names no job. An API node without a worker of its own (``easel
    serve --workers 0``) must still stop what a worker process runs: the worker here is
    another JobService on the same queue file, as ``easel worker`` is."""
    runner = StepRunner(step_s=0.05)
    worker = JobService(
        SqliteJobQueue(db_path), runner, transient_dir=tmp_path / "w", shared=True, lease_s=30
    ).start()
    api = JobService(SqliteJobQueue(db_path), StepRunner(), transient_dir=tmp_path / "api")  # no worker
    try:
        assert api.interrupt() is False  # nothing runs: nothing to stop
        job_id = api.submit(GenerationRequest(prompt="slow", steps=400))
        assert runner.started.wait(10)
        asked = time.monotonic()
        assert api.interrupt() is True
        record = worker.wait(job_id, timeout=10)
        assert record.status == "interrupted" and time.monotonic() - asked < 3.0  # polled every 0.25 s
    finally:
        worker.stop()


def test_a_worker_without_heartbeats_is_listed_stale(tmp_path, db_path):
    """A worker killed with -9 leaves its row: it is shown not alive once two leases pass
    without a heartbeat, by the age the queue measures."""
    from core.jobs.queue import WorkerInfo

    queue = SqliteJobQueue(db_path)
    service = JobService(queue, StepRunner(), transient_dir=tmp_path / "t", lease_s=0.25)
    queue.worker_seen(WorkerInfo(id="gone", host="box", pid=1, device="cpu", started_at=time.time()))
    (fresh,) = service.workers()
    assert fresh["alive"] and fresh["heartbeat_age_s"] < 0.5
    time.sleep(0.6)  # more than two leases of 0.25 s
    (stale,) = service.workers()
    assert not stale["alive"] and stale["heartbeat_age_s"] >= 0.5
    queue.worker_seen(WorkerInfo(id="gone", host="box", pid=1, device="cpu", started_at=time.time()))
    assert service.workers()[0]["alive"]  # a heartbeat brings it back


def test_failed_job_reports_the_error_and_worker_goes_on(tmp_path, db_path):
    service = make_service(tmp_path, db_path).start()
    try:
        bad = service.submit(GenerationRequest(prompt="explode"))
        good = service.submit(GenerationRequest(prompt="fine", steps=1))
        assert service.wait(bad, timeout=10).status == "failed"
        assert "failed on purpose" in service.get(bad).error
        assert service.wait(good, timeout=10).status == "done"
    finally:
        service.stop()


def test_skip_abandons_the_current_batch(tmp_path, db_path):
    runner = StepRunner(step_s=0.05)
    service = make_service(tmp_path, db_path, runner).start()
    try:
        job_id = service.submit(GenerationRequest(prompt="skip me", steps=40, batch_count=2))
        assert runner.started.wait(10)
        time.sleep(0.1)
        assert service.skip()
        time.sleep(0.1)
        assert service.skip()
        started = time.monotonic()
        record = service.wait(job_id, timeout=10)
        assert record.status == "done"
        assert time.monotonic() - started < 3.0  # 80 steps of 0.05 s would take 4 s
    finally:
        service.stop()


def test_restart_keeps_queued_jobs_and_marks_running_interrupted(tmp_path, db_path):
    queue = SqliteJobQueue(db_path)
    lost = queue.put("txt2img", {"prompt": "was running"})
    waiting = [queue.put("txt2img", {"prompt": f"waiting {i}", "steps": 1}) for i in range(2)]
    assert queue.claim("dead-worker", 30).id == lost.id  # then the process "dies"
    queue.close()

    runner = StepRunner()
    service = make_service(tmp_path, db_path, runner).start()
    try:
        record = service.get(lost.id)
        assert record.status == "interrupted" and record.attempts == 1
        assert "server stopped" in record.error
        for job in waiting:
            assert service.wait(job.id, timeout=10).status == "done"
        assert lost.id not in runner.ran  # not re-run by itself
        assert service.queue.integrity_check() == "ok"
    finally:
        service.stop()


def test_subscribers_get_progress_with_preview_then_the_result(tmp_path, db_path):
    service = make_service(tmp_path, db_path)
    job_id = service.submit(GenerationRequest(prompt="watch", steps=3))
    subscription = service.events.subscribe(job_id)
    service.start()
    try:
        kinds, previews = [], []
        while (event := subscription.get(timeout=10)) is not None:
            kinds.append(event.kind)
            if event.kind == PROGRESS:
                previews.append(event.progress.preview_base64())
            if event.kind == FINISHED:
                assert event.record.status == "done"
                break
        assert kinds[0] == "started" and kinds[-1] == FINISHED
        assert kinds.count(PROGRESS) == 3 and all(previews)
    finally:
        subscription.close()
        service.stop()


def test_wait_async_does_not_need_a_thread_per_waiter(tmp_path, db_path):
    service = make_service(tmp_path, db_path).start()
    try:
        ids = [service.submit(GenerationRequest(prompt=f"p{i}", steps=1)) for i in range(10)]

        async def wait_all():
            return await asyncio.gather(*(service.wait_async(i, timeout=30) for i in ids))

        records = asyncio.run(wait_all())
        assert [r.status for r in records] == ["done"] * 10
        assert len(service.events) == 0  # every waiter unsubscribed
    finally:
        service.stop()


def test_a_busy_database_when_recording_the_outcome_is_retried(tmp_path, db_path):
    class FlakyQueue(SqliteJobQueue):
        failures = 2

        def finish(self, *args, **kwargs):
            if self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("database is locked")
            return super().finish(*args, **kwargs)

    service = JobService(FlakyQueue(db_path), StepRunner(), transient_dir=tmp_path / "t")
    service.worker.finish_retry_s = 0.01
    service.start()
    try:
        first = service.submit(GenerationRequest(prompt="one", steps=1))
        assert service.wait(first, timeout=10).status == "done"
        second = service.submit(GenerationRequest(prompt="two", steps=1))
        assert service.wait(second, timeout=10).status == "done"  # the worker lived on
    finally:
        service.stop()


def test_waiters_of_a_cancelled_job_wake_at_once(tmp_path, db_path):
    service = make_service(tmp_path, db_path)  # no worker: the job stays queued
    job_id = service.submit(GenerationRequest(prompt="never runs"))
    threading.Timer(0.2, service.cancel, args=(job_id,)).start()
    # wait() re-reads the database only every 5 s: returning within 3 s needs the event
    assert service.wait(job_id, timeout=3).status == "cancelled"


def test_validation_error_queues_nothing(tmp_path, db_path):
    def validate(request):
        raise ValueError("steps: must be positive")

    queue = SqliteJobQueue(db_path)
    service = JobService(queue, StepRunner(), transient_dir=tmp_path / "t", validate=validate)
    with pytest.raises(ValueError):
        service.submit(GenerationRequest(steps=-1))
    assert queue.count() == 0
