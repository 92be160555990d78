"""Loop and bounce detection: mails written by machines never become requests and never get answers.

The signals are the ones RFC 3834 (Auto-Submitted), RFC 3464 (multipart/report) and the big mailers
(Exchange's X-Auto-Response-Suppress, Precedence, list headers) put on automatic mail; subjects are
the last resort, matched only at the start so a person writing "vắng mặt" in a request is not muted.
"""

from __future__ import annotations

import re

from edudesk.core.intake.domain import IncomingMail, Kind
from edudesk.core.intake.sender import from_untrusted
from edudesk.core.text import fold

_DAEMONS = {"mailer-daemon", "mailerdaemon", "postmaster", "mail-daemon", "mail.delivery.system"}
# folded (no diacritics, lower case), matched against the start of a folded subject
_DSN_SUBJECT = re.compile(
    r"^(undeliver(ed|able)|delivery (status notification|failure|has failed)|mail delivery failed"
    r"|failure notice|returned mail|non.?delivery|warning: could not send|khong (the )?gui duoc"
    r"|thu khong (the )?gui duoc|khong the chuyen phat)"
)
_AUTO_SUBJECT = re.compile(
    r"^(auto(matic)?[ -]?(reply|response|answer)|auto:|autoreply|out of (the )?office|ooo\b|"
    r"reponse automatique|tra loi tu dong|phan hoi tu dong|vang mat|dang nghi phep)"
)
_BULK_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_REPORT = re.compile(r"multipart/report.*report-type\s*=\s*\"?([\w-]+)", re.I | re.S)


def classify_automatic(mail: IncomingMail, own_addresses: tuple[str, ...]) -> Kind | None:
    """BOUNCE for delivery reports, AUTO_REPLY for any other machine-written mail, None for a person."""
    if _is_bounce(mail):
        return Kind.BOUNCE
    if _is_own(mail, own_addresses) or _is_auto_reply(mail):
        return Kind.AUTO_REPLY
    return None


def may_auto_reply(mail: IncomingMail, own_addresses: tuple[str, ...] = ()) -> bool:
    """True when answering this mail cannot start a loop: a person's mail with a usable sender that is
    not one of the office's own addresses (answering those would be the office writing to itself)."""
    # absent Return-Path is normal for SMTP-received mail (added at final delivery); only <> forbids
    if mail.return_path == "" or not mail.from_addr:
        return False
    if mail.from_addr.lower() in {a.strip().lower() for a in own_addresses}:
        return False
    if from_untrusted(mail):
        return False  # two addresses in From: an answer could go to a person the sender only named
    return classify_automatic(mail, ()) is None


def _report_type(mail: IncomingMail) -> str:
    found = _REPORT.search(mail.header("content-type"))
    return found.group(1).lower() if found else ""


def _is_bounce(mail: IncomingMail) -> bool:
    if _report_type(mail) == "delivery-status" or "x-failed-recipients" in mail.headers:
        return True
    if mail.from_addr.partition("@")[0] in _DAEMONS:
        return True
    # a null sender alone is also used by calendars and receipts; with a DSN subject it is a bounce
    return mail.return_path == "" and bool(_DSN_SUBJECT.search(fold(mail.subject)))


def _is_own(mail: IncomingMail, own_addresses: tuple[str, ...]) -> bool:
    """Our acknowledgements carry X-Edudesk-Request and Auto-Submitted: auto-generated."""
    if mail.header("x-edudesk-request"):
        return True  # no person's mailer copies our private header into a reply
    own = {a.strip().lower() for a in own_addresses}
    return mail.from_addr in own and _auto_submitted(mail)


def _auto_submitted(mail: IncomingMail) -> bool:
    value = mail.header("auto-submitted").split(";")[0].strip().lower()
    return bool(value) and value != "no"


def _is_auto_reply(mail: IncomingMail) -> bool:
    if _auto_submitted(mail) or _report_type(mail) == "disposition-notification":
        return True
    if mail.header("precedence").strip().lower() in _BULK_PRECEDENCE:
        return True
    names = ("x-auto-response-suppress", "x-autoreply", "x-autorespond", "list-id", "list-unsubscribe")
    if any(name in mail.headers for name in names):  # present at all, whatever the value
        return True
    return bool(_AUTO_SUBJECT.search(fold(mail.subject)))
