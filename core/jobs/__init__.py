"""The persistent job queue, its worker and the live progress service."""

from core.jobs.queue import JobNotFound, JobQueue, JobStateError
from core.jobs.record import JobRecord
from core.jobs.service import JobService, JobTimeout
from core.jobs.sqlite_queue import SqliteJobQueue

__all__ = [
    "JobNotFound",
    "JobQueue",
    "JobRecord",
    "JobService",
    "JobStateError",
    "JobTimeout",
    "SqliteJobQueue",
]
