"""Several generations queued from one form of one browser session.

Generate clicked while a job runs queues another job (the host's queue runs them one by
one); each click's handler follows its own job. Only the session's *leading* job (the
oldest unfinished one) draws the progress bar and the preview, so two handlers never
fight over them; the bar says how many more wait and where they are in the queue.
Interrupt and Skip act on the leading job: the ones behind it stay queued.

The keys A1111 users know (Ctrl+Enter generates, Esc interrupts) are ``KEYS_JS``, put in
the page's ``<head>`` by ``ui.app.mount``.
"""

from __future__ import annotations

import html
import threading
from typing import Any

from ui.i18n import text


class SessionJobs:
    """The unfinished jobs of each (browser session, form), oldest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[tuple[str, str], list[str]] = {}

    def add(self, key: tuple[str, str], job_id: str) -> None:
        with self._lock:
            self._jobs.setdefault(key, []).append(job_id)

    def remove(self, key: tuple[str, str], job_id: str) -> None:
        with self._lock:
            jobs = self._jobs.get(key, [])
            if job_id in jobs:
                jobs.remove(job_id)
            if not jobs:
                self._jobs.pop(key, None)

    def leader(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            jobs = self._jobs.get(key)
            return jobs[0] if jobs else None

    def waiting(self, key: tuple[str, str]) -> list[str]:
        """The jobs behind the leading one."""
        with self._lock:
            return list(self._jobs.get(key, [])[1:])


def session_key(request: Any, prefix: str) -> tuple[str, str]:
    """One key per browser tab and form (txt2img and img2img queue separately)."""
    session = getattr(request, "session_hash", None) or ""
    return (str(session), prefix)


def waiting_note(positions: list[int | None], language: str = "en") -> str:
    """The line under the bar naming the session's queued jobs: "2 more queued (#1, #3)"."""
    if not positions:
        return ""
    places = ", ".join(f"#{p}" for p in positions if p)
    label = f"{len(positions)} {text('progress.more_queued', language)}" + (f" ({places})" if places else "")
    return f'<div class="easel-waiting" data-waiting="{len(positions)}">{html.escape(label)}</div>'


# Ctrl+Enter (Cmd+Enter on a Mac) clicks the Generate button of the tab that is shown,
# Alt+Enter its Skip button, Esc its Interrupt button, as in A1111. Buttons hidden in another tab have no layout
# box (offsetParent is null), so the shown one is the one the user sees.
KEYS_JS = """
<script>
(() => {
  if (window.__easelKeys) return;
  window.__easelKeys = true;
  const shown = (suffix) => Array.from(document.querySelectorAll(`button[id$="_${suffix}"]`))
    .find((b) => b.offsetParent !== null && /^(txt2img|img2img)_/.test(b.id));
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      const button = shown('generate');
      if (button) { event.preventDefault(); button.click(); }
    } else if (event.key === 'Enter' && event.altKey) {
      const button = shown('skip');
      if (button) { event.preventDefault(); button.click(); }
    } else if (event.key === 'Escape') {
      const button = shown('interrupt');
      if (button) button.click();
    }
  });
})();
</script>
"""
