"""Cell and field values: day-first dates, IDs that spreadsheets turned into floats, plain text."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from edudesk.core.text import clean, fold

_EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 = 1900-01-01 with Excel's 1900 leap-year bug folded in
_ISO = re.compile(r"^(\d{4})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{1,2})$")
_DMY = re.compile(r"^(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{4}|\d{2})$")
_WORDS = re.compile(r"^(?:ngay\s*)?(\d{1,2})\s*thang\s*(\d{1,2})\s*(?:nam\s*)?(\d{4})$")
_COMPACT = re.compile(r"^\d{8}$")
_TIME_TAIL = re.compile(r"[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")
_SCIENTIFIC = re.compile(r"^\d+(\.\d+)?[eE]\+?\d+$")
_FLOAT_INT = re.compile(r"^(\d+)\.0+$")


def _make(year: int, month: int, day: int) -> date | None:
    if year < 100:
        year += 2000 if year <= 30 else 1900  # two-digit years on forms are birth years
    if not 1900 <= year <= 2100:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def parse_date(value: object) -> tuple[date | None, bool]:
    """(date, invalid): day-first strings, ISO strings, Excel dates and serial numbers."""
    if value is None or value == "":
        return None, False
    if isinstance(value, datetime):
        return value.date(), False
    if isinstance(value, date):
        return value, False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # An unformatted Excel date cell holds its serial number (37686 = 2003-03-05).
        if 3000 < value < 80000:
            return _EXCEL_EPOCH + timedelta(days=int(value)), False
        return None, True
    text = _TIME_TAIL.sub("", clean(str(value)))
    if not text:
        return None, False
    if m := _ISO.match(text):
        found = _make(int(m[1]), int(m[2]), int(m[3]))
    elif m := _DMY.match(text):
        found = _make(int(m[3]), int(m[2]), int(m[1]))
    elif m := _WORDS.match(fold(text)):
        found = _make(int(m[3]), int(m[2]), int(m[1]))
    elif _COMPACT.match(text):
        # ddmmyyyy is what people type; yyyymmdd is what exports write.
        found = _make(int(text[4:]), int(text[2:4]), int(text[:2])) or _make(
            int(text[:4]), int(text[4:6]), int(text[6:])
        )
    else:
        found = None
    return found, found is None


def text_value(value: object) -> str:
    """Any cell value as cleaned text; integral floats lose their ".0" (65.0 -> "65")."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    return clean(str(value))


def clean_id(value: object) -> str:
    """A student or staff ID as text: floats and "20201234.0" lose the decimals, spaces go."""
    text = text_value(value)
    if _SCIENTIFIC.match(text):
        try:
            number = float(text)
        except ValueError:
            return text
        if number.is_integer():
            return str(int(number))
    if m := _FLOAT_INT.match(text):
        return m[1]
    return re.sub(r"\s+", "", text)


_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+$")


def clean_email(value: object) -> tuple[str, bool]:
    """(address in lower case, valid); "mailto:" and angle brackets are dropped."""
    text = text_value(value)
    text = re.sub(r"^mailto:", "", text, flags=re.I).strip("<> ")
    return text.lower(), bool(_EMAIL.match(text))


_COHORT = re.compile(r"^(?:k|khoa|course)?\s*\d{1,4}(?:\s*-\s*\d{4})?$")


def looks_like_cohort(value: str) -> bool:
    """True for "K65", "65", "Khóa 65", "2020-2024" (what the Khóa column holds, not a faculty)."""
    return bool(_COHORT.match(fold(value)))


_ID = re.compile(r"^[A-Za-z0-9._/\-]{3,20}$")


def looks_like_id(value: str) -> bool:
    """True for a student or staff ID: 3 to 20 letters/digits with at least one digit."""
    return bool(_ID.match(value)) and any(ch.isdigit() for ch in value)


def looks_like_name(value: str) -> bool:
    """True for text that can be a person's name (letters, 1 to 8 words, no digits or @)."""
    if not value or len(value) > 80 or any(ch.isdigit() or ch in "@:/" for ch in value):
        return False
    words = value.split()
    return 1 <= len(words) <= 8 and all(any(ch.isalpha() for ch in w) for w in words)
