"""A reply that only adds what was missing ("SĐT: 0912 345 678") merged into the request's people.

Pure: the stored people and the reply's "label: value" pairs in, the merged people, their findings and the
names of the fields that changed out. One person: every field applies to them. A list: a field applies only
to the row whose ID the reply names just before it ("Mã SV: 20231234, SĐT: ..."), never by guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from typing import Any

from edudesk.core.forms.labels import ID_FIELDS, NAME_FIELDS, UNIT_OR_COHORT
from edudesk.core.forms.records import Record, build_person
from edudesk.core.forms.values import clean_id
from edudesk.core.intake.domain import ExtractedRequest, Kind, Person, Problem, Severity

PERSON_FIELDS = NAME_FIELDS | ID_FIELDS | {
    "middle_name", "date_of_birth", "unit", "class_name", "cohort", "mobile", "personal_email", UNIT_OR_COHORT}
_COMPARED = [f.name for f in dataclass_fields(Person) if f.name not in ("proposed_address", "note")]
_NAMES = ("full_name", "family_name", "middle_name", "given_name")
_ATTRIBUTES = {"family_middle": _NAMES, "given_name": _NAMES, "middle_name": _NAMES, "full_name": _NAMES,
               "person_id": ("student_id", "staff_id"), UNIT_OR_COHORT: ("unit", "cohort")}
_KEEP = {"invalid_date"}  # a finding the stored row cannot show again (the bad date was not kept)


def is_partial(extracted: ExtractedRequest) -> bool:
    """True when a reply holds some person fields but not a whole form (a name and an ID)."""
    if not any(f in PERSON_FIELDS for f, _ in extracted.fields):
        return False
    if len(extracted.persons) > 1:
        return False
    return not extracted.persons or not (extracted.persons[0].full_name and extracted.persons[0].person_id)


def _record(person: Person) -> Record:
    record: Record = {
        "full_name": person.full_name, "student_id": person.student_id, "staff_id": person.staff_id,
        "date_of_birth": person.date_of_birth, "unit": person.unit, "class_name": person.class_name,
        "cohort": person.cohort, "mobile": person.mobile, "personal_email": person.personal_email,
        "note": person.note,
    }
    if person.family_name and person.given_name:  # keep a compound family name split as it was read
        record["family_middle"] = " ".join(p for p in (person.family_name, person.middle_name) if p)
        record["given_name"] = person.given_name
    return record


def _groups(persons: Sequence[Person], fields: Sequence[tuple[str, str]]) -> dict[int, list[tuple[str, str]]]:
    """Which row each field belongs to: all to the only person, else to the row named by the ID before it."""
    wanted = [(f, v) for f, v in fields if f in PERSON_FIELDS]
    if len(persons) == 1:
        return {0: wanted}
    rows = {p.person_id: i for i, p in enumerate(persons) if p.person_id}
    named = {clean_id(v) for f, v in wanted if f in ID_FIELDS}
    if len(named) == 1:  # one row named: everything else the reply says is about it, wherever it stands
        row = rows.get(named.pop())
        return {} if row is None else {row: [(f, v) for f, v in wanted if f not in ID_FIELDS]}
    out: dict[int, list[tuple[str, str]]] = {}
    current: int | None = None
    for field, value in wanted:
        if field in ID_FIELDS:
            current = rows.get(clean_id(value))
            continue  # naming the row is no change to it
        if current is not None:
            out.setdefault(current, []).append((field, value))
    return out


def merge_reply(persons: Sequence[Person], fields: Sequence[tuple[str, str]], kind: Kind, *, staff: bool,
                kept: Sequence[Sequence[Problem]] = ()) -> tuple[list[Person], list[Problem], list[str]] | None:
    """(people, their findings by row, names of the fields that changed), or None when nothing applies.

    `kept` are the stored findings per row: an invalid date stays reported unless the reply gives a date.
    """
    if not persons:
        return None
    groups = _groups(persons, fields)
    individual = kind in (Kind.NEW_ACCOUNT, Kind.PASSWORD_RESET) and len(persons) == 1
    merged: list[Person] = []
    problems: list[Problem] = []
    changed: set[str] = set()
    for row, person in enumerate(persons):
        record = _record(person)
        given = groups.get(row, [])
        if any(f in NAME_FIELDS or f == "middle_name" for f, _ in given):
            for name in NAME_FIELDS | {"middle_name"}:
                record.pop(name, None)
        for field, value in given:
            record[field] = value
        new, found, _ = build_person(record, row, staff=staff, individual=individual,
                                     delete=kind is Kind.DELETE_ACCOUNTS, repair=False)
        new = new.with_(proposed_address=person.proposed_address)
        if "date_of_birth" not in {f for f, _ in given} and row < len(kept):
            found.extend(p for p in kept[row] if p.code in _KEEP)
        touched = {a for f, _ in given for a in _ATTRIBUTES.get(f, (f,))}
        changed.update(name for name in _COMPARED if name in touched and getattr(new, name) != getattr(person, name))
        merged.append(new)
        problems.extend(found)
    if not changed:
        return None
    return merged, problems, sorted(changed)


def stored_problems(rows: Sequence[Any]) -> list[list[Problem]]:
    """Findings stored per row (RequestPerson.problems JSON) as `Problem` values."""
    out: list[list[Problem]] = []
    for items in rows:
        out.append([Problem(p.get("field", ""), p.get("code", ""), p.get("message", ""),
                            _severity(p.get("severity")), p.get("row"))
                    for p in items or [] if isinstance(p, dict)])
    return out


def _severity(value: object) -> Severity:
    try:
        return Severity(str(value))
    except ValueError:
        return Severity.ERROR
