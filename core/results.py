"""What a generation gives back, and how a caller follows or stops it.

Shared by the engine, the job queue and every front end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from plugin_api.types import GenerationResult

__all__ = ["CancelToken", "GenerationInterrupted", "GenerationResult", "ProgressEvent"]


class GenerationInterrupted(Exception):
    """Raised inside the engine when a running generation was interrupted."""


class CancelToken:
    """Lets another thread interrupt a generation (stop now) or skip the current batch.

    The engine checks it once per sampler step, so a stop takes effect within one step.
    """

    def __init__(self) -> None:
        self._interrupt = threading.Event()
        self._skip = threading.Event()

    def interrupt(self) -> None:
        self._interrupt.set()

    def skip(self) -> None:
        self._skip.set()

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    def take_skip(self) -> bool:
        """True once after skip() was called: the engine abandons the current batch."""
        if self._skip.is_set():
            self._skip.clear()
            return True
        return False


# The phases a job goes through, in order (``ProgressEvent.phase``); "queued" is the
# queue's, before a worker takes the job, and "starting" the worker's, before the engine
# reports (validation, the prompt stage). One event starts each phase; "sampling" sends one
# per step.
QUEUED, STARTING, LOADING, ENCODING, SAMPLING, DECODING, SAVING = (
    "queued", "starting", "loading", "encoding", "sampling", "decoding", "saving",
)  # fmt: skip
PHASES = (QUEUED, STARTING, LOADING, ENCODING, SAMPLING, DECODING, SAVING)
# what clients show for a phase (A1111's textinfo, the CLI bar, the WebUI's English label)
PHASE_LABELS = {
    QUEUED: "Queued",
    STARTING: "Starting",
    LOADING: "Loading model",
    ENCODING: "Encoding prompt",
    SAMPLING: "Sampling",
    DECODING: "Decoding",
    SAVING: "Saving",
}


@dataclass
class ProgressEvent:
    """Progress of one generation: once when a phase starts, and once per sampler step."""

    step: int  # steps done in the current batch, 1-based (0 before sampling)
    total_steps: int
    batch_index: int  # 0-based index of the current batch (of batch_count)
    batch_count: int
    elapsed_s: float  # since the generation started
    eta_s: float  # seconds left; negative while unknown (before the first step)
    preview: Any | None = None  # PIL image, a cheap latent preview
    phase: str = SAMPLING

    @property
    def fraction(self) -> float:
        """Progress over the whole request, 0.0 to 1.0."""
        done = self.batch_index * self.total_steps + self.step
        return done / max(1, self.total_steps * self.batch_count)
