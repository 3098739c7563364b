"""The Queue tab: every job (queued, running, finished) from the persistent queue, so
the history survives a restart, one row each: a thumbnail of its first image, a short id
(the whole one on hover), its state and progress, the prompt, every seed, when it was
queued and finished, and per-row buttons: cancel (queued) or interrupt (running), retry
(failed, cancelled, interrupted) and open (its images and infotext below the table).
Then the workers that run the jobs (one, or several with `easel worker` / `--workers N`).

The rows are HTML built here (every value escaped); a button click names its action and
job id, and the handler checks both against the queue before doing anything.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gradio as gr

from ui.i18n import t
from ui.job_client import JobClient

COLUMNS = ["", "id", "state", "progress", "prompt", "seeds", "queued", "finished", ""]
WORKER_COLUMNS = ["worker", "host", "pid", "device", "loaded model", "current job", "last heartbeat", "state"]
REFRESH_S = 2.0
SHORT_ID = 8
CANCELLABLE = frozenset({"queued", "running"})
RETRYABLE = frozenset({"failed", "cancelled", "interrupted"})

QUEUE_CSS = """
table.easel-jobs { width: 100%; border-collapse: collapse; font-size: 0.9em; }
table.easel-jobs th, table.easel-jobs td { padding: 4px 6px; border-bottom: 1px solid var(--border-color-primary, #e5e7eb);
  text-align: left; vertical-align: middle; }
table.easel-jobs img { width: 56px; height: 56px; object-fit: cover; border-radius: 4px; display: block; }
table.easel-jobs .thumb-empty { width: 56px; height: 56px; background: var(--neutral-100, #f3f4f6); border-radius: 4px; }
table.easel-jobs code { font-size: 0.95em; }
table.easel-jobs .state { padding: 1px 8px; border-radius: 9px; background: #e5e7eb; white-space: nowrap; }
table.easel-jobs .state-done { background: #dcfce7; color: #166534; }
table.easel-jobs .state-running { background: #ffedd5; color: #9a3412; }
table.easel-jobs .state-queued { background: #dbeafe; color: #1e40af; }
table.easel-jobs .state-failed { background: #fee2e2; color: #991b1b; }
table.easel-jobs .state-interrupted, table.easel-jobs .state-cancelled { background: #f3f4f6; color: #374151; }
table.easel-jobs button { margin: 1px; padding: 2px 8px; border-radius: 6px; cursor: pointer; font-size: 0.85em; font-weight: normal;
  border: 1px solid var(--border-color-primary, #d1d5db); background: var(--button-secondary-background-fill, #f9fafb); }
table.easel-jobs .error { color: #991b1b; font-size: 0.85em; }
"""

QUEUE_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (button) trigger('click', {action: button.dataset.action, job: button.dataset.jobId});
});
"""


def _field(record: Any, name: str, default: Any = None) -> Any:
    return record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)


def _clock(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else ""


def _thumbnail_url(result: dict[str, Any], outputs_dir: Path | None) -> str | None:
    """Gradio's file URL of the job's first image, when it is a file in the outputs folder
    (the only folder the WebUI serves)."""
    paths = [p for p in result.get("paths") or [] if isinstance(p, str)]
    if not paths or outputs_dir is None:
        return None
    path = Path(paths[0])
    try:
        inside = path.resolve().is_relative_to(outputs_dir.resolve()) and path.is_file()
    except OSError:
        return None
    return f"/gradio_api/file={quote(str(path), safe='/')}" if inside else None


def job_rows(client: JobClient, limit: int = 100) -> list[list[Any]]:
    """One row per job, newest first, as plain values (the full id first)."""
    rows = []
    for record in client.list_jobs(limit=limit):
        request = _field(record, "request") or {}
        result = _field(record, "result") or {}
        seeds = result.get("seeds") or []
        rows.append(
            [
                _field(record, "id"),
                _field(record, "kind", ""),
                _field(record, "status", ""),
                f"{round(100 * float(_field(record, 'progress', 0.0) or 0.0))}%",
                str(request.get("prompt", "")),
                ", ".join(str(s) for s in seeds) or str(request.get("seed", "")),
                _clock(_field(record, "created_at")),
                _clock(_field(record, "finished_at")),
                _field(record, "error") or "",
            ]
        )
    return rows


def render_jobs(client: JobClient, outputs_dir: Path | None, limit: int = 100) -> str:
    """The jobs table as HTML: every value from the queue is escaped."""
    esc = html.escape
    head = "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
    body = []
    for record in client.list_jobs(limit=limit):
        job_id = str(_field(record, "id"))
        status = str(_field(record, "status", ""))
        request = _field(record, "request") or {}
        result = _field(record, "result") or {}
        seeds = ", ".join(str(s) for s in result.get("seeds") or []) or str(request.get("seed", ""))
        prompt = str(request.get("prompt", ""))
        short_prompt = prompt if len(prompt) <= 90 else prompt[:87] + "…"
        url = _thumbnail_url(result, outputs_dir)
        thumb = f'<img src="{esc(url)}" alt="" loading="lazy">' if url else '<div class="thumb-empty"></div>'
        progress = f"{round(100 * float(_field(record, 'progress', 0.0) or 0.0))}%"
        error = _field(record, "error") or ""
        finished = esc(_clock(_field(record, "finished_at")))
        if error and status != "interrupted":
            finished += f'<div class="error">{esc(str(error))}</div>'
        actions = []
        if status in CANCELLABLE:
            label = "interrupt" if status == "running" else "cancel"
            actions.append(("cancel", label))
        if status in RETRYABLE:
            actions.append(("retry", "retry"))
        if result.get("paths") or result.get("infotexts"):
            actions.append(("open", "open"))
        buttons = "".join(
            f'<button data-action="{a}" data-job-id="{esc(job_id)}" title="{esc(label)} {esc(job_id)}">'
            f"{esc(label)}</button>"
            for a, label in actions
        )
        body.append(
            f'<tr data-job-id="{esc(job_id)}" data-status="{esc(status)}"><td>{thumb}</td>'
            f'<td><code title="{esc(job_id)}">{esc(job_id[:SHORT_ID])}</code></td>'
            f'<td><span class="state state-{esc(status)}">{esc(status)}</span></td><td>{esc(progress)}</td>'
            f'<td title="{esc(prompt)}">{esc(short_prompt)}</td><td>{esc(seeds)}</td>'
            f"<td>{esc(_clock(_field(record, 'created_at')))}</td><td>{finished}</td><td>{buttons}</td></tr>"
        )
    if not body:
        body.append(f'<tr><td colspan="{len(COLUMNS)}">—</td></tr>')
    return f'<table class="easel-jobs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def worker_rows(client: JobClient) -> list[list[Any]]:
    rows = []
    for w in client.workers():
        state = "draining" if w["draining"] else "alive"
        if not w["alive"] and not w["draining"]:
            # presumed dead (killed, lost power): its row stays until it comes back
            age = float(w.get("heartbeat_age_s", 0.0))
            state = (
                f"stale: no heartbeat for {age:.1f} s" if age < 10 else f"stale: no heartbeat for {age:.0f} s"
            )
        rows.append(
            [
                w["id"],
                w["host"],
                w["pid"],
                w["device"],
                w["loaded_model"] or "",
                w["current_job"] or "",
                _clock(w["last_heartbeat"]),
                state,
            ]
        )
    return rows


def job_action(client: JobClient, action: str, job_id: str) -> tuple[str, list[str], str]:
    """Run one row button: (message, images to show, infotext to show)."""
    record = client.service.get(job_id) if job_id else None
    if record is None:
        return f"job {job_id!r} not found", [], ""
    status = str(_field(record, "status", ""))
    if action == "cancel":
        return client.cancel(job_id), [], ""
    if action == "retry":
        if status not in RETRYABLE:
            return (
                f"job {job_id[:SHORT_ID]} is {status}: only a failed, cancelled or interrupted job is retried",
                [],
                "",
            )
        try:
            client.service.retry(job_id)
        except (KeyError, ValueError) as exc:
            return f"job {job_id[:SHORT_ID]}: {exc}", [], ""
        return f"job {job_id[:SHORT_ID]} queued again", [], ""
    if action == "open":
        snapshot = client.snapshot(job_id)
        paths = client.result_paths(snapshot.result)
        infotexts = client.result_infotexts(snapshot.result)
        return f"job {job_id[:SHORT_ID]}: {len(paths)} image(s)", paths, "\n\n".join(infotexts)
    return f"unknown action {action!r}", [], ""


@dataclass
class QueueTab:
    table: gr.HTML
    timer: gr.Timer  # ticks only while the tab is shown (see ui/app.py)
    auto_refresh: gr.Checkbox


def build_queue_tab(client: JobClient, outputs_dir: Path | None = None) -> QueueTab:
    with gr.Row():
        refresh = gr.Button(t("queue.refresh"), elem_id="queue_refresh", size="sm", scale=0)
        auto = gr.Checkbox(value=True, label=t("queue.auto_refresh"), elem_id="queue_auto_refresh")
        interrupt = gr.Button(t("queue.interrupt"), elem_id="queue_interrupt", size="sm", scale=0)
    table = gr.HTML(
        lambda: render_jobs(client, outputs_dir),
        label=t("queue.jobs"),
        elem_id="queue_table",
        js_on_load=QUEUE_JS,
        css_template=QUEUE_CSS,
    )
    message = gr.Textbox(label=t("queue.message"), elem_id="queue_message", interactive=False)
    with gr.Row(equal_height=False):
        opened = gr.Gallery(
            label=t("queue.opened"), elem_id="queue_opened", columns=4, height=260, interactive=False,
            object_fit="contain",
        )  # fmt: skip
        opened_info = gr.Textbox(label=t("gen.info"), elem_id="queue_opened_info", lines=6, interactive=False)
    workers = gr.Dataframe(
        value=lambda: worker_rows(client),
        headers=WORKER_COLUMNS,
        label=t("queue.workers"),
        elem_id="queue_workers",
        interactive=False,
    )
    timer = gr.Timer(REFRESH_S, active=False)

    def refresh_rows() -> tuple[str, list[list[Any]]]:
        return render_jobs(client, outputs_dir), worker_rows(client)

    def on_row_button(evt: gr.EventData) -> tuple[Any, ...]:
        data = getattr(evt, "_data", None) or {}
        text, paths, info = job_action(client, str(data.get("action", "")), str(data.get("job", "")))
        gallery = paths if data.get("action") == "open" else gr.update()
        shown_info = info if data.get("action") == "open" else gr.update()
        return text, render_jobs(client, outputs_dir), gallery, shown_info

    def interrupt_running() -> tuple[str, str]:
        running = [r for r in client.list_jobs(limit=200) if _field(r, "status") == "running"]
        if not running:
            return "no job is running", render_jobs(client, outputs_dir)
        return client.cancel(_field(running[0], "id")), render_jobs(client, outputs_dir)

    refresh.click(refresh_rows, outputs=[table, workers])
    timer.tick(refresh_rows, outputs=[table, workers], show_progress="hidden")
    auto.change(lambda on: gr.Timer(active=on), inputs=[auto], outputs=[timer])
    table.click(on_row_button, outputs=[message, table, opened, opened_info], show_progress="hidden")
    interrupt.click(interrupt_running, outputs=[message, table])
    return QueueTab(table, timer, auto)
