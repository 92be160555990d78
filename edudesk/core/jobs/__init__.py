"""Durable jobs (transactional outbox): enqueue with the state change, claim, run, retry, dead-letter.

`kinds` says what a job is, `queue` stores and leases them, `worker` runs them.
"""

from edudesk.core.jobs.kinds import (
    AGED_SECONDS,
    LOCKED_RETRY_SECONDS,
    URGENT_KINDS,
    Handler,
    Handlers,
    JobKind,
    JobState,
    PermanentJobError,
    RetryLater,
    database_locked,
    write_when_done,
)
from edudesk.core.jobs.queue import JobQueue
from edudesk.core.jobs.worker import JobWorker
from edudesk.core.models import Job

__all__ = [
    "AGED_SECONDS",
    "LOCKED_RETRY_SECONDS",
    "URGENT_KINDS",
    "Handler",
    "Handlers",
    "Job",
    "JobKind",
    "JobQueue",
    "JobState",
    "JobWorker",
    "PermanentJobError",
    "RetryLater",
    "database_locked",
    "write_when_done",
]
