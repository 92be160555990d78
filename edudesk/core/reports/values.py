"""How a report's table values are printed, on the page and in the PDF (without importing fpdf2: the console
imports this at start, the PDF writer only when a PDF is made)."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def nfc(text: str) -> str:
    """The text in NFC, as fpdf2 and the page draw it."""
    # NFC: fpdf2 draws precomposed letters; decomposed input (macOS) would show loose marks.
    return unicodedata.normalize("NFC", text)


def shown(value: Any, kind: str, lang: str) -> str:
    """A table value as printed: decimal comma in Vietnamese, percent, dd/mm/yyyy [HH:MM], YC-number."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return nfc(value)
    if kind == "request":
        return f"YC-{value}"
    if isinstance(value, datetime):
        return f"{value:%d/%m/%Y %H:%M}"
    if isinstance(value, date):
        return f"{value:%d/%m/%Y}"
    if kind in ("percent", "hours"):
        # Half up, as people round (30,25 h -> 30,3), not float formatting's half to even.
        tenth = Decimal(repr(100 * value if kind == "percent" else value)).quantize(Decimal("0.1"), ROUND_HALF_UP)
        text = f"{tenth}%" if kind == "percent" else f"{tenth}"
    else:
        text = f"{value:,}"
        return text.replace(",", ".") if lang == "vi" else text
    return text.replace(".", ",") if lang == "vi" else text
