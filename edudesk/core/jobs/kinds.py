"""What a durable job is: its kinds and states, the handler signature, and the exceptions a handler raises."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import OperationalError

from edudesk.core.models import Job

Handler = Callable[[Job], Awaitable[None]]
# Writes a finished job leaves to the transaction that marks it done: called once per batch of jobs completed
# together, with the items of each (JobQueue._complete).
DoneWriter = Callable[[BaseDBAsyncClient, list[Any]], Awaitable[None]]
# Set by the worker around each handler call: the writes that handler left (None: no worker will complete it).
_WHEN_DONE: ContextVar[list[tuple[DoneWriter, Any]] | None] = ContextVar("edudesk_when_done", default=None)


class JobKind(enum.StrEnum):
    """Every kind of durable job; the value is what the `job.kind` column stores. Each package registers
    the handlers of its own kinds (`handlers()` beside the code); main.py only composes them."""

    PROCESS_MAIL = "process_mail"  # core/intake/pipeline.py IntakePipeline.job
    SEND_MAIL = "send_mail"  # mailer/delivery.py MailDelivery
    REFRESH_CARDS = "refresh_cards"  # core/chats ChatHub.refresh_cards
    CHAT_NOTICE = "chat_notice"  # core/chats ChatHub.notice
    PROVISION = "provision"  # core/provisioning/job.py ProvisionJob
    DELETE_ACCOUNT = "delete_account"  # core/provisioning/removal.py DeleteAccountJob
    RESTORE_ACCOUNT = "restore_account"  # core/provisioning/removal.py RestoreAccountJob (a kept account)
    SIGN_NOTICE = "sign_notice"  # core/signing/turns.py sign_notice
    SIGN_BATCH = "sign_batch"  # core/signing/runner.py SignRunner.sign_batch
    SIGN_POLL = "sign_poll"  # core/signing/runner.py SignRunner.sign_poll
    SIGN_ISSUE = "sign_issue"  # core/signing/runner.py SignRunner.sign_issue
    ZALO_EVENT = "zalo_event"  # bot/zalo/app.py ZaloSurface.event
    MONTHLY_REPORT = "monthly_report"  # core/reports/monthly.py MonthlyReportJob
    PORTAL_SEND = "portal_send"  # core/signing/portaljob.py PortalSendJob


class JobState(enum.StrEnum):
    """Where a job is: waiting (or retrying), claimed by a worker under a lease, finished, or parked."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    DEAD = "dead"


Handlers = dict[JobKind, Handler]
URGENT_KINDS = (JobKind.PROCESS_MAIL, JobKind.REFRESH_CARDS)
AGED_SECONDS = 2.0  # a job due this long is served in turn with the urgent kinds (an acknowledgement in a burst)
LOCKED_RETRY_SECONDS = 1.0  # a step that met "database is locked" (another process writing SQLite) runs again


def database_locked(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked"/"busy": another process held the file; try again."""
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and ("database is locked" in text or "database is busy" in text)


class PermanentJobError(Exception):
    """A job that can never succeed (bad payload, refused for good): park it at once."""


class RetryLater(Exception):
    """Not a failure: the job cannot go yet (a chat's rate limit); run it again after `delay` seconds
    without counting an attempt, and free the worker slot meanwhile."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.2f} s")
        self.delay = delay


def write_when_done(writer: DoneWriter, item: Any) -> bool:
    """Leave a write to the transaction that marks the running job done, batched with the other jobs completed
    in it (one `writer` call for all their items); False when the handler was not called by a worker (a test,
    the CLI): the caller then writes at once.

    Only for a write whose absence is a state the handler already handles when it runs again: a crash before
    that transaction re-runs the job, and a handler that raises leaves nothing behind.
    """
    writes = _WHEN_DONE.get()
    if writes is None:
        return False
    writes.append((writer, item))
    return True
