"""The `delete_account` job: an account suspended for a student who left is deleted after the grace period;
the `restore_account` job: an account the unit or the office kept during that period is allowed to sign in.

Queued in the same transaction that suspended the account, to run when the grace period ends. A reset in
the meantime (the student came back) or keeping the account (core/requests/rows.py) clears `delete_after`,
and the job then does nothing.
"""

from __future__ import annotations

from tortoise.transactions import in_transaction

from edudesk.core.accounts.log import record_change
from edudesk.core.accounts.models import Account
from edudesk.core.config import Settings
from edudesk.core.jobs import Job, JobQueue, RetryLater
from edudesk.core.models import AuditEvent
from edudesk.core.ports import Clock
from edudesk.core.provisioning import Directories
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import Request, RequestPerson


class DeleteAccountJob:
    """Job handler for `delete_account`."""

    def __init__(self, clock: Clock, directories: Directories) -> None:
        self.clock = clock
        self.directories = directories

    async def __call__(self, job: Job) -> None:
        """Delete the account if it is still suspended and its grace period is over."""
        address = str(job.payload.get("address", ""))
        request_id = job.payload.get("request_id")
        account = await Account.get_or_none(address=address)
        if account is None or account.state != "suspended" or account.delete_after is None:
            return  # re-enabled, deleted already, or never ours
        now = self.clock.now()
        if account.delete_after > now:
            raise RetryLater((account.delete_after - now).total_seconds())
        directory = self.directories.by_name(account.backend)
        result = await directory.delete(address)
        approval = await AuditEvent.filter(request_id=request_id, action="request_approve").order_by("-id").first()
        async with in_transaction() as conn:
            await Account.filter(id=account.id, state="suspended").using_db(conn).update(
                state="deleted", delete_after=None, updated_at=now, password_hash="")
            await record_change(conn, now, action="delete", address=address, backend=directory.name,
                                request_id=request_id, approved_by=approval.actor if approval else "",
                                executed_by=f"system ({directory.name}, hết thời gian chờ)", answer=result,
                                full_name=account.full_name, person_id=account.person_id)


class RestoreAccountJob:
    """Job handler for `restore_account`: the kept account signs in again; the log and the requester know."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, directories: Directories) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.directories = directories

    async def __call__(self, job: Job) -> None:
        """Un-suspend the account in its directory (idempotent), then log it and mail the requester."""
        address = str(job.payload.get("address", ""))
        request_id = job.payload.get("request_id")
        account = await Account.get_or_none(address=address)
        if account is None or account.state not in ("suspended", "active") or account.delete_after is not None:
            return  # deleted, or suspended again by a later deletion: nothing to restore
        directory = self.directories.by_name(account.backend)
        result = await directory.restore(address)
        now = self.clock.now()
        keep = await AuditEvent.filter(request_id=request_id, action="request_keep_account").order_by("-id").first()
        request = await Request.get_or_none(id=request_id)
        async with in_transaction() as conn:
            await Account.filter(id=account.id, state="suspended", delete_after=None).using_db(conn).update(
                state="active", suspended_at=None, updated_at=now)
            await record_change(conn, now, action="restore", address=address, backend=directory.name,
                                request_id=request_id, approved_by=keep.actor if keep else "",
                                executed_by=f"system ({directory.name})", answer=result,
                                full_name=account.full_name, person_id=account.person_id)
            if request is not None and request.sender:
                person = await RequestPerson.filter(request_id=request.id, final_address=address).using_db(
                    conn).first()
                context = {**mail_context(self.settings, request.sender_name), "number": request.id,
                           "kind": request.kind, "lang": request.lang or self.settings.general.language,
                           "accounts": [{"full_name": person.full_name if person else account.full_name,
                                         "address": address}],
                           "by_reply": (job.payload.get("by") == "reply")}
                await queue_mail(conn, self.queue, self.clock, self.settings, key=f"kept:{request.id}:{address}",
                                 template="kept", recipient=request.sender, context=context,
                                 request_id=request.id, in_reply_to=request.message_id, automatic=False)
        self.queue.wake()
