"""Plain value types shared by the intake pipeline: what a mail says and what was found in it.

These are frozen dataclasses with no I/O; the JSON names of `Person` and `Problem` are a public
contract (`edudesk mail inspect --json`), so keep them stable.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from typing import Any


class Kind(enum.StrEnum):
    """What a mail asks for."""

    NEW_ACCOUNT = "new_account"
    PASSWORD_RESET = "password_reset"
    BULK_NEW_ACCOUNTS = "bulk_new_accounts"
    DELETE_ACCOUNTS = "delete_accounts"
    QUESTION = "question"  # a person asks something (Wi-Fi, the LMS): no form, no provisioning
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    UNKNOWN = "unknown"


class Population(enum.StrEnum):
    """Who the accounts are for."""

    STAFF = "staff"
    STUDENT = "student"


class Severity(enum.StrEnum):
    """How bad a finding is: errors block approval, warnings are shown."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Attachment:
    """One attachment of a mail, already decoded from its transfer encoding."""

    filename: str
    content_type: str
    payload: bytes


@dataclass(frozen=True)
class IncomingMail:
    """A parsed mail, the same whatever channel it came in by (SMTP listener or IMAP)."""

    message_id: str
    subject: str
    from_addr: str
    from_name: str = ""
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reply_to: str = ""
    return_path: str | None = None  # None: header absent; "": the null path <>
    in_reply_to: str = ""
    references: tuple[str, ...] = ()
    date: datetime | None = None
    text: str = ""
    html: str = ""
    attachments: tuple[Attachment, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)  # lower-case name -> decoded value
    defects: tuple[str, ...] = ()
    forwarded: tuple[IncomingMail, ...] = ()  # mails forwarded as message/rfc822 attachments, parsed

    def header(self, name: str) -> str:
        """Return a header's decoded value, or "" when absent."""
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True)
class Problem:
    """One finding about a request or a person: field, stable code, Vietnamese message."""

    field: str
    code: str
    message: str
    severity: Severity = Severity.ERROR
    row: int | None = None  # index of the person in the request, None for the whole request

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape used by `mail inspect --json` and the database."""
        return {
            "field": self.field,
            "code": self.code,
            "message": self.message,
            "severity": self.severity.value,
            "row": self.row,
        }


@dataclass(frozen=True)
class Person:
    """One person a request is about, as written on the form (normalised to NFC)."""

    full_name: str = ""
    family_name: str = ""
    middle_name: str = ""
    given_name: str = ""
    student_id: str = ""
    staff_id: str = ""
    date_of_birth: date | None = None
    unit: str = ""
    class_name: str = ""  # JSON name "class"
    cohort: str = ""
    mobile: str = ""  # normalised +84... when valid, else as written
    personal_email: str = ""
    proposed_address: str = ""
    note: str = ""

    @property
    def person_id(self) -> str:
        """The registry key: student ID or staff ID, whichever is set."""
        return self.student_id or self.staff_id

    def with_(self, **changes: Any) -> Person:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON shape (keys as documented in the README)."""
        data = asdict(self)
        data["class"] = data.pop("class_name")
        data["date_of_birth"] = self.date_of_birth.isoformat() if self.date_of_birth else None
        data.pop("note")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Person:
        """The Person `to_json` wrote (a request's stored row); unknown keys are ignored."""
        values = {k: str(data.get(k) or "") for k in (
            "full_name", "family_name", "middle_name", "given_name", "student_id", "staff_id", "unit", "cohort",
            "mobile", "personal_email", "proposed_address")}
        born = data.get("date_of_birth")
        try:
            birth = date.fromisoformat(born) if isinstance(born, str) and born else None
        except ValueError:
            birth = None
        return cls(**values, class_name=str(data.get("class") or ""), date_of_birth=birth)


@dataclass(frozen=True)
class ExtractedRequest:
    """What the form extraction read from a mail, before any registry check."""

    kind: Kind
    population: Population
    persons: tuple[Person, ...] = ()
    source: str = "body"  # body | docx | xlsx | pdf | none
    problems: tuple[Problem, ...] = ()
    unit: str = ""  # the requesting unit, for lists sent by a unit
    forwarded_from: str = ""  # "Name <address>" of the forwarded mail's writer; the requester forwarded it
    # every "label: value" the mail's own text holds (canonical field, value as written): a reply that
    # only adds the missing field ("SĐT: 0912 345 678") is merged into its request with these
    fields: tuple[tuple[str, str], ...] = ()
