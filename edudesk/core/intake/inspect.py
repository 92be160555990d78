"""The `mail inspect` dry run: what intake reads from a mail, in a stable JSON shape, storing nothing."""

from __future__ import annotations

from typing import Any

from edudesk.core.accounts.naming import propose_addresses
from edudesk.core.config import Settings
from edudesk.core.intake.checks import check_request
from edudesk.core.intake.domain import Kind
from edudesk.core.intake.sender import sender_verification
from edudesk.core.ports import Analysis


async def inspect_mail(analysis: Analysis, settings: Settings, *, use_db: bool) -> dict[str, Any]:
    """kind, population, source, persons (with proposed_address), problems (field, code, message), and
    whether a trusted Authentication-Results proves the sender (`sender_verified`, `auth`)."""
    mail = analysis.mail
    verification = sender_verification(mail, settings)
    base = {"message_id": mail.message_id, "from": mail.from_addr, "subject": mail.subject,
            "sender_verified": verification.verified, "auth": verification.to_json()}
    if analysis.automatic is not None or analysis.extracted is None:
        kind = analysis.automatic.value if analysis.automatic else Kind.UNKNOWN.value
        return {**base, "kind": kind, "population": None, "source": "none", "persons": [], "problems": [],
                "flags": []}
    extracted = analysis.extracted
    if use_db:
        from edudesk.core.intake.pipeline import find_thread

        request = await find_thread(mail)
        if request is not None:
            return {**base, "kind": Kind.REPLY.value, "request": request.id,
                    "population": request.population, "source": extracted.source,
                    "persons": [p.to_json() for p in extracted.persons],
                    "problems": [p.to_json() for p in extracted.problems], "flags": []}
        checked = await check_request(extracted, mail, settings)
        persons = checked.persons
        problems = checked.problems + [p for row in checked.person_problems for p in row]
        flags = checked.flags
    else:
        persons = list(extracted.persons)
        if extracted.kind in (Kind.NEW_ACCOUNT, Kind.BULK_NEW_ACCOUNTS):
            addresses = propose_addresses(persons, extracted.population.value, settings.naming, set())
            persons = [p.with_(proposed_address=a) for p, a in zip(persons, addresses, strict=True)]
        problems, flags = list(extracted.problems), []
    return {**base, "kind": extracted.kind.value, "population": extracted.population.value,
            "source": extracted.source, "unit": extracted.unit, "persons": [p.to_json() for p in persons],
            "problems": [p.to_json() for p in problems], "flags": flags}
