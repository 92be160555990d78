"""Reply threading: which earlier mail (and so which request) a new mail answers.

Two independent clues: the Message-IDs in In-Reply-To/References, and the request number we put in
our subjects ("[YC-123]"), which survives mailers that drop the threading headers.
"""

from __future__ import annotations

import re

from edudesk.core.intake.domain import IncomingMail
from edudesk.core.text import fold

# Tried in order on the folded subject (no diacritics, lower case). Every form needs a marker
# (YC, #, "yêu cầu số") so years, class names and student IDs ("Sinh viên 20201234") never match.
_PATTERNS = (
    re.compile(r"\[\s*yc\s*[-_#: ]?\s*(\d{1,9})\s*\]"),
    re.compile(r"(?<![a-z0-9])yc\s*[-_#:]?\s*(\d{1,9})(?![\d])"),
    re.compile(r"(?<![\w&])#\s?(\d{1,9})(?![\w])"),
    re.compile(r"(?<![a-z])yeu cau\s*(?:so|#)\s*[:.]?\s*(\d{1,9})(?![\d])"),
)


def thread_keys(mail: IncomingMail) -> tuple[str, ...]:
    """Message-IDs this mail answers: In-Reply-To first, then References; no duplicates, order kept."""
    keys = (mail.in_reply_to, *mail.references)
    return tuple(dict.fromkeys(k.strip().strip("<>") for k in keys if k and k.strip().strip("<>")))


def request_number_from_subject(subject: str) -> int | None:
    """The request number a subject refers to ("Re: [YC-123] ...", "YC 123", "#123", "yêu cầu số 123")."""
    folded = fold(subject)
    for pattern in _PATTERNS:
        found = pattern.search(folded)
        if found and int(found.group(1)) > 0:
            return int(found.group(1))
    return None
