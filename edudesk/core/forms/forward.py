"""Forwarded mail written inline: where the forwarded part starts, who wrote it, what the forwarder added.

Clients mark a forward in their own words:
- Gmail: "---------- Forwarded message ---------" / "---------- Thư đã chuyển tiếp ----------", then
  From/Date/Subject/To ("Từ/Ngày/Tiêu đề/Tới" in Vietnamese);
- Zimbra: "----- Forwarded Message -----" / "----- Thư chuyển tiếp -----", then From/To/Sent/Subject;
- Outlook: a rule of underscores (or "-----Original Message-----"), then From/Sent/To/Subject
  ("Từ/Đã gửi/Đến/Chủ đề"). Outlook writes the same block above a quoted reply, so it counts as a forward
  only when the subject says so (Fw:, Fwd:, TV:, CT:, "Chuyển tiếp:").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MARKER = re.compile(
    r"^\s*-{3,}\s*(forwarded message|original message|message d'origine|thư đã chuyển tiếp|thư chuyển tiếp"
    r"|tin nhắn đã chuyển tiếp|tin nhắn chuyển tiếp|thư gốc)\s*-{3,}\s*$", re.I)
_FORWARD_WORDS = re.compile(r"forward|chuyển tiếp", re.I)
_RULE = re.compile(r"^\s*_{10,}\s*$")
_SUBJECT_FORWARD = re.compile(r"^\s*(?:(?:re|tl|aw|sv)\s*:\s*)*(fwd?|tv|ct|chuyển tiếp|forward)\s*:", re.I)
_HEADER = re.compile(
    r"^\s*[*>]*\s*(from|sent|date|to|cc|subject|reply-to|từ|người gửi|đã gửi|gửi|ngày|ngày gửi|đến|tới"
    r"|người nhận|chủ đề|tiêu đề|bcc)\s*[*]?\s*:\s*[*]?\s*(.*)$", re.I)
_FROM = {"from", "từ", "người gửi"}
_SUBJECT = {"subject", "chủ đề", "tiêu đề"}
_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
MAX_SEARCH_LINES = 4000


@dataclass(frozen=True)
class Forward:
    """An inline forward: the forwarder's own lines, the original sender and subject, the forwarded body."""

    own: str
    sender_name: str
    sender_addr: str
    subject: str
    body: str

    @property
    def sender(self) -> str:
        """"Name <address>", or whichever of the two is known."""
        if self.sender_name and self.sender_addr:
            return f"{self.sender_name} <{self.sender_addr}>"
        return self.sender_addr or self.sender_name


def _header_block(lines: list[str], start: int) -> tuple[dict[str, str], int] | None:
    """The From/To/Subject block at `start` (blank lines before it allowed): (fields, first body line)."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    fields: dict[str, str] = {}
    last = ""
    while i < len(lines):
        m = _HEADER.match(lines[i])
        if m:
            last = m.group(1).lower()
            fields.setdefault(last, m.group(2).strip())
        elif lines[i].strip() and last and len(fields) < 6 and lines[i].startswith((" ", "\t")):
            fields[last] += " " + lines[i].strip()  # a long To: wrapped by the client
        else:
            break
        i += 1
    if not fields.keys() & _FROM:
        return None
    return fields, i


def _sender(value: str) -> tuple[str, str]:
    value = re.sub(r"mailto:", "", value, flags=re.I)
    m = _ADDRESS.search(value)
    addr = m.group(0).lower() if m else ""
    name = value[: m.start()] if m else value
    name = re.sub(r"[<\[(\"'*]+\s*$", "", name.strip()).strip(" \"'*<[(")
    return name, addr


def split_forward(text: str, subject: str = "") -> Forward | None:
    """The inline forward in a body, or None when the body forwards nothing.

    Gmail's and Zimbra's markers say "forward" themselves; an Outlook header block (after a rule or
    "Original Message") counts only when the subject is a forward's. Lines quoted with ">" are left alone:
    they belong to an earlier mail, not to this one.
    """
    lines = text.splitlines()[:MAX_SEARCH_LINES]
    subject_forward = bool(_SUBJECT_FORWARD.match(subject or ""))
    for index, line in enumerate(lines):
        marker = _MARKER.match(line)
        if marker:
            if not (_FORWARD_WORDS.search(marker.group(1)) or subject_forward):
                continue
        elif not (subject_forward and (_RULE.match(line) or _is_from(line))):
            continue
        start = index if not (marker or _RULE.match(line)) else index + 1
        found = _header_block(lines, start)
        if found is None:
            continue
        fields, body_start = found
        name, addr = _sender(next(fields[k] for k in fields if k in _FROM))
        subject_line = next((fields[k] for k in fields if k in _SUBJECT), "")
        return Forward("\n".join(lines[:index]).strip(), name, addr, subject_line,
                       "\n".join(lines[body_start:]).strip())
    return None


def _is_from(line: str) -> bool:
    m = _HEADER.match(line)
    return m is not None and m.group(1).lower() in _FROM and bool(_ADDRESS.search(m.group(2)))
