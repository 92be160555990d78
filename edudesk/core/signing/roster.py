"""The records roster (.xlsx): teachers, classes, subject assignments, homeroom, leadership, students.

Sheets, first row headers (Vietnamese, case and diacritics as typed; NFC/NFD alike):
- "Giáo viên": Mã GV | Họ và tên | Email
- "Lớp": Năm học | Lớp | Trường | GVCN (the homeroom teacher's code)
- "Phân công": Lớp | Môn | Mã GV (one row per subject; a teacher with two subjects signs once)
- "Ban giám hiệu": Lớp ("*" for every class) | Mã GV | Thứ tự, and optionally Chức vụ: "Hiệu trưởng" marks the
  principal (who signs after the others with `[records] leadership_order = "principal_last"`)
- "Học sinh": Lớp | Mã HS | Họ và tên | Ngày sinh
"""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from edudesk.core.errors import EdudeskError

SHEETS = {
    "teachers": ("Giáo viên", ("Mã GV", "Họ và tên", "Email")),
    "classes": ("Lớp", ("Năm học", "Lớp", "Trường", "GVCN")),
    "subjects": ("Phân công", ("Lớp", "Môn", "Mã GV")),
    "leaders": ("Ban giám hiệu", ("Lớp", "Mã GV", "Thứ tự")),
    "students": ("Học sinh", ("Lớp", "Mã HS", "Họ và tên", "Ngày sinh")),
}
OPTIONAL = {"leaders": ("Chức vụ",)}  # read when the sheet has them
PRINCIPAL = {"hiệu trưởng", "hieu truong", "principal"}  # a Chức vụ naming the principal (casefolded)
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class RosterError(EdudeskError):
    """The roster file cannot be read: a missing sheet or column, an unknown teacher, a bad code."""

    code = "roster_invalid"


@dataclass(frozen=True)
class TeacherRow:
    """A teacher of the roster."""

    code: str
    name: str
    email: str = ""


@dataclass
class ClassRow:
    """A class of the roster with everyone who signs its records."""

    year: str
    name: str
    school: str
    homeroom: str
    subjects: dict[str, list[str]] = field(default_factory=dict)  # teacher code -> subjects, roster order
    leaders: list[str] = field(default_factory=list)  # teacher codes, in signing-box order
    principal: str = ""  # the leader whose Chức vụ is Hiệu trưởng (teacher code), if the roster says
    students: list[tuple[str, str, str]] = field(default_factory=list)  # (code, full name, date of birth)


@dataclass
class Roster:
    """A whole roster file."""

    teachers: dict[str, TeacherRow]
    classes: dict[str, ClassRow]


def _key(text: Any) -> str:
    return unicodedata.normalize("NFC", str(text or "")).strip().casefold()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "strftime"):
        return str(value.strftime("%d/%m/%Y"))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFC", str(value)).strip()


def _rows(book: Any, what: str) -> list[dict[str, str]]:
    title, columns = SHEETS[what]
    sheet = next((ws for ws in book.worksheets if _key(ws.title) == _key(title)), None)
    if sheet is None:
        raise RosterError(f"Tệp phân công thiếu trang tính \"{title}\".")
    rows = list(sheet.iter_rows(values_only=True))
    if not rows:
        return []
    header = [_key(h) for h in rows[0]]
    where = {}
    for col in columns:
        if _key(col) not in header:
            raise RosterError(f"Trang \"{title}\" thiếu cột \"{col}\".")
        where[col] = header.index(_key(col))
    for col in OPTIONAL.get(what, ()):
        if _key(col) in header:
            where[col] = header.index(_key(col))
    out = []
    for row in rows[1:]:
        values = {col: _text(row[i]) if i < len(row) else "" for col, i in where.items()}
        if any(values.values()):
            out.append(values)
    return out


def _code(value: str, what: str) -> str:
    if not _CODE.match(value):
        raise RosterError(f"{what} \"{value}\" không hợp lệ (chỉ chữ không dấu, số, . _ -; tối đa 40 ký tự).")
    return value


def read_roster(data: bytes) -> Roster:
    """Parse a roster workbook; every problem is a RosterError naming the sheet and the value."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same clear answer
        raise RosterError(f"Không đọc được tệp phân công (.xlsx): {exc}") from None
    teachers = {}
    for r in _rows(book, "teachers"):
        code = _code(r["Mã GV"], "Mã giáo viên")
        teachers[code] = TeacherRow(code, r["Họ và tên"], r["Email"].lower())
    classes: dict[str, ClassRow] = {}
    for r in _rows(book, "classes"):
        classes[r["Lớp"]] = ClassRow(r["Năm học"], r["Lớp"], r["Trường"], r["GVCN"])

    def klass(name: str, sheet: str) -> ClassRow:
        if name not in classes:
            raise RosterError(f"Trang \"{sheet}\": lớp \"{name}\" không có trong trang \"Lớp\".")
        return classes[name]

    def teacher(code: str, sheet: str) -> str:
        if code not in teachers:
            raise RosterError(f"Trang \"{sheet}\": mã giáo viên \"{code}\" không có trong trang \"Giáo viên\".")
        return code

    for c in classes.values():
        teacher(c.homeroom, "Lớp")
    for r in _rows(book, "subjects"):
        klass(r["Lớp"], "Phân công").subjects.setdefault(teacher(r["Mã GV"], "Phân công"), []).append(r["Môn"])
    leaders = sorted(_rows(book, "leaders"), key=lambda r: int(r["Thứ tự"] or 0))
    for r in leaders:
        targets = list(classes.values()) if r["Lớp"] == "*" else [klass(r["Lớp"], "Ban giám hiệu")]
        for c in targets:
            if r["Mã GV"] not in c.leaders:
                c.leaders.append(teacher(r["Mã GV"], "Ban giám hiệu"))
            if _key(r.get("Chức vụ", "")) in PRINCIPAL:
                c.principal = r["Mã GV"]
    for r in _rows(book, "students"):
        klass(r["Lớp"], "Học sinh").students.append(
            (_code(r["Mã HS"], "Mã học sinh"), r["Họ và tên"], r["Ngày sinh"]))
    for c in classes.values():
        if not c.subjects or not c.leaders:
            raise RosterError(f"Lớp {c.name} chưa có {'giáo viên bộ môn' if not c.subjects else 'ban giám hiệu'}.")
    return Roster(teachers, classes)


