"""The staff/student registry: import from the school's .xlsx/.csv export, and match people against it."""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tortoise.transactions import in_transaction

from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.forms import read_attachment
from edudesk.core.forms.labels import field_for_label, label_key
from edudesk.core.forms.records import build_persons
from edudesk.core.forms.sheet import decode_text_file
from edudesk.core.forms.values import clean_email, clean_id, looks_like_id
from edudesk.core.intake.domain import Attachment, Person, Population, Problem, Severity
from edudesk.core.intake.sender import is_institutional
from edudesk.core.people.models import RegistryEntry
from edudesk.core.ports import Clock, OnProgress
from edudesk.core.text import clean, fold, same_but_diacritics


@dataclass(frozen=True)
class ImportResult:
    """How an import went."""

    created: int
    updated: int
    skipped: int
    problems: tuple[Problem, ...]


def read_registry_file(path: Path, population: Population, settings: Settings) -> tuple[list[Person], list[Problem]]:
    """Read people from a registry export (.xlsx or .csv with the usual Vietnamese column names)."""
    if path.suffix.lower() not in (".xlsx", ".csv"):
        raise EdudeskError(f"Chỉ nhận tệp .xlsx hoặc .csv, không nhận '{path.name}'.", code="bad_file")
    intake = settings.intake
    # A registry is larger than any mailed list: lift the row cap, keep the zip-bomb guards.
    limits = type(intake)(**{**intake.__dict__, "max_rows": 1_000_000,
                             "max_attachment_bytes": max(intake.max_attachment_bytes, 200 * 2**20)})
    result, problems = read_attachment(Attachment(path.name, "", path.read_bytes()), limits)
    if result is None:
        raise EdudeskError(
            "; ".join(p.message for p in problems) or f"Không đọc được tệp {path.name}.", code="bad_file"
        )
    persons, found, _ = build_persons(
        result.records, staff=population is Population.STAFF, individual=False, delete=False, repair=result.legacy
    )
    return persons, problems + found


# Columns holding a person's own address (not the institution's): folded labels, as `core/forms/labels.py` folds.
PERSONAL_LABELS = frozenset({
    "email ca nhan", "e mail ca nhan", "thu dien tu ca nhan", "dia chi email ca nhan", "dia chi thu dien tu ca nhan",
    "email rieng", "personal email", "personal e mail", "private email", "email khac", "gmail",
})
_HEADER_ROWS = 15


def _sheet_rows(path: Path) -> Iterator[list[Any]]:
    """The cells of a registry file row by row (the first sheet of an .xlsx; a .csv as Excel writes it)."""
    payload = path.read_bytes()
    if path.suffix.lower() == ".csv":
        text = decode_text_file(payload)
        try:
            dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        yield from csv.reader(io.StringIO(text), dialect)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about extensions it does not read
        import openpyxl  # imported at the first sheet read, not at start

        wb = openpyxl.load_workbook(io.BytesIO(payload), read_only=True, data_only=True)
    try:
        if wb.worksheets:
            for values in wb.worksheets[0].iter_rows(max_col=40, values_only=True):
                yield list(values)
    finally:
        wb.close()


def read_personal_addresses(path: Path, population: Population, settings: Settings) -> dict[str, str] | None:
    """{ID: personal address} from the file's personal e-mail column ("Email cá nhân", "Personal email");
    None when it has no such column (then the addresses already kept stay). Addresses in the institution's
    own domains are not personal and are left out."""
    ids = ("staff_id", "student_id", "person_id") if population is Population.STAFF else (
        "student_id", "staff_id", "person_id")
    rows = _sheet_rows(path)
    for _, cells in zip(range(_HEADER_ROWS), rows, strict=False):
        labels = [label_key(c) if isinstance(c, str) else "" for c in cells]
        personal = next((i for i, key in enumerate(labels) if key in PERSONAL_LABELS), None)
        fields = [field_for_label(c) if isinstance(c, str) else None for c in cells]
        id_column = next((fields.index(f) for f in ids if f in fields), None)
        if personal is not None and id_column is not None:
            break
    else:
        return None
    found: dict[str, str] = {}
    for cells in rows:
        if len(found) >= 1_000_000:
            break
        person = clean_id(cells[id_column]) if id_column < len(cells) else ""
        address, valid = clean_email(cells[personal]) if personal < len(cells) else ("", False)
        if person and looks_like_id(person):
            found[person] = address if valid and not is_institutional(address, settings.institution.domains) else ""
    return found


