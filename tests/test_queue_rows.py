"""The Queue tab's rows and their buttons, over a real SQLite queue: values escaped, a
short id shown with the whole one as the row's key, thumbnails only of files in the
outputs folder, and cancel/retry/open checked against the job's state."""

from __future__ import annotations

import pytest
from PIL import Image

from core.jobs import JobService, SqliteJobQueue
from ui.job_client import JobClient
from ui.queue_tab import job_action, render_jobs


@pytest.fixture
def client(tmp_path):
    queue = SqliteJobQueue(tmp_path / "queue.db")
    service = JobService(queue, runner=lambda *a, **k: None, transient_dir=tmp_path / "t", lease_s=30)
    yield JobClient(service)
    queue.close()


def _finish(client, request, paths, status="done"):
    queue = client.service.queue
    record = queue.put("txt2img", request)
    claimed = queue.claim("w", 30)
    assert claimed.id == record.id
    result = {"paths": [str(p) for p in paths], "seeds": [11, 12], "infotexts": ["a\nSeed: 11"]}
    queue.finish(record.id, "w", status, result=result, error=None if status == "done" else status)
    return record.id


def test_rows_escape_everything_and_show_short_ids_with_thumbnails_from_outputs_only(client, tmp_path):
    outputs = tmp_path / "outputs"
    inside = outputs / "txt2img-images" / "2026-12-02" / "00000-11.png"
    inside.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(inside)
    outside = tmp_path / "elsewhere.png"
    Image.new("RGB", (8, 8)).save(outside)
    done = _finish(client, {"prompt": '<img src=x onerror="alert(1)">', "seed": -1}, [inside])
    stray = _finish(client, {"prompt": "outside", "seed": 3}, [outside], status="interrupted")
    queued = client.service.queue.put("txt2img", {"prompt": "waiting", "seed": 5}).id
    html = render_jobs(client, outputs)
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    rows = {
        job: html[html.index(f'<tr data-job-id="{job}"') :].split("</tr>")[0] for job in (done, stray, queued)
    }
    assert f'<code title="{done}">{done[:8]}</code>' in rows[done] and "11, 12" in rows[done]
    assert "/gradio_api/file=" in rows[done] and str(outside) not in html  # only the outputs are served
    assert 'data-action="open"' in rows[done] and 'data-action="retry"' not in rows[done]
    assert 'data-action="retry"' in rows[stray] and 'data-action="cancel"' in rows[queued]


def test_row_buttons_follow_the_jobs_state(client, tmp_path):
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    done = _finish(client, {"prompt": "p", "seed": 1}, [image])
    queued = client.service.queue.put("txt2img", {"prompt": "waiting", "seed": 5}).id
    message, _, _ = job_action(client, "retry", queued)
    assert "only a failed, cancelled or interrupted job" in message
    message, _, _ = job_action(client, "cancel", queued)
    assert message == f"job {queued} cancelled" and client.service.get(queued).status == "cancelled"
    message, _, _ = job_action(client, "retry", queued)
    assert message == f"job {queued[:8]} queued again" and client.service.get(queued).status == "queued"
    assert job_action(client, "cancel", "../../etc/passwd")[0] == "job '../../etc/passwd' not found"
    assert job_action(client, "delete", queued)[0] == "unknown action 'delete'"
    message, paths, info = job_action(client, "open", done)
    assert paths == [str(image)] and info == "a\nSeed: 11" and message.endswith("1 image(s)")
