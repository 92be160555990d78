"""The request view model: everything a card shows about one request, read once per refresh."""

from __future__ import annotations

from dataclasses import dataclass, field

from edudesk.core.accounts.models import Account
from edudesk.core.errors import NotFound
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.words import words


@dataclass
class RequestView:
    """Everything a card shows about one request."""

    request: Request
    persons: list[RequestPerson]
    events: list[AuditEvent]
    assignee: str = ""
    keepable: set[int] = field(default_factory=set)  # rows (0-based) whose account waits for its deletion


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
    return RequestView(request, persons, events, assignee, await _keepable(request, persons))


async def _keepable(request: Request, persons: list[RequestPerson]) -> set[int]:
    """Rows of a deletion whose account is suspended and still waits for its deletion (may be kept)."""
    if request.kind != "delete_accounts":
        return set()
    rows = {p.final_address or p.proposed_address: p.row for p in persons
            if p.outcome == "done" and p.result == "suspended"}
    if not rows:
        return set()
    waiting = await Account.filter(address__in=list(rows), state="suspended", delete_after__not_isnull=True
                                   ).values_list("address", flat=True)
    return {rows[str(a)] for a in waiting}
