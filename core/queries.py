"""Read-side use cases for the command line and the web console: request lists and details."""

from __future__ import annotations

from typing import Any

from core.errors import NotFound
from core.models import AuditEvent, InboundMail, Request, RequestPerson


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
