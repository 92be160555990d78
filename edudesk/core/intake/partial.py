"""A requester's reply that holds only the missing fields, applied to the request it answers."""

from __future__ import annotations

from edudesk.core.forms.partial import is_partial, merge_reply, stored_problems
from edudesk.core.intake.domain import ExtractedRequest, Kind, Person, Population
from edudesk.core.requests.models import Request, RequestPerson

__all__ = ["is_partial", "partial_reply"]


async def partial_reply(request: Request, extracted: ExtractedRequest) -> tuple[ExtractedRequest, list[str]] | None:
    """For a reply holding only some fields (`is_partial`): the request's people with them merged in (a
    corrected form to check again) and the names of the fields that changed; None when they change no one
    (the reply is then an ordinary one: half a person never replaces the request's people)."""
    rows = await RequestPerson.filter(request_id=request.id).order_by("row")
    if not rows:
        return extracted, []  # nobody to merge into: what the reply holds is the form
    try:
        kind, population = Kind(request.kind), Population(request.population)
    except ValueError:
        return None
    merged = merge_reply([Person.from_json(r.data or {}) for r in rows], extracted.fields, kind,
                         staff=population is Population.STAFF, kept=stored_problems([r.problems for r in rows]))
    if merged is None:
        return None
    people, problems, changed = merged
    return ExtractedRequest(kind, population, tuple(people), request.source, tuple(problems), request.unit), changed
