"""``--result-images db`` at the queue: image bytes stored with the finish, on a real
SQLite file and a throwaway PostgreSQL server, and the setting's checks and bound.
(tests/api/test_result_images_processes.py runs it end to end on separate nodes.)"""

from __future__ import annotations

import pytest

from core.config import Settings
from core.errors import SettingError
from core.jobs.open_queue import open_queue
from core.jobs.queue import JobQueue
from core.jobs.record import DONE
from core.jobs.result_images import (
    DB,
    OUTPUTS,
    SHARED_FOLDER,
    ResultImage,
    ResultImageError,
    local_path,
    read_result_images,
    result_images_mode,
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # any bytes: stored as they are


@pytest.fixture(params=["sqlite", "postgresql"])
def queues(request, tmp_path):
    """Two clients of one queue: the worker's and the API node's."""
    url = (
        f"sqlite:///{tmp_path / 'queue.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    opened: list[JobQueue] = [open_queue(url), open_queue(url)]
    yield opened
    for queue in opened:
        queue.close()


def test_bytes_are_stored_with_the_finish_and_read_by_another_client(queues):
    worker, api = queues
    job = worker.put("txt2img", {"prompt": "x"})
    assert worker.claim("w1", 30).id == job.id
    images = [ResultImage(0, OUTPUTS, "a/0.png", PNG), ResultImage(1, OUTPUTS, "a/1.png", PNG[::-1])]
    assert worker.finish(job.id, "w1", DONE, result={"paths": ["/w/a/0.png", "/w/a/1.png"]}, images=images)
    assert api.result_image(job.id, 0) == PNG
    assert api.result_image(job.id, 1) == PNG[::-1]
    assert api.result_image(job.id, 2) is None


def test_a_late_finish_stores_no_bytes(queues):
    worker, api = queues
    job = worker.put("txt2img", {"prompt": "x"})
    worker.claim("w1", 30)
    late = worker.finish(
        job.id, "someone-else", DONE, result={}, images=[ResultImage(0, OUTPUTS, "x.png", PNG)]
    )
    assert late is None and api.result_image(job.id, 0) is None  # ignored, bytes and all


def test_retry_drops_the_old_runs_bytes(queues):
    worker, api = queues
    job = worker.put("txt2img", {"prompt": "x"})
    worker.claim("w1", 30)
    worker.finish(job.id, "w1", "interrupted", result={}, images=[ResultImage(0, OUTPUTS, "x.png", PNG)])
    assert api.result_image(job.id, 0) == PNG
    api.retry(job.id)
    assert api.result_image(job.id, 0) is None


def test_the_setting_and_its_errors(monkeypatch, tmp_path):
    monkeypatch.delenv("EASEL_RESULT_IMAGES", raising=False)
    assert result_images_mode(None) == SHARED_FOLDER  # the default
    assert Settings.from_env().result_images == SHARED_FOLDER
    monkeypatch.setenv("EASEL_RESULT_IMAGES", "db")
    assert Settings.from_env().result_images == DB
    assert result_images_mode("shared-folder") == SHARED_FOLDER  # the flag wins
    monkeypatch.setenv("EASEL_RESULT_IMAGES", "redis")
    with pytest.raises(SettingError, match="--result-images / EASEL_RESULT_IMAGES"):
        Settings.from_env()
    monkeypatch.delenv("EASEL_RESULT_IMAGES")
    monkeypatch.setenv("EASEL_RESULT_IMAGE_MAX_MB", "0")
    with pytest.raises(SettingError, match="EASEL_RESULT_IMAGE_MAX_MB"):
        Settings.from_env()


def test_an_image_over_the_bound_is_refused_naming_the_setting(tmp_path):
    outputs = tmp_path / "outputs"
    (outputs / "day").mkdir(parents=True)
    small, big = outputs / "day" / "small.png", outputs / "day" / "big.png"
    small.write_bytes(PNG)
    big.write_bytes(PNG * 100)
    roots = {OUTPUTS: outputs.resolve()}
    entries, images = read_result_images("j", [str(small)], roots, max_bytes=len(PNG))
    assert entries == [{"root": OUTPUTS, "name": "day/small.png", "bytes": len(PNG)}]
    assert images[0].data == PNG
    with pytest.raises(ResultImageError, match="--result-image-max-mb / EASEL_RESULT_IMAGE_MAX_MB"):
        read_result_images("j", [str(small), str(big)], roots, max_bytes=len(PNG))


def test_a_stored_name_cannot_leave_its_folder(tmp_path):
    roots = {OUTPUTS: tmp_path.resolve()}
    assert local_path({"root": OUTPUTS, "name": "a/b.png"}, roots) == tmp_path.resolve() / "a" / "b.png"
    for name in ("../escape.png", "/etc/passwd", ""):
        with pytest.raises(PermissionError):
            local_path({"root": OUTPUTS, "name": name}, roots)
    with pytest.raises(PermissionError):
        local_path({"root": "elsewhere", "name": "a.png"}, roots)


def _worker_with_db_images(tmp_path, max_mb: float):
    from core.jobs import JobService, SqliteJobQueue
    from tests.test_jobs_queue import StepRunner

    return JobService(
        SqliteJobQueue(tmp_path / "queue.db"),
        StepRunner(),
        transient_dir=tmp_path / "transient",
        image_roots=(tmp_path / "outputs",),
        shared=True,
        device="cpu",
        lease_s=5,
        result_images=DB,
        result_image_max_mb=max_mb,
    ).start(recover=False)


def test_a_worker_stores_its_files_bytes_and_refuses_an_image_over_the_bound(tmp_path):
    """A real worker thread on a real SQLite queue (the plain-Python runner of
    tests/test_jobs_queue.py writes 8x8 PNGs): the stored bytes are its file's; with a
    bound below one image's size the job fails with an error naming the setting."""
    from plugin_api.types import GenerationRequest

    service = _worker_with_db_images(tmp_path / "ok", max_mb=1)
    try:
        job_id = service.submit(GenerationRequest(prompt="p", steps=1, batch_count=2))
        record = service.wait(job_id, timeout=30)
        assert record.status == DONE, record
        paths, stored = record.result["paths"], record.result["stored_images"]
        assert [e["root"] for e in stored] == ["transient", "transient"]
        for index, path in enumerate(paths):
            with open(path, "rb") as handle:
                assert service.queue.result_image(job_id, index) == handle.read()
    finally:
        service.stop()
    service = _worker_with_db_images(tmp_path / "small", max_mb=0.00001)  # about 10 bytes
    try:
        job_id = service.submit(GenerationRequest(prompt="p", steps=1))
        record = service.wait(job_id, timeout=30)
        assert record.status == "failed"
        assert "--result-image-max-mb / EASEL_RESULT_IMAGE_MAX_MB" in record.error
        assert "--result-images shared-folder" in record.error
        assert service.queue.result_image(job_id, 0) is None
    finally:
        service.stop()
