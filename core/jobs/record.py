"""The job record: one row per job, the same whichever queue backend stores it.

Plain JSON-serialisable data, so a Redis or Ray backend can store the same dict. The
request is stored as JSON (input images as base64 PNG); result images are NOT stored,
only the paths of the files the engine wrote.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
INTERRUPTED = "interrupted"

STATUSES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)
FINISHED_STATUSES = frozenset({DONE, FAILED, CANCELLED, INTERRUPTED})
# A job that ended without a complete result may be queued again with retry().
RETRYABLE_STATUSES = frozenset({FAILED, CANCELLED, INTERRUPTED})


@dataclass
class JobRecord:
    """One job. Times are Unix seconds (float); ``progress`` is 0.0 to 1.0.

    ``attempts`` counts runs started: a claim increments it, so a job found running
    after a crash (marked ``interrupted`` on restart) shows the run it lost.
    ``worker_id`` and ``lease_until`` say who runs it and until when that worker's
    heartbeat holds it, so a multi-worker backend can reclaim a job whose worker died.
    """

    id: str
    kind: str
    status: str
    priority: int = 0
    request: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0
    worker_id: str | None = None
    lease_until: float | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
