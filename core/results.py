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


@dataclass
class ProgressEvent:
    """Progress of one generation, sent once per sampler step."""

    step: int  # steps done in the current batch, 1-based
    total_steps: int
    batch_index: int  # 0-based index of the current batch (of batch_count)
    batch_count: int
    elapsed_s: float
    eta_s: float
    preview: Any | None = None  # PIL image, a cheap latent preview

    @property
    def fraction(self) -> float:
        """Progress over the whole request, 0.0 to 1.0."""
        done = self.batch_index * self.total_steps + self.step
        return done / max(1, self.total_steps * self.batch_count)
