"""The Queue tab: every job (queued, running, finished) from the persistent queue, so
the history survives a restart; cancel a queued job or interrupt the running one; and the
workers that run them (one, or several with `easel worker` / `--workers N`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.i18n import say, t
from ui.job_client import JobClient
from ui.language import request_language
from ui.translated_blocks import translated_columns

COLUMNS = ["id", "kind", "status", "progress", "prompt", "seed", "created", "finished", "error"]
WORKER_COLUMNS = ["worker", "host", "pid", "device", "loaded model", "current job", "last heartbeat", "state"]
REFRESH_S = 2.0


def _field(record: Any, name: str, default: Any = None) -> Any:
    return record.get(name, default) if isinstance(record, dict) else getattr(record, name, default)


def _clock(value: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value)) if value else ""


def job_rows(client: JobClient, limit: int = 100) -> list[list[Any]]:
    """One row per job, newest first, as the table shows it."""
    rows = []
    for record in client.list_jobs(limit=limit):
        request = _field(record, "request") or {}
        result = _field(record, "result") or {}
        seeds = result.get("seeds") or []
        prompt = str(request.get("prompt", ""))
        rows.append(
            [
                _field(record, "id"),
                _field(record, "kind", ""),
                _field(record, "status", ""),
                f"{round(100 * float(_field(record, 'progress', 0.0) or 0.0))}%",
                prompt if len(prompt) <= 80 else prompt[:77] + "…",
                ", ".join(str(s) for s in seeds) or str(request.get("seed", "")),
                _clock(_field(record, "created_at")),
                _clock(_field(record, "finished_at")),
                _field(record, "error") or "",
            ]
        )
    return rows


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


@dataclass
class QueueTab:
    table: gr.Dataframe
    timer: gr.Timer  # ticks only while the tab is shown (see ui/app.py)
    auto_refresh: gr.Checkbox


def build_queue_tab(client: JobClient) -> QueueTab:
    with gr.Row():
        refresh = gr.Button(t("queue.refresh"), elem_id="queue_refresh", size="sm", scale=0)
        auto = gr.Checkbox(value=True, label=t("queue.auto_refresh"), elem_id="queue_auto_refresh")
    table = gr.Dataframe(
        value=lambda: job_rows(client),
        headers=COLUMNS,
        label=t("queue.jobs"),
        elem_id="queue_table",
        elem_classes=translated_columns(COLUMNS.index("status")),
        interactive=False,
        wrap=True,
    )
    with gr.Row():
        job_id = gr.Textbox(label=t("queue.job_id"), elem_id="queue_job_id", scale=3)
        cancel = gr.Button(t("queue.cancel"), elem_id="queue_cancel", variant="stop", scale=1)
        interrupt = gr.Button(t("queue.interrupt"), elem_id="queue_interrupt", scale=1)
    message = gr.Textbox(label=t("queue.message"), elem_id="queue_message", interactive=False)
    workers = gr.Dataframe(
        value=lambda: worker_rows(client),
        headers=WORKER_COLUMNS,
        label=t("queue.workers"),
        elem_id="queue_workers",
        elem_classes=translated_columns(WORKER_COLUMNS.index("state")),
        interactive=False,
    )
    timer = gr.Timer(REFRESH_S, active=False)

    def refresh_rows() -> tuple[list[list[Any]], list[list[Any]]]:
        return job_rows(client), worker_rows(client)

    def pick_row(evt: gr.SelectData) -> str:
        # clicking any cell of a row picks that job
        row = evt.row_value if evt.row_value is not None else []
        return str(row[0]) if row else ""

    def cancel_job(selected: str, request: gr.Request) -> tuple[str, list[list[Any]]]:
        return say(client.cancel(selected), request_language(request)), job_rows(client)

    def interrupt_running(request: gr.Request) -> tuple[str, list[list[Any]]]:
        language = request_language(request)
        running = [r for r in client.list_jobs(limit=200) if _field(r, "status") == "running"]
        if not running:
            return say("no job is running", language), job_rows(client)
        return say(client.cancel(_field(running[0], "id")), language), job_rows(client)

    refresh.click(refresh_rows, outputs=[table, workers])
    timer.tick(refresh_rows, outputs=[table, workers], show_progress="hidden")
    auto.change(lambda on: gr.Timer(active=on), inputs=[auto], outputs=[timer])
    table.select(pick_row, outputs=[job_id])
    cancel.click(cancel_job, inputs=[job_id], outputs=[message, table])
    interrupt.click(interrupt_running, outputs=[message, table])
    return QueueTab(table, timer, auto)
