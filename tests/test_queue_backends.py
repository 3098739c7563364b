"""Both queue backends, on real databases (a SQLite file, a throwaway PostgreSQL server):
the guarantees several workers rely on. The same tests run on each: the API cannot tell
the backends apart, so neither may the queue's behaviour."""

from __future__ import annotations

import threading
import time

import pytest

from core.errors import SettingError
from core.jobs.open_queue import open_queue, queue_url, sqlite_path
from core.jobs.queue import JobQueue, WorkerInfo
from core.jobs.record import DONE, FAILED, QUEUED, RUNNING


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_factory(request, tmp_path):
    """Opens the queue URL again for each call: each result is a separate client, as
    separate worker processes are."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'queue.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened: list[JobQueue] = []

    def make() -> JobQueue:
        queue = open_queue(url)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


def test_concurrent_claims_from_separate_clients_take_each_job_once(queue_factory):
    ids = {queue_factory().put("txt2img", {"n": i}).id for i in range(60)}
    taken: list[str] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        queue = queue_factory()  # its own connections, like a worker process
        while (record := queue.claim(name, 30)) is not None:
            with lock:
                taken.append(record.id)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(taken) == sorted(ids)  # every job, none twice
    assert queue_factory().count((RUNNING,)) == 60


def test_expired_lease_requeues_then_poison_fails(queue_factory):
    queue = queue_factory()
    job = queue.put("txt2img", {"prompt": "dies"})
    for attempt in (1, 2):
        claimed = queue.claim(f"dead{attempt}", lease_s=0.05)
        assert claimed.id == job.id and claimed.attempts == attempt
        assert queue.requeue_expired(max_attempts=3) == []  # lease still running
        time.sleep(0.1)
        assert queue.requeue_expired(max_attempts=3) == [(job.id, QUEUED)]
        assert queue.get(job.id).status == QUEUED
    queue.claim("dead3", lease_s=0.05)
    time.sleep(0.1)
    assert queue.requeue_expired(max_attempts=3) == [(job.id, FAILED)]
    record = queue.get(job.id)
    assert record.status == FAILED and record.attempts == 3
    assert record.error.startswith("poison job") and "3 times" in record.error
    assert queue.claim("w", 30) is None


def test_a_late_finish_from_a_worker_that_lost_its_lease_is_ignored(queue_factory):
    queue = queue_factory()
    job = queue.put("txt2img", {"prompt": "slow"})
    queue.claim("slow-worker", lease_s=0.05)
    time.sleep(0.1)
    queue.requeue_expired(max_attempts=3)
    queue.claim("second-worker", lease_s=30)
    assert queue.heartbeat(job.id, "slow-worker", 30) is False
    assert queue.finish(job.id, "slow-worker", DONE, result={"paths": ["late"]}) is None
    done = queue.finish(job.id, "second-worker", DONE, result={"paths": ["right"]})
    assert done.status == DONE and done.result == {"paths": ["right"]} and done.attempts == 2
    assert queue.finish(job.id, "second-worker", DONE, result={"paths": ["again"]}) is None
    assert queue.get(job.id).result == {"paths": ["right"]}


def test_affinity_prefers_the_loaded_model_within_the_fairness_bound(queue_factory):
    """12 jobs alternating two models, one worker: without affinity 12 model switches;
    with it at most one switch per (passes + 1) jobs, and the head waits at most
    ``passes`` claims."""
    queue = queue_factory()
    passes = 3
    jobs = [queue.put("txt2img", {"model": "a" if i % 2 == 0 else "b"}) for i in range(12)]
    loaded, loads, order = None, 0, []
    while (record := queue.claim("w", 30, prefer_model=loaded, max_passes=passes)) is not None:
        model = record.request["model"]
        loads += model != loaded
        loaded = model
        order.append(jobs.index(next(j for j in jobs if j.id == record.id)))
    assert sorted(order) == list(range(12))
    assert loads <= -(-12 // (passes + 1)) + 1, order  # ceil(12 / 4) + 1 = 4
    assert loads < 12
    # fairness: job 1 (model b) was at the head from the first claim; taken by the 5th
    assert order.index(1) <= passes + 1


@pytest.mark.parametrize("affinity", [True, False])
def test_two_workers_at_different_speeds_switch_models_rarely(queue_factory, affinity):
    """Jobs alternate two models; worker 1 claims twice as often as worker 2 (separate
    clients). With affinity: one load each while both models have jobs, and one more for
    worker 1 when it has run every "a" job; without: worker 1 switches at nearly every job."""
    queue = queue_factory()
    for i in range(24):
        queue.put("txt2img", {"model": "a" if i % 2 == 0 else "b"})
    clients = {"w1": queue_factory(), "w2": queue_factory()}
    loaded: dict[str, str | None] = {"w1": None, "w2": None}
    loads = {"w1": 0, "w2": 0}
    claimed = 0
    for name in ["w1", "w1", "w2"] * 8:
        prefer = loaded[name] if affinity else None
        record = clients[name].claim(name, 30, prefer_model=prefer, max_passes=3)
        assert record is not None
        claimed += 1
        loads[name] += record.request["model"] != loaded[name]
        loaded[name] = record.request["model"]
    assert claimed == 24 and queue.count((QUEUED,)) == 0
    if affinity:
        assert loads == {"w1": 2, "w2": 1}, loads
    else:
        assert loads["w1"] >= 8, loads


def test_affinity_never_jumps_priority(queue_factory):
    queue = queue_factory()
    queue.put("txt2img", {"model": "a"})
    urgent = queue.put("txt2img", {"model": "b"}, priority=5)
    assert queue.claim("w", 30, prefer_model="a").id == urgent.id


def test_cancel_flag_reaches_another_client(queue_factory):
    api, worker = queue_factory(), queue_factory()
    job = api.put("txt2img", {})
    assert api.request_interrupt(job.id) is False  # not running: nothing to interrupt
    worker.claim("w", 30)
    assert worker.interrupt_requested(job.id) is False
    assert api.request_interrupt(job.id) is True
    assert worker.interrupt_requested(job.id) is True


def test_workers_registry(queue_factory):
    queue = queue_factory()
    info = WorkerInfo(id="w1", host="box", pid=123, device="cuda:1", started_at=time.time())
    queue.worker_seen(info)
    info.model, info.job_id, info.jobs_done = "tiny", "job1", 4
    queue.worker_seen(info)
    (seen,) = queue_factory().workers()
    assert (seen.id, seen.host, seen.pid, seen.device, seen.model, seen.job_id, seen.jobs_done) == (
        "w1", "box", 123, "cuda:1", "tiny", "job1", 4,
    )  # fmt: skip
    assert abs(seen.heartbeat_at - time.time()) < 5
    assert 0 <= seen.heartbeat_age_s < 5  # measured by the queue (PostgreSQL: the server's clock)
    time.sleep(0.5)
    (later,) = queue_factory().workers()
    assert later.heartbeat_age_s >= 0.45  # it ages without heartbeats
    queue.worker_seen(info)
    assert queue.workers()[0].heartbeat_age_s < later.heartbeat_age_s  # a heartbeat resets it
    queue.worker_gone("w1")
    assert queue.workers() == []


def test_postgres_notifications_reach_a_listener(postgres_url):
    api, worker = open_queue(postgres_url), open_queue(postgres_url)
    try:
        assert api.notifies
        list(api.listen(timeout_s=0.1))  # subscribe first: NOTIFY reaches current listeners only
        worker.notify({"kind": "progress", "job_id": "j", "step": 1})
        worker.notify({"kind": "progress", "job_id": "j", "step": 2, "preview": "x" * 10000})
        events = list(api.listen(timeout_s=2))
        assert [e["step"] for e in events] == [1, 2]
        assert "preview" not in events[1]  # too big for a notification: steps still arrive
    finally:
        api.close()
        worker.close()


def test_queue_urls_and_their_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("EASEL_QUEUE_URL", raising=False)
    assert queue_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'queue.db'}"
    monkeypatch.setenv("EASEL_QUEUE_URL", "sqlite:///x/q.db")
    assert queue_url(None, tmp_path) == "sqlite:///x/q.db"
    assert queue_url("postgresql://h/db", tmp_path) == "postgresql://h/db"
    assert sqlite_path("sqlite:///abs/q.db").as_posix() == "/abs/q.db"
    with pytest.raises(SettingError, match=r"EASEL_QUEUE_URL.*unknown queue 'redis'"):
        open_queue("redis://localhost")
    with pytest.raises(SettingError, match=r"EASEL_QUEUE_URL.*postgresql://u:\*\*\*@127.0.0.1:1/db"):
        open_queue("postgresql://u:secret@127.0.0.1:1/db")


def test_recovered_images_are_added_once_to_the_job_result(queue_factory):
    # Start-up recovery (core/jobs/recovery.py) adopts images a crash left unrecorded.
    queue = queue_factory()
    job = queue.put("txt2img", {"prompt": "crashed"})
    queue.claim("w", lease_s=30)
    queue.finish(job.id, "w", "done", result={"paths": ["/out/a.png"], "saved": True})
    record = queue.record_images(job.id, ["/out/a.png", "/out/b.png"])
    assert record.result["paths"] == ["/out/a.png", "/out/b.png"] and record.result["recovered"] is True
    again = queue.record_images(job.id, ["/out/b.png"])
    assert again.result["paths"] == ["/out/a.png", "/out/b.png"]
    assert queue.record_images("no-such-job", ["/out/c.png"]) is None


def test_a_crashed_jobs_error_names_the_extension_once_it_is_known(queue_factory):
    # Start-up names the extension that killed the worker (core/plugins/crash_marker.py):
    # added to an interrupted job's error; a running or done job is left alone.
    queue = queue_factory()
    crashed, running = queue.put("txt2img", {"prompt": "a"}), queue.put("txt2img", {"prompt": "b"})
    queue.claim("w", lease_s=30)
    queue.recover_running(only_expired=False, reason="interrupted: the server stopped")
    queue.claim("w2", lease_s=30)
    note = "extension 'killer' was running before_sample when the worker process died"
    record = queue.note_error(crashed.id, note)
    assert record.error == f"interrupted: the server stopped; {note}"
    assert queue.note_error(running.id, note).error is None  # still running: not touched
    assert queue.note_error("no-such-job", note) is None
