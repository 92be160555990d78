"""Scheduled work run by two replicas at the same moment (a lead changing hands) still happens once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from edudesk.core.intake.models import InboundMail
from edudesk.core.intake.retention import purge_raw_mail
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import Request
from edudesk.core.requests.overdue import send_reminders
from tests.conftest import PG_URL

pytestmark = [pytest.mark.db,
              pytest.mark.skipif(not PG_URL, reason="replicas share a PostgreSQL database; SQLite has one process")]


async def test_two_replicas_checking_deadlines_at_once_remind_and_escalate_each_request_once(
        app_factory: Any, clock: Any) -> None:
    app = await app_factory(clock=clock, inline_analysis=True)
    now = app.clock.now()
    late = now - timedelta(hours=app.settings.chat.escalate_after_hours + 1)
    for i in range(20):
        await Request.create(kind="new_account", population="student", state="received", sender=f"s{i}@gmail.com",
                             received_at=late, updated_at=late, deadline=late)
    later = FakeClock(now)
    results = await asyncio.gather(*(send_reminders(app.settings, later, app.queue) for _ in range(4)))
    assert sum(r[0] for r in results) == 20 and sum(r[1] for r in results) == 20
    assert await Job.filter(key__startswith="notice:remind:").count() == 20
    assert await Job.filter(key__startswith="notice:escalate:").count() == 20
    assert await AuditEvent.filter(action="request_overdue").count() == 20
    assert await AuditEvent.filter(action="request_escalated").count() == 20


async def test_two_replicas_purging_raw_mail_at_once_purge_and_record_each_mail_once(
        app_factory: Any, clock: Any) -> None:
    app = await app_factory(clock=clock, inline_analysis=True)
    old = app.clock.now() - timedelta(days=400)
    for i in range(300):
        raw = b"Subject: x\r\nMessage-ID: <p%d@gmail.com>\r\n\r\nHo va ten: Nguyen Van An\r\n" % i
        await InboundMail.create(dedupe_key=f"mid:p{i}", message_id=f"p{i}@gmail.com", content_hash=str(i),
                                 source="smtp", size=len(raw), content=raw, received_at=old, state="done")
    purged = await asyncio.gather(*(purge_raw_mail(app.clock, 180) for _ in range(3)))
    assert sum(purged) == 300
    events = await AuditEvent.filter(action="raw_mail_purged")
    assert sum(e.detail["mails"] for e in events) == 300