async def import_registry(path: Path, population: Population, settings: Settings, clock: Clock, *,
                          on_progress: OnProgress | None = None) -> ImportResult:
    """Insert or update registry entries from a file (keyed on population + ID); a personal e-mail column, when
    the file has one, is kept as each person's `personal_email` (the address sender confirmations go to).
    `on_progress(done, total)` is told of every person stored."""
    persons, problems = read_registry_file(path, population, settings)
    personal = read_personal_addresses(path, population, settings)
    now = clock.now()
    created = updated = skipped = 0
    existing = {e.person_id: e for e in await RegistryEntry.filter(population=population.value)}
    new_rows: list[RegistryEntry] = []
    async with in_transaction() as conn:
        for done, person in enumerate(persons):
            if on_progress is not None:
                on_progress(done, len(persons))
            if not person.person_id or not person.full_name:
                skipped += 1
                continue
            email = person.personal_email if is_institutional(person.personal_email,
                                                              settings.institution.domains) else ""
            values: dict[str, Any] = dict(
                full_name=person.full_name, name_key=fold(person.full_name), date_of_birth=person.date_of_birth,
                unit=person.unit, class_name=person.class_name, cohort=person.cohort, email=email,
                mobile=person.mobile, imported_at=now,
            )
            if personal is not None:
                values["personal_email"] = personal.get(person.person_id, "")
            entry = existing.get(person.person_id)
            if entry is None:
                new_rows.append(RegistryEntry(population=population.value, person_id=person.person_id, **values))
                existing[person.person_id] = new_rows[-1]
                created += 1
            elif entry.id is not None:
                await RegistryEntry.filter(id=entry.id).using_db(conn).update(**values)
                updated += 1
        await RegistryEntry.bulk_create(new_rows, batch_size=500, using_db=conn)
    if on_progress is not None:
        on_progress(len(persons), len(persons))
    return ImportResult(created, updated, skipped, tuple(problems))


def _field(code: str, field: str, row: int, message: str, severity: Severity = Severity.ERROR) -> Problem:
    return Problem(field=field, code=code, message=message, severity=severity, row=row)


def compare(person: Person, entry: RegistryEntry | None, row: int, population: Population) -> list[Problem]:
    """Findings for one person against their registry entry (diacritics-only differences warn)."""
    pid = person.person_id
    id_label = "Mã số sinh viên" if population is Population.STUDENT else "Mã cán bộ"
    if not pid:
        return []  # the form reader already reported the missing ID
    if entry is None:
        return [_field("not_in_registry", "student_id" if population is Population.STUDENT else "staff_id", row,
                       f"{id_label} {pid} không có trong danh sách của trường.")]
    found: list[Problem] = []
    if person.full_name and fold(person.full_name) != fold(entry.full_name):
        found.append(_field("name_mismatch", "full_name", row,
                            f"Họ và tên không khớp với hồ sơ: hồ sơ ghi «{entry.full_name}»."))
    elif person.full_name and same_but_diacritics(person.full_name, entry.full_name):
        found.append(_field("name_diacritics", "full_name", row,
                            f"Họ và tên chỉ khác dấu so với hồ sơ («{entry.full_name}»).", Severity.WARNING))
    if person.date_of_birth and entry.date_of_birth and person.date_of_birth != entry.date_of_birth:
        found.append(_field("dob_mismatch", "date_of_birth", row,
                            f"Ngày sinh không khớp với hồ sơ: hồ sơ ghi {entry.date_of_birth:%d/%m/%Y}."))
    if person.class_name and entry.class_name and fold(person.class_name) != fold(entry.class_name):
        found.append(_field("class_mismatch", "class", row,
                            f"Lớp không khớp với hồ sơ: hồ sơ ghi «{entry.class_name}».", Severity.WARNING))
    if person.unit and entry.unit and not _unit_agrees(person.unit, entry.unit):
        found.append(_field("unit_mismatch", "unit", row,
                            f"Đơn vị không khớp với hồ sơ: hồ sơ ghi «{entry.unit}».", Severity.WARNING))
    return found


def _unit_agrees(written: str, registered: str) -> bool:
    # Units are written loosely ("Viện CNTT&TT" vs "Viện Công nghệ Thông tin và Truyền thông"): accept
    # either one containing the other once folded.
    a, b = fold(written), fold(registered)
    return a == b or a in b or b in a


async def lookup(population: Population, person_ids: list[str]) -> dict[str, RegistryEntry]:
    """Registry entries for some IDs, in one query."""
    ids = sorted({clean(p) for p in person_ids if p})
    if not ids:
        return {}
    rows = await RegistryEntry.filter(population=population.value, person_id__in=ids)
    return {r.person_id: r for r in rows}
