"""The SQLite queue against the JobQueue contract (core/jobs/queue.py, docs/workers.md),
one operation at a time, on a real SQLite file: the exact fields each state change sets
and clears, the run order ``list`` and ``queue_position`` report, the errors that name
what was wrong. Written from the surviving mutants of `make mutation` (docs/mutation.md):
each test pins a guarantee the broader queue tests only touched in passing."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from core.jobs import JobNotFound, JobStateError, SqliteJobQueue
from core.jobs.queue import WorkerInfo
from core.jobs.record import CANCELLED, DONE, FAILED, INTERRUPTED, QUEUED, RUNNING
from core.jobs.result_images import ResultImage


@pytest.fixture
def queue(tmp_path):
    # a folder that does not exist yet: the queue creates its parents
    opened = SqliteJobQueue(tmp_path / "state" / "nested" / "queue.db")
    yield opened
    opened.close()


def test_list_of_queued_jobs_is_the_run_order_and_list_of_all_is_newest_first(queue):
    low1 = queue.put("txt2img", {"n": 1})
    high = queue.put("txt2img", {"n": 2}, priority=5)
    low2 = queue.put("txt2img", {"n": 3})
    run_order = [high.id, low1.id, low2.id]
    assert [r.id for r in queue.list((QUEUED,))] == run_order
    assert [queue.queue_position(i) for i in run_order] == [1, 2, 3]
    assert [r.id for r in queue.list()] == [low2.id, high.id, low1.id]
    assert [r.id for r in queue.list((QUEUED,), limit=1, offset=1)] == [low1.id]
    # the claim takes exactly what the list said runs next
    assert queue.claim("w", 30).id == high.id
    assert queue.queue_position(high.id) is None  # running: no longer in the queue
    assert [queue.queue_position(i) for i in (low1.id, low2.id)] == [1, 2]
    assert queue.queue_position("no-such-job") is None


def test_list_returns_fifty_by_default_and_count_counts_each_status(queue):
    ids = [queue.put("txt2img", {"n": i}).id for i in range(52)]
    assert len(queue.list()) == 50 and len(queue.list((QUEUED,))) == 50
    assert [r.id for r in queue.list((QUEUED,), offset=50)] == ids[50:]
    queue.claim("w", 30)
    queue.cancel(ids[1])
    assert queue.count() == 52
    assert (queue.count((QUEUED,)), queue.count((RUNNING,)), queue.count((CANCELLED,))) == (50, 1, 1)
    assert queue.count((RUNNING, CANCELLED)) == 2
    assert {r.id for r in queue.list((RUNNING, CANCELLED))} == {ids[0], ids[1]}


def test_an_unknown_status_is_refused_by_name(queue):
    for call in (queue.list, queue.count):
        with pytest.raises(ValueError, match=r"unknown job status 'sleeping'; known: queued, running, done"):
            call(("sleeping",))
    job = queue.put("txt2img", {})
    queue.claim("w", 30)
    for status in (QUEUED, RUNNING, "sleeping"):
        with pytest.raises(ValueError, match=rf"cannot finish a job as '{status}'"):
            queue.finish(job.id, "w", status)
    assert queue.get(job.id).status == RUNNING  # a refused finish changes nothing


def test_a_claim_starts_the_attempt_and_sets_the_lease(queue):
    before_put = time.time()
    job = queue.put("txt2img", {"model": "m"})
    assert before_put <= job.created_at <= time.time()
    assert (job.lease_until, job.started_at, job.finished_at) == (None, None, None)
    assert job.status == QUEUED and job.attempts == 0 and job.worker_id is None
    before = time.time()
    claimed = queue.claim("w", lease_s=100)
    assert (claimed.id, claimed.status, claimed.worker_id, claimed.attempts) == (job.id, RUNNING, "w", 1)
    assert before <= claimed.started_at <= time.time()
    assert claimed.lease_until == pytest.approx(claimed.started_at + 100)
    assert claimed.progress == 0 and claimed.finished_at is None
    assert claimed.created_at == job.created_at
    assert queue.get(job.id) == claimed
    assert queue.claim("w2", 100) is None  # nothing left: each job is claimed once


def test_a_retried_job_starts_clean_goes_to_the_back_of_its_level_and_keeps_its_attempts(queue):
    job = queue.put("txt2img", {"n": 0})
    queue.claim("w", 30)
    queue.set_progress(job.id, 0.5)
    queue.request_interrupt(job.id)
    queue.finish(job.id, "w", FAILED, error="boom", images=[ResultImage(0, "out", "a.png", b"png")])
    later = queue.put("txt2img", {"n": 1})
    retried = queue.retry(job.id)
    assert retried.status == QUEUED and retried.attempts == 1
    assert (retried.result, retried.error, retried.worker_id, retried.lease_until) == (None, None, None, None)
    assert (retried.started_at, retried.finished_at, retried.progress) == (None, None, 0)
    assert queue.result_image(job.id, 0) is None  # the failed run's bytes went with its result
    assert queue.interrupt_requested(job.id) is False  # the old cancel does not stop the new run
    assert [r.id for r in queue.list((QUEUED,))] == [later.id, job.id]
    assert queue.queue_position(job.id) == 2
    assert queue.claim("w", 30).id == later.id
    again = queue.claim("w", 30)
    assert again.id == job.id and again.attempts == 2


def test_only_failed_cancelled_or_interrupted_jobs_are_retried(queue):
    with pytest.raises(JobNotFound, match="no-such-job"):
        queue.retry("no-such-job")
    job = queue.put("txt2img", {})
    with pytest.raises(JobStateError, match=r"is queued; only cancelled, failed, interrupted jobs"):
        queue.retry(job.id)
    queue.claim("w", 30)
    with pytest.raises(JobStateError, match="is running"):
        queue.retry(job.id)
    queue.finish(job.id, "w", DONE, result={"paths": []})
    with pytest.raises(JobStateError, match="is done"):
        queue.retry(job.id)
    for status in (FAILED, INTERRUPTED):
        other = queue.put("txt2img", {})
        assert queue.claim("w", 30).id == other.id
        queue.finish(other.id, "w", status)
        assert queue.retry(other.id).status == QUEUED
        queue.cancel(other.id)  # cancelled: retried as well
        assert queue.retry(other.id).status == QUEUED
        queue.cancel(other.id)  # out of the way of the next claim


def test_cancel_takes_only_a_queued_job_and_says_why_not(queue):
    with pytest.raises(JobNotFound, match="no-such-job"):
        queue.cancel("no-such-job")
    job = queue.put("txt2img", {})
    before = time.time()
    cancelled = queue.cancel(job.id)
    assert cancelled.status == CANCELLED and before <= cancelled.finished_at <= time.time()
    assert queue.claim("w", 30) is None  # a cancelled job never runs
    with pytest.raises(
        JobStateError, match=rf"job {job.id} is cancelled, only a queued job can be cancelled"
    ):
        queue.cancel(job.id)


def test_finish_records_the_outcome_and_ends_the_lease(queue):
    done_job, failed_job = queue.put("txt2img", {"n": 0}), queue.put("txt2img", {"n": 1})
    queue.claim("w", 30)
    queue.claim("w", 30)
    queue.set_progress(done_job.id, 0.25)
    queue.set_progress(failed_job.id, 0.5)
    assert queue.get(failed_job.id).progress == 0.5
    done = queue.finish(done_job.id, "w", DONE, result={"paths": ["a.png"]})
    assert (done.status, done.result, done.error, done.lease_until, done.progress) == (
        DONE, {"paths": ["a.png"]}, None, None, 1.0,
    )  # fmt: skip
    assert done.finished_at >= done.started_at
    failed = queue.finish(failed_job.id, "w", FAILED, error="out of memory")
    assert (failed.status, failed.result, failed.error, failed.lease_until) == (
        FAILED,
        None,
        "out of memory",
        None,
    )
    assert failed.progress == 0.5  # how far it got, not "complete"
    queue.set_progress(done_job.id, 0.1)  # a finished job's progress is no longer written
    assert queue.get(done_job.id).progress == 1.0


def test_a_heartbeat_extends_only_the_holders_lease(queue):
    job = queue.put("txt2img", {})
    queue.claim("w", lease_s=1)
    assert queue.heartbeat(job.id, "other", 1000) is False
    assert queue.get(job.id).lease_until < time.time() + 10
    before = time.time()
    assert queue.heartbeat(job.id, "w", 1000) is True
    assert before + 1000 <= queue.get(job.id).lease_until <= time.time() + 1000
    queue.finish(job.id, "w", DONE)
    assert queue.heartbeat(job.id, "w", 1000) is False  # finished: nothing to extend


def test_recovery_of_running_jobs_after_a_crash(queue):
    expired, live = queue.put("txt2img", {"n": 0}), queue.put("txt2img", {"n": 1})
    queue.claim("dead", lease_s=0.01)
    queue.claim("alive", lease_s=1000)
    time.sleep(0.05)
    # several workers share the queue: only the job whose lease ran out is taken back
    assert queue.recover_running(only_expired=True, reason="worker died") == [expired.id]
    record = queue.get(expired.id)
    assert (record.status, record.error, record.lease_until) == (INTERRUPTED, "worker died", None)
    assert record.finished_at is not None
    assert queue.get(live.id).status == RUNNING
    # the single embedded worker restarting: every running job was its own
    assert queue.recover_running(only_expired=False, reason="server stopped") == [live.id]
    assert queue.get(live.id).status == INTERRUPTED
    assert queue.recover_running(only_expired=False, reason="again") == []


def test_a_reclaimed_job_starts_its_next_attempt_clean(queue):
    job = queue.put("txt2img", {})
    queue.claim("dead", lease_s=0.01)
    queue.set_progress(job.id, 0.7)
    queue.request_interrupt(job.id)
    time.sleep(0.05)
    assert queue.requeue_expired(max_attempts=3) == [(job.id, QUEUED)]
    record = queue.get(job.id)
    assert (record.status, record.worker_id, record.lease_until, record.started_at, record.progress) == (
        QUEUED, None, None, None, 0,
    )  # fmt: skip
    assert queue.interrupt_requested(job.id) is False
    assert queue.claim("w", 30).attempts == 2


def test_the_first_job_of_the_loaded_model_is_taken_but_never_a_lower_priority_one(queue):
    queue.put("txt2img", {"model": "a"}, priority=1)
    first_b = queue.put("txt2img", {"model": "b"}, priority=1)
    queue.put("txt2img", {"model": "b"}, priority=1)
    queue.put("txt2img", {"model": "c"}, priority=0)
    assert queue.claim("w", 30, prefer_model="b").id == first_b.id
    assert queue.claim("w", 30, prefer_model="c").request["model"] == "a"  # priority first


def test_the_fairness_bound_counts_each_pass(queue):
    head = queue.put("txt2img", {"model": "a"})
    for _ in range(3):
        queue.put("txt2img", {"model": "b"})
    taken = [queue.claim("w", 30, prefer_model="b", max_passes=2).id for _ in range(3)]
    assert taken[2] == head.id and head.id not in taken[:2]  # passed over twice, then taken


def test_a_model_that_is_not_a_name_gives_no_affinity(queue):
    head = queue.put("txt2img", {"model": ""})
    queue.put("txt2img", {"model": 7})
    # "7" is not a model any worker has loaded: the head runs first
    assert queue.claim("w", 30, prefer_model="7").id == head.id


def test_images_found_after_a_crash_are_recorded_on_a_job_that_has_no_result(queue):
    # The usual case of start-up recovery: the worker died before it could write a result.
    job = queue.put("txt2img", {})
    queue.claim("w", lease_s=30)
    queue.recover_running(only_expired=False, reason="interrupted: the server stopped")
    assert queue.get(job.id).result is None
    record = queue.record_images(job.id, ["/out/a.png"])
    assert record.result == {"paths": ["/out/a.png"], "saved": True, "recovered": True}
    assert record.status == INTERRUPTED  # recording images changes no status


def test_the_registry_lists_workers_seen_recently_in_start_order(queue):
    now = time.time()
    queue.worker_seen(WorkerInfo(id="late", host="h", pid=2, device="cpu", started_at=now, draining=True))
    queue.worker_seen(WorkerInfo(id="early", host="h", pid=1, device="cpu", started_at=now - 60))
    workers = queue.workers()
    assert [w.id for w in workers] == ["early", "late"]
    assert [w.draining for w in workers] == [False, True]
    time.sleep(0.3)
    queue.worker_seen(WorkerInfo(id="early", host="h", pid=1, device="cpu", started_at=now - 60))
    assert [w.id for w in queue.workers(seen_within_s=0.2)] == ["early"]
    assert [w.id for w in queue.workers(seen_within_s=100)] == ["early", "late"]


def test_a_closed_queue_opens_new_connections_and_the_file_is_sound(queue, tmp_path):
    job = queue.put("txt2img", {"n": 1})
    queue.close()
    assert queue.get(job.id).request == {"n": 1}  # used again after close: reconnects
    assert queue.integrity_check() == "ok"
    # a second client on the same file sees the same jobs (another worker process)
    other = SqliteJobQueue(queue.db_path)
    try:
        assert other.get(job.id).id == job.id
    finally:
        other.close()


def test_a_jobs_priority_reads_back_and_defaults_to_the_contracts_zero(queue):
    explicit_zero = queue.put("txt2img", {"n": 1}, priority=0)
    default = queue.put("txt2img", {"n": 2})  # JobQueue.put: priority 0 unless given
    high = queue.put("txt2img", {"n": 3}, priority=5)
    assert (explicit_zero.priority, default.priority, high.priority) == (0, 0, 5)
    assert [r.priority for r in queue.list((QUEUED,))] == [5, 0, 0]
    assert queue.get(high.id).priority == 5
    assert queue.claim("w", 30).priority == 5
    # the default is the same level as an explicit 0: first come, first served
    assert [queue.claim("w", 30).id for _ in range(2)] == [explicit_zero.id, default.id]


def open_handles_on(path) -> int:
    """How many file descriptors of this process are open on ``path`` (Linux /proc)."""
    fds = Path("/proc/self/fd")
    target = str(Path(path).resolve())
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed since the listing
            count += os.readlink(fd) == target
    return count


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through Linux /proc")
def test_one_connection_per_thread_and_close_closes_every_threads(queue):
    # the module's "one connection per thread": a thread's calls share its connection
    baseline = open_handles_on(queue.db_path)
    assert baseline == 1  # the opening thread's
    for i in range(20):
        queue.get(queue.put("txt2img", {"n": i}).id)
        queue.count()
    assert open_handles_on(queue.db_path) == 1
    # another thread (an API request, the worker) gets its own, kept after it ends
    worker = threading.Thread(target=lambda: [queue.list() for _ in range(5)])
    worker.start()
    worker.join()
    assert open_handles_on(queue.db_path) == 2
    # close() releases the file: every thread's connection, from whichever thread calls it
    queue.close()
    assert open_handles_on(queue.db_path) == 0
