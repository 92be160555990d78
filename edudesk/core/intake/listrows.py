"""The rows of one list checked against each other: a row without an ID, the same person twice.

Pure functions over the persons a form gave and their findings; `checks.check_request` calls them. A row
with an ERROR here is held back by provisioning until the office approves that row (core/requests/rows.py).
"""

from __future__ import annotations

from edudesk.core.intake.domain import Person, Problem, Severity
from edudesk.core.text import fold
from edudesk.core.words import t

LANG = "vi"  # findings are stored with the request in Vietnamese (core/forms/messages.py says why)


def _key(person: Person) -> tuple[str, str] | None:
    if not person.full_name or person.date_of_birth is None:
        return None
    return fold(person.full_name), person.date_of_birth.isoformat()


def duplicates_in_list(persons: list[Person]) -> dict[int, int]:
    """{row: the earlier row it repeats}: the same ID, or (without a shared ID) the same name and birth date."""
    by_id: dict[str, int] = {}
    by_name: dict[tuple[str, str], int] = {}
    out: dict[int, int] = {}
    for row, person in enumerate(persons):
        key = _key(person)
        first = by_id.get(person.person_id) if person.person_id else None
        if first is None and key is not None:
            first = by_name.get(key)
        if first is not None:
            out[row] = first
            continue
        if person.person_id:
            by_id[person.person_id] = row
        if key is not None:
            by_name.setdefault(key, row)
    return out


def row_findings(persons: list[Person], per_person: list[list[Problem]]) -> dict[int, int]:
    """Make a missing ID an error and name duplicates as such (in place); returns `duplicates_in_list`.

    The form reader words a missing ID as a warning and a repeated ID as `duplicate_row`: here a missing ID
    holds the row back, and a repeat (by ID, or by name and date of birth) says which row it repeats.
    """
    duplicates = duplicates_in_list(persons)
    for row, found in enumerate(per_person):
        kept = []
        for p in found:
            if p.code == "duplicate_row":
                continue  # replaced below by duplicate_in_list, which also catches name + date of birth
            if p.code == "missing_id" and p.severity is not Severity.ERROR:
                p = Problem(p.field, p.code, p.message, Severity.ERROR, p.row)
            kept.append(p)
        if row in duplicates:
            kept.append(Problem("person_id", "duplicate_in_list",
                                t("rows.duplicate_in_list", LANG, other=duplicates[row] + 1), Severity.ERROR, row))
        found[:] = kept
    return duplicates
