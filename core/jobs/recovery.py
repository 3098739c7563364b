"""Start-up recovery of images written by jobs that never recorded them (a crash between
the rename that makes an image visible and the job record; core/saving/journal.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from core.jobs.queue import JobQueue
from core.jobs.record import DONE
from core.saving.journal import ImageJournal, remove_stray_temp_files

log = logging.getLogger("easel.jobs")


def recover_images(queue: JobQueue, journal: ImageJournal, outputs_dir: Path) -> dict[str, list[Path]]:
    """Finish interrupted renames, adopt each journalled job's images into its record,
    forget journals whose job is done or gone, delete unrecorded temporary files.
    Idempotent: a crash during recovery is recovered by the next start."""
    adopted: dict[str, list[Path]] = {}
    for job_id, paths in journal.recover().items():
        record = queue.get(job_id)
        if record is None or record.status == DONE:
            journal.forget(job_id)  # recorded already, or nothing to record it in
            continue
        if paths:
            queue.record_images(job_id, [str(p) for p in paths])
            adopted[job_id] = paths
            log.warning(
                "job %s (%s): adopted %d image(s) written before the crash", job_id, record.status, len(paths)
            )
        # the journal stays: a retry of this job reuses these images instead of writing copies
    remove_stray_temp_files(outputs_dir, keep=journal.temp_files())
    return adopted
