"""A generation's progress events, phase by phase (loading, encoding, sampling step k/n,
decoding, saving), each with the time since the job started and an ETA that is honest:
unknown (negative) until the first step is timed, then the steps left plus the decode and
save time the previous batch took."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from core.results import DECODING, SAVING, ProgressEvent
from plugin_api import GenerationRequest


class PhaseAnnouncer:
    """One generation's progress events: a phase's start (loading, encoding, decoding,
    saving) and every sampling step, each with the time since the generation started and
    the time left (negative while unknown)."""

    def __init__(
        self, on_progress: Callable[[ProgressEvent], None] | None, req: GenerationRequest, started: float
    ) -> None:
        self.on_progress = on_progress
        self.batch_count = req.batch_count
        self.started = started
        self.eta_s = -1.0
        self._total = 0
        self._last_step_at = started

    def __call__(self, phase: str, batch_index: int = 0) -> None:
        if self.on_progress is None:
            return
        now = time.perf_counter()
        after_sampling = phase in (DECODING, SAVING)
        # after the steps, the ETA of the last step counts down; before them it is unknown
        eta = (
            max(0.0, self.eta_s - (now - self._last_step_at)) if after_sampling and self.eta_s >= 0 else -1.0
        )
        step = self._total if after_sampling else 0
        event = ProgressEvent(step, self._total, batch_index, self.batch_count, now - self.started, eta)
        event.phase = phase
        self.on_progress(event)

    def step(
        self, step: int, total: int, batch_index: int, sampling_s: float, preview: Any, tail_s: float
    ) -> None:
        """Step ``step`` of ``total`` done, ``sampling_s`` after this batch's sampling began;
        ``tail_s``: the decode and save time of one batch (from the last one)."""
        now = time.perf_counter()
        self._total, self._last_step_at = total, now
        per_step = sampling_s / max(1, step)
        later_batches = self.batch_count - batch_index - 1
        self.eta_s = per_step * (total - step) + later_batches * (per_step * total + tail_s) + tail_s
        if self.on_progress is not None:
            self.on_progress(
                ProgressEvent(
                    step, total, batch_index, self.batch_count, now - self.started, self.eta_s, preview
                )
            )

    def batch_done(self) -> float:
        """The seconds from this batch's last step to now (its decode and save)."""
        return max(0.0, time.perf_counter() - self._last_step_at)
