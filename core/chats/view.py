"""The request view model: everything a card shows about one request, read once per refresh."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import NotFound
from core.models import AuditEvent
from core.people.models import Staff
from core.requests.models import Request, RequestPerson
from core.words import words


@dataclass
class RequestView:
    """Everything a card shows about one request."""

    request: Request
    persons: list[RequestPerson]
    events: list[AuditEvent]
    assignee: str = ""


async def load_view(request_id: int) -> RequestView:
    """Read a request with its people and its decisions."""
    request = await Request.get_or_none(id=request_id)
    if request is None:
        raise NotFound(words("vi")("card.no_request", id=request_id))
    persons = await RequestPerson.filter(request_id=request_id).order_by("row")
    events = await AuditEvent.filter(request_id=request_id, action__startswith="request_").order_by("id")
    assignee = ""
    if request.assignee_id:
        staff = await Staff.get_or_none(id=request.assignee_id)
        assignee = staff.name if staff else ""
    return RequestView(request, persons, events, assignee)
