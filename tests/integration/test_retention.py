"""Retention: raw mails of closed requests keep only their headers after `[retention].raw_mail_days`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from edudesk.core.errors import EdudeskError
from edudesk.core.intake.models import InboundMail
from edudesk.core.intake.reprocess import reprocess_mail
from edudesk.core.intake.retention import purge_raw_mail
from edudesk.core.models import AuditEvent
from edudesk.core.requests.models import Request

pytestmark = pytest.mark.db

RAW = (b"From: An <an.nv@gmail.com>\r\nTo: office@hust.edu.vn\r\nSubject: Cap tai khoan\r\n"
       b"Message-ID: <m%d@gmail.com>\r\n\r\nHo va ten: Nguyen Van An\r\nNgay sinh: 01/02/2003\r\n")


async def _mail(app: Any, n: int, *, age_days: float, state: str = "done",
                request_state: str | None = None) -> InboundMail:
    at = app.clock.now() - timedelta(days=age_days)
    request = None
    if request_state is not None:
        request = await Request.create(kind="new_account", population="student", state=request_state,
                                       sender="an.nv@gmail.com", received_at=at, updated_at=at)
    raw = RAW % n
    return await InboundMail.create(dedupe_key=f"mid:m{n}", message_id=f"m{n}@gmail.com", content_hash=str(n),
                                    source="smtp", size=len(raw), content=raw, received_at=at, state=state,
                                    request=request)


async def test_old_mails_of_closed_requests_keep_only_their_headers(app_factory: Any, clock: Any) -> None:
    app = await app_factory(clock=clock, inline_analysis=True)
    done = await _mail(app, 1, age_days=200, request_state="done")
    rejected = await _mail(app, 2, age_days=181, request_state="rejected")
    ignored = await _mail(app, 3, age_days=300)  # an auto-reply: made no request
    still_open = await _mail(app, 4, age_days=400, request_state="received")
    recent = await _mail(app, 5, age_days=10, request_state="done")
    pending = await _mail(app, 6, age_days=400, state="pending")

    assert await purge_raw_mail(app.clock, 180) == 3
    for row in (done, rejected, ignored):
        kept = bytes((await InboundMail.get(id=row.id)).content)
        assert kept.endswith(b"\r\n\r\n") and b"Subject: Cap tai khoan" in kept
        assert b"Ngay sinh" not in kept and b"Nguyen Van An" not in kept
        assert (await InboundMail.get(id=row.id)).purged_at == app.clock.now()
    for row in (still_open, recent, pending):
        assert bytes((await InboundMail.get(id=row.id)).content) == bytes(row.content)
    (event,) = await AuditEvent.filter(action="raw_mail_purged")
    assert event.detail["mails"] == 3 and "Nguyen" not in str(event.detail)

    assert await purge_raw_mail(app.clock, 180) == 0, "each mail is purged once"
    assert await purge_raw_mail(app.clock, 0) == 0, "0 turns the rule off"
    with pytest.raises(EdudeskError, match="quá thời hạn lưu"):  # never read as a form again, nor answered
        await reprocess_mail(app.pipeline, ignored.id)
