"""Deadline watch: a step past its deadline reminds the chat that owes it; after a further period the head
is told (escalation). Run every minute by the supervisor; tests call `send_reminders` with a test clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tortoise.transactions import in_transaction

from edudesk.core.accounts.passwordlinks import purge_expired
from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.intake.confirm import purge_expired as purge_confirmations
from edudesk.core.intake.retention import purge_raw_mail
from edudesk.core.jobs import JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.ports import Clock
from edudesk.core.requests.models import Request
from edudesk.core.requests.reports import overdue
from edudesk.core.requests.workflow import State
from edudesk.core.text import local_time

RAW_MAIL_PURGE_EVERY = timedelta(hours=1)  # a scan of the ledger; hourly is plenty for a rule in days
OWNER = {State.RECEIVED: "office", State.APPROVED: "technical", State.PROVISIONING: "technical"}


async def send_reminders(settings: Settings, clock: Clock, queue: JobQueue) -> tuple[int, int]:
    """Remind and escalate what is overdue now; returns (reminders, escalations). Safe to run anywhere
    at once: a conditional update decides which run sends each notice."""
    now = clock.now()
    escalate_after = timedelta(hours=settings.chat.escalate_after_hours)
    tz = settings.general.timezone
    reminded = escalated = 0
    for r in await overdue(now):
        owner = OWNER.get(State(r.state))
        if owner is None or r.deadline is None:
            continue
        late = now - r.deadline
        hours = int(late.total_seconds() // 3600)
        when = local_time(r.deadline, tz)
        if r.reminded_at is None:
            async with in_transaction() as conn:
                if await Request.filter(id=r.id, reminded_at__isnull=True).using_db(conn).update(reminded_at=now):
                    text = (f"<b>YC-{r.id}</b> đã quá hạn xử lý ({when}, trễ {hours} giờ). "
                            f"Đề nghị xử lý ngay.")
                    key = f"remind:{r.id}:{r.version}:{r.deadline.isoformat()}"
                    await enqueue_notice(conn, queue, key, owner, text, r.id)
                    if r.assignee_id:
                        await enqueue_notice(conn, queue, key + ":assignee", f"staff:{r.assignee_id}", text, r.id)
                    await AuditEvent.create(at=now, actor="system", action="request_overdue", request_id=r.id,
                                            detail={"owner": owner, "deadline": r.deadline.isoformat()},
                                            using_db=conn)
                    reminded += 1
        if r.escalated_at is None and late >= escalate_after:
            async with in_transaction() as conn:
                if await Request.filter(id=r.id, escalated_at__isnull=True).using_db(conn).update(escalated_at=now):
                    text = (f"<b>YC-{r.id}</b> quá hạn {hours} giờ (hạn {when}), bước của bộ phận "
                            f"{'văn phòng' if owner == 'office' else 'kỹ thuật'} chưa xong.")
                    buttons = [[{"label": "Giao lại", "action": "reassign_pick", "request_id": r.id,
                                 "version": r.version, "arg": 0}]]
                    await enqueue_notice(conn, queue, f"escalate:{r.id}:{r.version}:{r.deadline.isoformat()}", "head",
                                         text, r.id, buttons)
                    await AuditEvent.create(at=now, actor="system", action="request_escalated", request_id=r.id,
                                            detail={"owner": owner, "late_hours": hours}, using_db=conn)
                    escalated += 1
    if reminded or escalated:
        queue.wake()
    return reminded, escalated


async def watch_deadlines(settings: Settings, clock: Clock, queue: JobQueue) -> None:
    """For the supervisor: check deadlines every `[chat].overdue_check_seconds`."""
    last_purge = None
    while True:
        await send_reminders(settings, clock, queue)
        await purge_expired(clock)  # the sealed passwords of links nobody opened in time
        await purge_confirmations(clock)  # unsent URLs of sender confirmation links that expired
        if last_purge is None or clock.now() - last_purge >= RAW_MAIL_PURGE_EVERY:
            last_purge = clock.now()
            await purge_raw_mail(clock, settings.retention.raw_mail_days)
        await asyncio.sleep(settings.chat.overdue_check_seconds)
