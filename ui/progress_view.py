"""The progress bar shown above the preview: an accessible ``role=progressbar`` element
with the phase (loading model, encoding prompt, sampling step k/n, decoding, saving), the
batch, the time so far and the time left, rendered from a ``JobSnapshot``."""

from __future__ import annotations

import html
from collections.abc import Callable

from ui.i18n import TEXTS, text
from ui.job_client import JobSnapshot

PROGRESS_CSS = """
.easel-progress { font-size: 0.9em; }
.easel-progress .bar { height: 14px; border-radius: 7px; background: var(--neutral-200, #e5e7eb);
  overflow: hidden; }
.easel-progress .fill { height: 100%; background: var(--color-accent, #f97316); transition: width 0.1s; }
.easel-progress .label { margin-top: 4px; }
.easel-error-panel { border: 1px solid #dc2626; border-radius: 6px; padding: 8px 12px;
  background: #fef2f2; color: #991b1b; }
"""


def _seconds(value: float) -> str:
    value = max(0.0, value)
    return f"{value:.1f} s" if value < 60 else f"{int(value // 60)} min {int(value % 60)} s"


def _running_label(snapshot: JobSnapshot, tr: Callable[[str], str]) -> str:
    """The phase, the step while sampling, the batch, the time so far and, once the first
    step measured it, the time left: "sampling · step 3/20 · batch 1/2 · 4.1 s · ETA 9.0 s"."""
    phase = snapshot.phase or ("sampling" if snapshot.total_steps else "starting")
    key = f"progress.{phase}"
    parts = [tr(key) if key in TEXTS else phase]
    if phase == "sampling" and snapshot.total_steps:
        parts.append(f"{tr('progress.step')} {snapshot.step}/{snapshot.total_steps}")
    if snapshot.batch_count > 1:
        parts.append(f"{tr('progress.batch')} {snapshot.batch_index + 1}/{snapshot.batch_count}")
    parts.append(_seconds(snapshot.elapsed_s))
    if snapshot.eta_s >= 0:
        parts.append(f"{tr('progress.eta')} {_seconds(snapshot.eta_s)}")
    return " · ".join(parts)


def render_progress(snapshot: JobSnapshot | None, language: str = "en") -> str:
    """HTML for one moment of a job; an empty bar before any job ran."""

    def tr(key: str) -> str:
        return text(key, language)

    if snapshot is None:
        percent, label = 0, ""
    else:
        percent = round(100 * min(1.0, max(0.0, snapshot.fraction)))
        if snapshot.status == "queued":
            position = f" #{snapshot.queue_position}" if snapshot.queue_position else ""
            label = f"{tr('progress.queued')}{position}"
        elif snapshot.status == "running":
            label = _running_label(snapshot, tr)
        else:
            if snapshot.status == "done":
                percent = 100
            detail = snapshot.error if snapshot.error and snapshot.error != snapshot.status else ""
            status_key = f"progress.{snapshot.status}"
            status_text = tr(status_key) if status_key in TEXTS else snapshot.status
            label = status_text + (f": {detail}" if detail else "")
    status = snapshot.status if snapshot else "idle"
    phase = snapshot.phase if snapshot and snapshot.status == "running" else ""
    return (
        f'<div class="easel-progress" data-status="{html.escape(status)}" data-phase="{html.escape(phase)}">'
        f'<div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
        f'aria-valuenow="{percent}"><div class="fill" style="width:{percent}%"></div></div>'
        f'<div class="label">{html.escape(label)}</div></div>'
    )
