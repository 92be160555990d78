"""The `delete_account` job: an account suspended for a student who left is deleted after the grace period.

Queued in the same transaction that suspended the account, to run when the grace period ends. A reset in
the meantime (the student came back) clears `delete_after`, and the job then does nothing.
"""

from __future__ import annotations

from tortoise.transactions import in_transaction

from core.accounts.log import record_change
from core.accounts.models import Account
from core.jobs import Job, RetryLater
from core.models import AuditEvent
from core.ports import Clock
from core.provisioning import Directories


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
