"""PDF forms: AcroForm fields named like the form labels; without fields, "label: value" text."""

from __future__ import annotations

import io
from typing import Any

from edudesk.core.forms.labels import clean_value, field_for_label, find_fields, label_key
from edudesk.core.forms.records import FormResult, Record

MAX_TEXT_PAGES = 3  # a form is one or two pages; text extraction is the slow part of pypdf
_CHECKED = {"/Yes", "/On", "/1", "/True", "Yes", "On"}


def _field_value(field: dict[str, Any]) -> str | None:
    value = field.get("/V")
    if value is None:
        return None
    if field.get("/FT") == "/Btn":
        return "☒" if str(value) in _CHECKED else "☐"
    if isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return str(value)


def _field_label(name: str, field: dict[str, Any]) -> str | None:
    # Fully qualified names look like "form1.ho_va_ten"; the tooltip (/TU) is often the printed label.
    for candidate in (name.rsplit(".", 1)[-1].replace("_", " "), str(field.get("/TU") or "")):
        found = field_for_label(candidate)
        if found:
            return found
    return None


def read_pdf(payload: bytes) -> FormResult:
    """Fields of a PDF form (AcroForm), else "label: value" lines of its first pages."""
    from pypdf import PdfReader  # imported at the first PDF read, not at start

    reader = PdfReader(io.BytesIO(payload), strict=False)
    if reader.is_encrypted:
        reader.decrypt("")  # forms are often "encrypted" with an empty user password
    result = FormResult("pdf")
    fields = reader.get_fields() or {}
    record: Record = {}
    ticks: list[str] = []
    for name, field in fields.items():
        value = _field_value(field)
        if value is None:
            continue
        label = _field_label(name, field)
        if value in ("☒", "☐"):
            if value == "☒" and not label:
                ticks.append("☒ " + label_key(name.rsplit(".", 1)[-1].replace("_", " ")))
            continue
        if label and not record.get(label):
            record[label] = clean_value(value)
    if ticks:
        record.setdefault("request_type", " ".join(ticks))
    if not record:
        for page in reader.pages[:MAX_TEXT_PAGES]:
            for line in (page.extract_text() or "").splitlines():
                pairs = find_fields(line)
                for field, value in pairs:
                    record.setdefault(field, value)
                if not pairs and line.strip():
                    result.texts.append(line)
    else:
        title = reader.metadata.title if reader.metadata else None
        if title:
            result.texts.append(str(title))
    result.records.append(record)
    result.heading = " ".join(result.texts + list(fields))
    return result
