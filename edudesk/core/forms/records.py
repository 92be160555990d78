"""What a reader found (raw field records) -> Person values with per-person findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edudesk.core.accounts.naming import split_family_middle, split_full_name
from edudesk.core.forms import messages
from edudesk.core.forms.labels import ID_FIELDS, NAME_FIELDS, UNIT_OR_COHORT
from edudesk.core.forms.values import (
    clean_email,
    clean_id,
    looks_like_cohort,
    looks_like_id,
    parse_date,
    text_value,
)
from edudesk.core.intake.domain import Person, Problem, Severity
from edudesk.core.legacy import repair_legacy
from edudesk.core.people.phones import normalise_mobile

Record = dict[str, Any]


@dataclass
class FormResult:
    """One source's reading: field records, free text for classification, findings."""

    source: str  # body | docx | xlsx | csv | pdf
    records: list[Record] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # titles and other text that is not a field
    problems: list[Problem] = field(default_factory=list)
    unit: str = ""
    is_list: bool = False
    legacy: bool = False  # text was decoded from TCVN3/VNI fonts
    heading: str = ""  # where a form names itself (titles, headers; a PDF's field names): [institution] forms


def is_person(record: Record) -> bool:
    """A record names someone: a name or an ID with a value."""
    return any(text_value(record.get(f)) for f in NAME_FIELDS | ID_FIELDS)


def _names(rec: dict[str, str]) -> tuple[str, str, str, str]:
    full, family_middle = rec.get("full_name", ""), rec.get("family_middle", "")
    given, middle = rec.get("given_name", ""), rec.get("middle_name", "")
    if given and not family_middle and not full and " " in given:
        full, given = given, ""  # "Tên: Nguyễn Văn An" means the whole name
    if family_middle or (given and not full):
        family, middle_part = split_family_middle(family_middle)
        middle = " ".join(p for p in (middle_part, middle) if p)
        full = full or " ".join(p for p in (family, middle, given) if p)
        return full, family, middle, given
    family, middle, given = split_full_name(full)
    return full, family, middle, given


def build_person(record: Record, row: int, *, staff: bool, individual: bool, delete: bool,
                 repair: bool) -> tuple[Person, list[Problem], bool]:
    """(Person, findings, repaired) for one record; `row` is the person's index in the request."""
    rec: dict[str, str] = {}
    repaired = False
    problems: list[Problem] = []
    for key, raw in record.items():
        if key.startswith("_") or key == "date_of_birth":
            continue
        value = text_value(raw)
        if repair and value:
            fixed = repair_legacy(value)
            repaired |= fixed != value
            value = fixed
        rec[key] = value
    if UNIT_OR_COHORT in rec:
        value = rec.pop(UNIT_OR_COHORT)
        rec.setdefault("cohort" if looks_like_cohort(value) else "unit", value)
    full, family, middle, given = _names(rec)
    ids = {}
    for key in ("student_id", "staff_id", "person_id"):
        value = clean_id(record.get(key))
        if value and not looks_like_id(value):
            problems.append(messages.invalid_id(row, rec.get(key, value)))
            value = ""  # "chưa có" is no ID; the registry check must not look it up
        ids[key] = value
    student_id, staff_id, person_id = ids["student_id"], ids["staff_id"], ids["person_id"]
    if person_id and not (student_id or staff_id):
        staff_id, student_id = (person_id, "") if staff else ("", person_id)
    dob, bad_date = parse_date(record.get("date_of_birth"))
    if bad_date:
        problems.append(messages.invalid_date(row, text_value(record.get("date_of_birth"))))
    raw_mobile = rec.get("mobile", "")
    mobile = normalise_mobile(raw_mobile)
    if individual and not raw_mobile:
        problems.append(messages.missing_mobile(row))
    elif raw_mobile and not mobile:
        severity = Severity.ERROR if individual else Severity.WARNING
        problems.append(messages.invalid_mobile(row, raw_mobile, severity))
    email, email_ok = clean_email(rec.get("personal_email", ""))
    if email and not email_ok:
        problems.append(messages.invalid_email(row, email))
    if not full:
        problems.append(messages.missing_name(row, Severity.WARNING if delete else Severity.ERROR))
    if not (student_id or staff_id):
        problems.append(messages.missing_id(row, staff))
    person = Person(
        full_name=full, family_name=family, middle_name=middle, given_name=given,
        student_id=student_id, staff_id=staff_id, date_of_birth=dob,
        unit=rec.get("unit", ""), class_name=rec.get("class_name", ""), cohort=rec.get("cohort", ""),
        mobile=mobile or raw_mobile, personal_email=email, note=rec.get("note", ""),
    )
    return person, problems, repaired


def build_persons(records: list[Record], *, staff: bool, individual: bool, delete: bool,
                  repair: bool) -> tuple[list[Person], list[Problem], bool]:
    """Persons of a request in order, their findings (row = index) and whether text was repaired."""
    persons: list[Person] = []
    problems: list[Problem] = []
    repaired_any = False
    first_seen: dict[str, int] = {}
    for record in records:
        if not is_person(record):
            continue
        row = len(persons)
        person, found, repaired = build_person(
            record, row, staff=staff, individual=individual, delete=delete, repair=repair
        )
        repaired_any |= repaired
        problems.extend(found)
        if person.person_id:
            if person.person_id in first_seen:
                problems.append(messages.duplicate_row(row, person.person_id, first_seen[person.person_id]))
            else:
                first_seen[person.person_id] = row
        persons.append(person)
    return persons, problems, repaired_any
