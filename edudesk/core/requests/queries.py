"""Read-side use cases for the command line, the chats and the web console: the queue, request details."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edudesk.core.errors import NotFound
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.text import fold

NUMBER = re.compile(r"(?:yc)?[\s#-]*(\d{1,18})", re.IGNORECASE)  # "12", "YC-12", "yc 12", "#12"
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue: the most urgent first, how many in all, and the request a number named."""

    requests: list[Request]
    people: dict[int, int]  # request id -> how many people
    total: int
    page: int
    pages: int
    found: Request | None = None  # the request whose number was searched, whatever its state, age or filters


def _ts(value: datetime | None) -> float:
    if value is None:
        return 0.0
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def urgency(request: Request) -> tuple[bool, float, float, int]:
    """The queue's order: overdue and nearest deadlines first, then those without a deadline (waiting for the
    requester), each oldest received first."""
    return (request.deadline is None, _ts(request.deadline), _ts(request.received_at), request.id)


async def request_by_number(text: str) -> Request | None:
    """The request a typed number names ("12", "YC-12", "#12"), in any state and of any age; None if none."""
    match = NUMBER.fullmatch(text.strip())
    if match is None or not 0 < int(match.group(1)) <= MAX_ID:
        return None
    return await Request.get_or_none(id=int(match.group(1)))


async def _matching(query: Any, states: list[str], needle: str) -> list[Request]:
    """Requests of `query` whose sender, subject, a person's name (diacritics optional) or ID contains `needle`."""
    rows = await query
    people: dict[int, list[str]] = {}
    for rid, name, pid in await RequestPerson.filter(request__state__in=states).values_list(
            "request_id", "full_name", "person_id"):
        people.setdefault(int(rid), []).extend((fold(name or ""), fold(pid or "")))
    return [r for r in rows if any(needle in h for h in people.get(r.id, []))
            or any(needle in fold(h) for h in (r.sender, r.sender_name, r.subject) if h)]


async def request_queue(states: list[str], *, kind: str = "", overdue_at: datetime | None = None, text: str = "",
                        page: int = 1, per_page: int = 50) -> QueuePage:
    """A page of the requests in `states` (optionally of one kind, overdue at `overdue_at`, matching `text`),
    most urgent first; nothing is left out: every request is on some page."""
    query = Request.filter(state__in=states)
    if kind:
        query = query.filter(kind=kind)
    if overdue_at is not None:
        query = query.filter(deadline__lt=overdue_at)
    text = " ".join(text.split())
    found = await request_by_number(text) if text else None
    if text:
        matched = sorted((r for r in await _matching(query, states, fold(text)) if not found or r.id != found.id),
                         key=urgency)
        total = len(matched)
        pages = max(1, -(-total // per_page))
        page = min(max(1, page), pages)
        rows = matched[(page - 1) * per_page:page * per_page]
    else:
        dated, undated = query.filter(deadline__isnull=False), query.filter(deadline__isnull=True)
        n_dated = await dated.count()
        total = n_dated + await undated.count()
        pages = max(1, -(-total // per_page))
        page = min(max(1, page), pages)
        offset = (page - 1) * per_page
        rows = []
        if offset < n_dated:
            rows = await dated.order_by("deadline", "received_at", "id").offset(offset).limit(per_page)
        if len(rows) < per_page:
            rows += await undated.order_by("received_at", "id").offset(max(0, offset - n_dated)).limit(
                per_page - len(rows))
        rows.sort(key=urgency)  # the database sorted by the same key; equal deadlines in any time zone notation
    ids = [r.id for r in rows] + ([found.id] if found else [])
    people: dict[int, int] = {}
    for rid in await RequestPerson.filter(request_id__in=ids or [0]).values_list("request_id", flat=True):
        people[int(rid)] = people.get(int(rid), 0) + 1  # type: ignore[call-overload]
    return QueuePage(rows, people, total, page, pages, found)


def _count_problems(request: Request, persons: list[RequestPerson]) -> int:
    return len(request.problems or []) + sum(len(p.problems or []) for p in persons)


async def list_requests(state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Requests, newest first: number, kind, population, state, people, problems, received_at, deadline."""
    query = Request.all().order_by("-id").limit(limit)
    if state:
        query = query.filter(state=state)
    requests = await query
    persons: dict[int, list[RequestPerson]] = {}
    if requests:
        for p in await RequestPerson.filter(request_id__in=[r.id for r in requests]).only(
            "request_id", "problems"
        ):
            persons.setdefault(p.request_id, []).append(p)  # type: ignore[attr-defined]
    return [
        {
            "number": r.id,
            "kind": r.kind,
            "population": r.population,
            "state": r.state,
            "sender": r.sender,
            "people": len(persons.get(r.id, [])),
            "problems": _count_problems(r, persons.get(r.id, [])),
            "received_at": r.received_at.isoformat(),
            "deadline": r.deadline.isoformat() if r.deadline else None,
        }
        for r in requests
    ]


async def show_request(number: int) -> dict[str, Any]:
    """One request with its people, findings, mails and audit trail."""
    request = await Request.get_or_none(id=number)
    if request is None:
        raise NotFound(f"Không có yêu cầu YC-{number}.")
    persons = await RequestPerson.filter(request_id=number).order_by("row")
    mails = await InboundMail.filter(request_id=number).order_by("id").only(
        "id", "message_id", "source", "received_at", "outcome", "size"
    )
    audit = await AuditEvent.filter(request_id=number).order_by("id")
    return {
        "number": request.id,
        "kind": request.kind,
        "population": request.population,
        "state": request.state,
        "sender": request.sender,
        "sender_name": request.sender_name,
        "subject": request.subject,
        "unit": request.unit,
        "source": request.source,
        "flags": request.flags,
        "auth_results": request.auth_results,
        "received_at": request.received_at.isoformat(),
        "deadline": request.deadline.isoformat() if request.deadline else None,
        "problems": request.problems,
        "persons": [{**p.data, "row": p.row, "problems": p.problems} for p in persons],
        "mails": [{"id": m.id, "message_id": m.message_id, "source": m.source, "outcome": m.outcome,
                   "received_at": m.received_at.isoformat(), "size": m.size} for m in mails],
        "audit": [{"at": a.at.isoformat(), "actor": a.actor, "action": a.action, "detail": a.detail}
                  for a in audit],
    }
