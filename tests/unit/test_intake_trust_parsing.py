"""Issue #13, reading what strangers send: the From address as clients and DMARC read it, and log lines
that show control characters instead of obeying them."""

from __future__ import annotations

import io
import logging

import pytest

from edudesk.core.intake.sender import from_untrusted
from edudesk.core.logsafe import LOG_FORMAT, EscapingFormatter, escape_controls
from edudesk.mailer.parse import parse_mail


def from_(value: str) -> bytes:
    return f"From: {value}\r\nTo: office@hust.edu.vn\r\nSubject: x\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n".encode()


@pytest.mark.parametrize(("value", "addr", "untrusted"), [
    ("=?utf-8?q?admin=40hust=2Eedu=2Evn?= <attacker@evil.test>", "attacker@evil.test", False),
    ("x@hust.edu.vn <attacker@evil.test>", "attacker@evil.test", True),
    ('"Admin <x@hust.edu.vn>" <attacker@evil.test>', "attacker@evil.test", False),
    ("attacker@evil.test (x@hust.edu.vn)", "attacker@evil.test", False),
    ("admin@hust.edu.vn, attacker@evil.test", "admin@hust.edu.vn", True),
    ("=?utf-8?q?x=40hust=2Eedu=2Evn=3E?= attacker@evil.test", "", True),
    ("x@hust.edu.vn@evil.test", "", True),
    ('"Nguyễn, Văn An" <an.nv@gmail.com>', "an.nv@gmail.com", False),
    ("Nguyễn Văn An <an.nv@gmail.com>", "an.nv@gmail.com", False),
])
def test_from_is_the_addr_spec_never_the_display_name(value: str, addr: str, untrusted: bool) -> None:
    mail = parse_mail(from_(value))
    assert mail.from_addr == addr
    assert from_untrusted(mail) is untrusted


def test_display_name_keeps_what_the_sender_wrote() -> None:
    mail = parse_mail(from_('"Nguyễn, Văn An" <an.nv@gmail.com>'))
    assert mail.from_name == "Nguyễn, Văn An"


def test_control_characters_are_escaped_in_log_lines() -> None:
    assert escape_controls("a\x00b\x1b[31mc\x7f\nd\té") == "a\\x00b\\x1b[31mc\\x7f\\x0ad\\x09é"
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(EscapingFormatter(LOG_FORMAT))
    logger = logging.getLogger("test.logsafe")
    logger.addHandler(handler)
    try:
        logger.warning("refused %s", "evil\x00@x.test\nFAKE 00:00 INFO edudesk: all good")
    finally:
        logger.removeHandler(handler)
    line = out.getvalue()
    assert line.count("\n") == 1 and "\x00" not in line
    assert "evil\\x00@x.test\\x0aFAKE" in line
