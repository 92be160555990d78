"""Vietnamese text: NFC normalisation, diacritics folding, whitespace cleanup."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

_SPACES = re.compile(r"\s+")
_D_MAP = str.maketrans({"đ": "d", "Đ": "D"})
TIME_FORMAT = "%d/%m/%Y %H:%M"  # how a moment is shown to people: 05/03/2026 14:30


def nfc(text: str) -> str:
    """Normalise to NFC (NFD input from macOS mailers and windows-1258 decodes to combining marks)."""
    return unicodedata.normalize("NFC", text)


def clean(text: str | None) -> str:
    """NFC, non-breaking and repeated spaces collapsed, ends stripped."""
    if not text:
        return ""
    return _SPACES.sub(" ", nfc(str(text)).replace("\u00a0", " ")).strip()


def strip_diacritics(text: str) -> str:
    """Drop Vietnamese marks: NFD, remove combining marks, then map đ/Đ (they do not decompose)."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", bare.translate(_D_MAP))


def fold(text: str | None) -> str:
    """Comparison key: cleaned, no diacritics, lower case (so "Nguyễn  Văn An" == "nguyen van an")."""
    return strip_diacritics(clean(text)).casefold()


def same_but_diacritics(a: str | None, b: str | None) -> bool:
    """True when two texts differ only in diacritics (or case/spacing), not when they are equal."""
    return clean(a).casefold() != clean(b).casefold() and fold(a) == fold(b)


def local_time(value: datetime | str, timezone: str) -> str:
    """A moment as people read it everywhere (pages, cards, mails, CLI, PDF stamps): "dd/mm/yyyy HH:MM" in the
    office's time zone (`[general].timezone`)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)  # job payloads and JSON carry dates as ISO text
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # SQLite drivers can hand back naive datetimes; stored as UTC
    return value.astimezone(ZoneInfo(timezone)).strftime(TIME_FORMAT)


def printable(text: str, limit: int = 1000) -> str:
    """Untrusted text made safe to store and show: control characters dropped (PostgreSQL refuses NUL in
    JSON and text), whitespace runs collapsed, cut to `limit` characters."""
    return " ".join("".join(c if c.isprintable() or c.isspace() else " " for c in text).split())[:limit]
