"""Form labels in Vietnamese and English -> canonical field names, and "label: value" splitting."""

from __future__ import annotations

import functools
import re

from edudesk.core.text import clean, fold

# "khoa" without marks is both Khoa (faculty, a unit) and Khóa (cohort); the value decides.
UNIT_OR_COHORT = "unit_or_cohort"
NAME_FIELDS = frozenset({"full_name", "family_middle", "given_name"})
ID_FIELDS = frozenset({"student_id", "staff_id", "person_id"})

_ALIASES: dict[str, tuple[str, ...]] = {
    "full_name": (
        "ho va ten", "ho ten", "ho va ten sinh vien", "ho va ten can bo", "ho ten sinh vien", "ho ten can bo",
        "ho va ten hoc vien", "ho ten hoc vien", "ho va ten sv", "ho ten sv", "ho va ten hv", "ho ten hv",
        "ho va ten nguoi dang ky", "ho ten nguoi dang ky", "ten day du", "ten sinh vien", "ten can bo",
        "full name", "fullname", "name", "student name", "staff name", "ho va ten khai sinh",
    ),
    "family_middle": (
        "ho dem", "ho va dem", "ho va ten dem", "ho lot", "ho va chu lot", "ho", "last name", "surname",
        "family name",
    ),
    "middle_name": ("ten dem", "ten lot", "chu lot", "dem", "middle name"),
    "given_name": ("ten", "ten goi", "given name", "first name"),
    "student_id": (
        "ma so sinh vien", "ma sinh vien", "mssv", "ma sv", "ma so sv", "ma so sv hv", "ma sv hv",
        "ma so hoc vien", "ma hoc vien", "mshv", "ma hv", "ma so hv", "so hieu sinh vien",
        "ma so sinh vien hoc vien", "ma so hoc sinh", "ma hoc sinh", "student id", "student number",
        "student code", "student no",
    ),
    "staff_id": (
        "ma can bo", "ma so can bo", "mscb", "ma cb", "ma so cb", "ma nhan vien", "ma so nhan vien",
        "msnv", "ma giang vien", "so hieu can bo", "so hieu cong chuc", "ma vien chuc", "ma so vien chuc",
        "staff id", "staff code", "staff number", "employee id", "ma giao vien", "ma so giao vien", "ma gv",
    ),
    "person_id": ("ma so", "ma", "id"),
    "date_of_birth": (
        "ngay sinh", "ngay thang nam sinh", "sinh ngay", "date of birth", "dob", "birth date", "birthday",
    ),
    "unit": (
        "don vi", "don vi cong tac", "don vi quan ly", "khoa vien", "vien", "phong ban", "bo mon",
        "khoa vien truong", "don vi khoa vien", "noi cong tac", "co quan", "unit", "department", "faculty",
        "school", "truong khoa vien",
    ),
    "class_name": ("lop", "lop hoc", "lop sinh hoat", "ma lop", "ten lop", "class", "class name"),
    "cohort": ("khoa hoc", "nien khoa", "cohort", "intake", "course"),
    "mobile": (
        "so dien thoai", "dien thoai", "so dien thoai di dong", "dien thoai di dong", "di dong", "so di dong",
        "sdt", "dt", "dtdd", "so dt", "so dtdd", "dien thoai lien he", "so dien thoai lien he", "mobile",
        "mobile phone", "mobile number", "phone", "phone number", "cell phone", "tel",
    ),
    "personal_email": (
        "email ca nhan", "e mail ca nhan", "thu dien tu ca nhan", "dia chi email ca nhan",
        "dia chi thu dien tu ca nhan", "email", "e mail", "email lien he", "dia chi email", "gmail",
        "email khac", "personal email", "personal e mail", "contact email",
    ),
    "note": ("ghi chu", "note", "notes", "remark", "remarks"),
    "index": ("stt", "tt", "so tt", "so thu tu", "thu tu", "no"),
    "request_type": (
        "loai yeu cau", "yeu cau", "noi dung yeu cau", "noi dung de nghi", "loai de nghi", "de nghi",
        "hinh thuc", "request", "request type",
    ),
}
LABELS: dict[str, str] = {alias: field for field, aliases in _ALIASES.items() for alias in aliases}
LABELS.update({f.replace("_", " "): f for f in _ALIASES if f not in ("index",)})
_MAX_LABEL_WORDS = max(len(a.split()) for a in LABELS)
MAX_LABEL_CHARS = 80
MAX_LINE = 4000

_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NON_WORD = re.compile(r"[^a-z0-9]+")
_LEADING_NUMBER = re.compile(r"^\s*(?:\d{1,2}|[a-h])\s*[.)]\s+")
_COLON = re.compile(r"[:：]")
_WORD = re.compile(r"\S+")
_OWNER = re.compile(r"\s+cua\s+(em|toi|minh|con|chau|sinh vien|can bo|ban)$|\s+(em|toi|minh)$|\s+of\s+me$")
_LEADERS = re.compile(r"[.…_·]{3,}|…")


def label_key(text: str) -> str:
    """Comparison key of a label: folded, bracketed hints, punctuation and "của em" removed."""
    folded = fold(_LEADING_NUMBER.sub("", text))
    folded = _PARENS.sub(" ", folded)
    return _OWNER.sub("", _NON_WORD.sub(" ", folded).strip())


def field_for_label(text: object) -> str | None:
    """The canonical field a label names ("Mã số SV/HV" -> "student_id"), or None."""
    if not isinstance(text, str) or not text or len(text) > MAX_LABEL_CHARS:
        return None
    return _field_for_label(text)


# A form's labels come again in every copy of it (a burst of the same BM02), and each cell of a table is asked:
# folding them (NFD, marks, regular expressions) was a fifth of a parser's time a mail.
@functools.lru_cache(maxsize=2048)
def _field_for_label(text: str) -> str | None:
    key = label_key(text)
    if key == "khoa":
        lowered = clean(_PARENS.sub(" ", text)).casefold()
        if "khóa" in lowered or "khoá" in lowered:
            return "cohort"
        return "unit" if "khoa" not in lowered else UNIT_OR_COHORT
    return LABELS.get(key)


def clean_value(text: str) -> str:
    """A written value without dot leaders ("Nguyễn Văn An ......") or stray separators."""
    return clean(_LEADERS.sub(" ", text)).strip(" ,;:|-–")


def find_fields(line: str) -> list[tuple[str, str]]:
    """Every "label: value" pair of one line, several per line allowed ("Họ tên: X   Lớp: Y")."""
    if len(line) > MAX_LINE or not _COLON.search(line):
        return []  # a form line is short; a megabyte of colons must not cost quadratic time
    found: list[tuple[int, int, str]] = []  # (label start, value start, field)
    floor = 0
    for colon in _COLON.finditer(line):
        # Labels are at most 80 characters: only the words just before the colon can be one.
        window = max(floor, colon.start() - MAX_LABEL_CHARS)
        words = list(_WORD.finditer(line, window, colon.start()))
        for size in range(min(len(words), _MAX_LABEL_WORDS), 0, -1):
            start = words[-size].start()
            field = field_for_label(line[start : colon.start()])
            if field:
                found.append((start, colon.end(), field))
                floor = colon.end()
                break
    pairs = []
    for i, (_, value_start, field) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(line)
        pairs.append((field, clean_value(line[value_start:end])))
    return pairs

