"""What a durable job is: its kinds and states, the handler signature, and the exceptions a handler raises."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable

from tortoise.exceptions import OperationalError

from edudesk.core.models import Job

Handler = Callable[[Job], Awaitable[None]]


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
