"""The findings form extraction reports: stable codes, text addressed to the requester from the catalogue
(core/words/, keys `form.<code>`)."""

from __future__ import annotations

from edudesk.core.intake.domain import Problem, Severity
from edudesk.core.words import t

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO
LANG = "vi"  # findings are stored with the request and read by the office and the requester, in Vietnamese


def _name(filename: str) -> str:
    return filename or t("form.unnamed", LANG)


def no_form() -> Problem:
    """No person could be read from the mail or its attachments."""
    return Problem("form", "no_form", t("form.no_form", LANG))


def attachment_too_large(filename: str, size: int, limit: int) -> Problem:
    """An attachment over the size limit, left unread."""
    text = t("form.attachment_too_large", LANG, name=_name(filename), mb=size / 1_048_576, max_mb=limit / 1_048_576)
    return Problem("attachment", "attachment_too_large", text)


def hostile_attachment(filename: str) -> Problem:
    """A zip (docx/xlsx) whose directory promises a decompression bomb; never opened."""
    return Problem("attachment", "hostile_attachment", t("form.hostile_attachment", LANG, name=_name(filename)))


def unreadable_attachment(filename: str) -> Problem:
    """A file that claims to be a form but cannot be parsed."""
    return Problem("attachment", "unreadable_attachment",
                   t("form.unreadable_attachment", LANG, name=_name(filename)))


def unsupported_attachment(filename: str) -> Problem:
    """An old binary Office file (.doc/.xls) that edudesk does not read."""
    return Problem("attachment", "unsupported_attachment",
                   t("form.unsupported_attachment", LANG, name=_name(filename)), WARNING)


def too_many_rows(limit: int) -> Problem:
    """A list longer than the configured maximum; only the first rows were read."""
    return Problem("form", "too_many_rows", t("form.too_many_rows", LANG, limit=limit))


def legacy_encoding() -> Problem:
    """Names were typed in TCVN3/VNI fonts and were converted; the office should glance at them."""
    return Problem("form", "legacy_encoding", t("form.legacy_encoding", LANG), INFO)


def missing_name(row: int, severity: Severity = ERROR) -> Problem:
    """A person with an ID but no name."""
    return Problem("full_name", "missing_name", t("form.missing_name", LANG), severity, row)


def missing_id(row: int, staff: bool) -> Problem:
    """A person without the student or staff ID the registry check needs."""
    field = "staff_id" if staff else "student_id"
    return Problem(field, "missing_id", t("form.missing_id", LANG, what=t(f"form.{field}", LANG)), WARNING, row)


def invalid_id(row: int, raw: str) -> Problem:
    """An ID cell that holds words rather than an ID ("chưa có")."""
    return Problem("person_id", "invalid_id", t("form.invalid_id", LANG, raw=raw), WARNING, row)


def invalid_date(row: int, raw: str) -> Problem:
    """A date of birth that is not a real day."""
    return Problem("date_of_birth", "invalid_date", t("form.invalid_date", LANG, raw=raw), ERROR, row)


def missing_mobile(row: int) -> Problem:
    """An individual's form without the mandatory mobile number."""
    return Problem("mobile", "missing_mobile", t("form.missing_mobile", LANG), ERROR, row)


def invalid_mobile(row: int, raw: str, severity: Severity = ERROR) -> Problem:
    """A phone number that is not a valid mobile number."""
    return Problem("mobile", "invalid_mobile", t("form.invalid_mobile", LANG, raw=raw), severity, row)


def invalid_email(row: int, raw: str) -> Problem:
    """A personal e-mail address that cannot be an address."""
    return Problem("personal_email", "invalid_email", t("form.invalid_email", LANG, raw=raw), WARNING, row)


def duplicate_row(row: int, person_id: str, first_row: int) -> Problem:
    """The same ID twice in one list."""
    text = t("form.duplicate_row", LANG, person_id=person_id, first=first_row + 1, second=row + 1)
    return Problem("person_id", "duplicate_row", text, WARNING, row)


def forwarded(sender: str) -> Problem:
    """The form came in a forwarded mail: who wrote it (the requester is whoever forwarded it)."""
    return Problem("forwarded_from", "forwarded", t("form.forwarded", LANG, sender=sender), INFO)
