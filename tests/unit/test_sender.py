"""Sender checks: authentication results, institution domains, free mail, spoofing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edudesk.core.intake.domain import IncomingMail
from edudesk.core.intake.sender import (
    auth_failed,
    is_free_mail,
    is_institutional,
    parse_authentication_results,
    sender_domain,
    spoof_suspected,
)
from edudesk.mailer.parse import parse_mail

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mail"
SCHOOL = ("thpt-nguyenhue.edu.vn",)


def load(name: str) -> IncomingMail:
    return parse_mail((FIXTURES / name).read_bytes())


def test_authentication_results_of_one_header():
    value = ("mx.google.com; dkim=pass header.i=@truong.edu.vn header.s=s1; spf=softfail "
             "(google.com: domain of a@b does not designate 1.2.3.4) smtp.mailfrom=a@b; dmarc=fail (p=NONE)")
    assert parse_authentication_results(value) == {"spf": "softfail", "dkim": "pass", "dmarc": "fail"}


def test_missing_methods_are_empty():
    assert parse_authentication_results("mx.truong.edu.vn; spf=pass smtp.mailfrom=a@b") == {
        "spf": "pass", "dkim": "", "dmarc": ""}
    assert parse_authentication_results("") == {"spf": "", "dkim": "", "dmarc": ""}


def test_results_inside_comments_are_ignored():
    value = "mx; spf=fail (sender claims dkim=pass and dmarc=pass (really)) smtp.mailfrom=a@b"
    assert parse_authentication_results(value) == {"spf": "fail", "dkim": "", "dmarc": ""}


def test_any_passing_dkim_signature_counts():
    value = "mx; dkim=fail header.d=list.org; dkim=pass header.d=truong.edu.vn; dkim-atps=neutral"
    assert parse_authentication_results(value)["dkim"] == "pass"


def test_topmost_header_decides_over_ones_the_sender_could_have_written():
    joined = "mx.ours; spf=softfail smtp.mailfrom=a@b; dkim=none\nforged; spf=pass; dkim=pass; dmarc=pass"
    assert parse_authentication_results(joined) == {"spf": "softfail", "dkim": "none", "dmarc": "pass"}


@pytest.mark.parametrize(("results", "failed"), [
    ({"spf": "pass", "dkim": "pass", "dmarc": "fail"}, True),
    ({"spf": "fail", "dkim": "", "dmarc": ""}, True),
    ({"spf": "softfail", "dkim": "none", "dmarc": ""}, True),
    ({"spf": "softfail", "dkim": "pass", "dmarc": ""}, False),  # forwarded mail: DKIM still vouches
    ({"spf": "pass", "dkim": "", "dmarc": "pass"}, False),
    ({"spf": "", "dkim": "", "dmarc": ""}, False),  # no results at all: nothing to judge
    ({"spf": "neutral", "dkim": "fail", "dmarc": "none"}, False),
])
def test_auth_failed(results, failed):
    assert auth_failed(results) is failed


def test_sender_domain():
    assert sender_domain("Mai.NT@THPT-NguyenHue.edu.vn") == "thpt-nguyenhue.edu.vn"
    assert sender_domain("<a@b.vn.>") == "b.vn"
    assert sender_domain("no-at-sign") == ""


@pytest.mark.parametrize(("addr", "expected"), [
    ("mai@thpt-nguyenhue.edu.vn", True),
    ("hs01@hs.thpt-nguyenhue.edu.vn", True),
    ("x@evil-thpt-nguyenhue.edu.vn", False),
    ("x@thpt-nguyenhue.edu.vn.evil.com", False),
    ("x@gmail.com", False),
    ("", False),
])
def test_is_institutional(addr, expected):
    assert is_institutional(addr, SCHOOL) is expected


def test_is_free_mail():
    assert all(is_free_mail(a) for a in ("a@gmail.com", "b@yahoo.com.vn", "c@Outlook.com", "d@icloud.com"))
    assert not is_free_mail("a@thpt-nguyenhue.edu.vn")


def test_institutional_sender_failing_dmarc_is_suspected():
    assert spoof_suspected(load("dmarc_fail_institutional.eml"), SCHOOL)


def test_free_mail_sender_showing_a_school_address_is_suspected():
    assert spoof_suspected(load("spoofed_free_mail_sender.eml"), SCHOOL)


def test_free_mail_with_staff_title_and_foreign_reply_to_is_suspected():
    mail = IncomingMail(message_id="x", subject="x", from_addr="ht.truong@gmail.com", from_name="Hiệu trưởng",
                        reply_to="tro.ly@mail-vn.ru")
    assert spoof_suspected(mail, SCHOOL)
    assert not spoof_suspected(replace(mail, from_name="Nguyễn Văn An"), SCHOOL)  # a parent, say
    assert not spoof_suspected(replace(mail, reply_to=""), SCHOOL)


@pytest.mark.parametrize("name", ["utf8_body_new_account.eml", "reply_all_from_cc_person.eml",
                                  "gmail_vacation_reply.eml", "windows1258_body_password_reset.eml"])
def test_ordinary_senders_are_not_suspected(name):
    assert not spoof_suspected(load(name), SCHOOL)
