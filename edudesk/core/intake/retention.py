"""Retention: personal data that is no longer needed is not kept (Decree 13/2023, data minimisation).

A raw mail carries everything its sender attached (ID scans, lists of a whole class). Once its request is
closed (done or rejected) — or it made no request at all — and `[retention].raw_mail_days` have passed, only
its header block is kept: who wrote, when, the subject and the Message-ID still prove what arrived. The
request, its people, the account log and the audit trail are records the procedure keeps permanently.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent
from edudesk.core.ports import Clock
from edudesk.core.requests.workflow import State

log = logging.getLogger(__name__)
BATCH = 200
CLOSED = (State.DONE.value, State.REJECTED.value)


def header_block(raw: bytes) -> bytes:
    """The header block of a raw mail, up to and including the blank line that ends it."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end >= 0:
            return raw[: end + len(sep)]
    return raw[:64 * 1024]


async def purge_raw_mail(clock: Clock, days: float) -> int:
    """Keep only the headers of old raw mails whose request is closed (or that made none); returns how many.

    Purged rows get `purged_at`, so each is purged once (and is never read as a form again).
    """
    if days <= 0:
        return 0
    now = clock.now()
    cutoff = now - timedelta(days=days)
    purged = 0
    while True:
        rows = await (InboundMail.filter(received_at__lt=cutoff, purged_at__isnull=True, oversize__isnull=True)
                      .exclude(state="pending")
                      .filter(Q(request_id__isnull=True) | Q(request__state__in=CLOSED))
                      .order_by("id").limit(BATCH).only("id", "content"))
        if not rows:
            break
        async with in_transaction() as conn:
            done = 0  # another replica may have purged some of these since they were read: count only ours
            for row in rows:
                raw = bytes(row.content or b"")
                done += await InboundMail.filter(id=row.id, purged_at__isnull=True).using_db(conn).update(
                    content=header_block(raw), purged_at=now)
            if done:
                await AuditEvent.create(at=now, actor="system", action="raw_mail_purged", using_db=conn,
                                        detail={"mails": done, "older_than_days": days,
                                                "first_id": rows[0].id, "last_id": rows[-1].id})
        purged += done
    if purged:
        log.info("kept only the headers of %d raw mails older than %s days", purged, days)
    return purged
