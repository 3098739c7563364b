"""The command line's progress bar: a tqdm bar over all steps of all batches, labelled with
the phase ("Loading model", "Encoding prompt", "Sampling", "Decoding", "Saving"), for a
local run (``ProgressEvent``s) and a server's job (its events' JSON) alike."""

from __future__ import annotations

import sys
from typing import Any


class PhaseBar:
    """Made on the first event; the step total is set once sampling has one."""

    def __init__(self, file: Any = None) -> None:
        self.bar: Any = None
        self.file = file or sys.stderr

    def update(self, progress: dict[str, Any]) -> None:
        """``progress``: a server's progress event (``LiveProgress.as_dict``)."""
        from tqdm import tqdm

        from core.results import PHASE_LABELS

        if self.bar is None:
            self.bar = tqdm(total=None, file=self.file, unit="step")
        total = int(progress.get("total_steps") or 0) * int(progress.get("batch_count") or 1)
        if total and self.bar.total != total:
            self.bar.total = total
        phase = str(progress.get("phase") or "sampling")
        self.bar.set_description_str(PHASE_LABELS.get(phase, phase), refresh=False)
        self.bar.n = int(progress.get("batch_index") or 0) * int(progress.get("total_steps") or 0) + int(
            progress.get("step") or 0
        )
        self.bar.refresh()

    def update_event(self, event: Any) -> None:
        """A local run's ``ProgressEvent``."""
        self.update(
            {
                "phase": event.phase,
                "step": event.step,
                "total_steps": event.total_steps,
                "batch_index": event.batch_index,
                "batch_count": event.batch_count,
            }
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
