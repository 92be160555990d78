"""Read-side use cases for chat commands: the open queue, search, today's and this month's counts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tortoise.expressions import Q

from edudesk.core.models import AuditEvent
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.workflow import OPEN_STATES
from edudesk.core.text import fold


async def overdue(now: datetime) -> list[Request]:
    """Open requests past their step's deadline."""
    return await Request.filter(state__in=[s.value for s in OPEN_STATES], deadline__lt=now).order_by("deadline")


_NUMBER = re.compile(r"^(?:yc-?)?(\d{1,12})$", re.IGNORECASE)


async def find_requests(term: str, limit: int = 10) -> list[Request]:
    """Requests by number ("12", "YC-12"), by a person's ID, or by (part of) a person's or sender's name."""
    term = " ".join(term.split())
    if not term:
        return []
    match = _NUMBER.match(term)
    ids: list[int] = []
    if match:
        ids.append(int(match.group(1)))
    by_person = await RequestPerson.filter(Q(person_id=term) | Q(proposed_address__istartswith=term)).limit(
        limit).values_list("request_id", flat=True)
    ids += [int(i) for i in by_person]  # type: ignore[call-overload]
    key = fold(term)
    if len(key) >= 2:
        # Names are compared folded (no diacritics, lower case): "nguyen van an" finds "Nguyễn Văn An".
        candidates = await RequestPerson.all().order_by("-request_id").limit(5000).values_list(
            "request_id", "full_name")
        ids += [int(rid) for rid, name in candidates if key in fold(name)]
        senders = await Request.all().order_by("-id").limit(5000).values_list("id", "sender_name", "sender")
        ids += [int(rid) for rid, name, sender in senders if key in fold(name) or key in sender.lower()]
    seen = list(dict.fromkeys(ids))[:limit]
    found = {r.id: r for r in await Request.filter(id__in=seen)}
    return [found[i] for i in seen if i in found]


@dataclass(frozen=True)
class Counts:
    """How many requests came in and how they ended, over a period."""

    received: int
    approved: int
    rejected: int
    done: int
    open_now: int
    overdue_now: int


async def counts(since: datetime, now: datetime) -> Counts:
    """Counts since `since` (received, approved, rejected, done) and the open/overdue totals now."""
    actions = await AuditEvent.filter(at__gte=since, action__in=["request_approve", "request_reject",
                                                                 "request_provisioned"]).values_list("action",
                                                                                                     flat=True)
    return Counts(
        received=await Request.filter(received_at__gte=since).count(),
        approved=sum(1 for a in actions if a == "request_approve"),
        rejected=sum(1 for a in actions if a == "request_reject"),
        done=sum(1 for a in actions if a == "request_provisioned"),
        open_now=await Request.filter(state__in=[s.value for s in OPEN_STATES]).count(),
        overdue_now=await Request.filter(state__in=[s.value for s in OPEN_STATES], deadline__lt=now).count(),
    )


def day_and_month_start(now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """Midnight today and the first of this month in the office's time zone."""
    local = now.astimezone(ZoneInfo(timezone))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # In UTC: SQLite compares stored times as text, and they are stored in UTC.
    return day.astimezone(UTC), day.replace(day=1).astimezone(UTC)
