"""Loop and bounce detection: machine-written mail never becomes a request and never gets an answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edudesk.core.intake.domain import IncomingMail, Kind
from edudesk.core.intake.loops import classify_automatic, may_auto_reply
from edudesk.mailer.parse import parse_mail

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mail"
OWN = ("cntt@thpt-nguyenhue.edu.vn",)


def load(name: str) -> IncomingMail:
    return parse_mail((FIXTURES / name).read_bytes())


def person(**changes) -> IncomingMail:
    base = IncomingMail(message_id="m@x", subject="Đề nghị cấp tài khoản", from_addr="mai@truong.edu.vn")
    return replace(base, **changes)


def test_dsn_is_bounce():
    mail = load("dsn_bounce_multipart_report.eml")
    assert classify_automatic(mail, OWN) is Kind.BOUNCE
    assert not may_auto_reply(mail)


def test_mailer_daemon_sender_is_bounce_even_without_a_report():
    mail = person(from_addr="mailer-daemon@googlemail.com", subject="Delivery Status Notification (Failure)")
    assert classify_automatic(mail, OWN) is Kind.BOUNCE
    assert classify_automatic(person(from_addr="postmaster@truong.edu.vn"), OWN) is Kind.BOUNCE


def test_x_failed_recipients_is_bounce():
    mail = person(headers={"x-failed-recipients": "ai@gmial.com"})
    assert classify_automatic(mail, OWN) is Kind.BOUNCE


def test_null_return_path_with_dsn_subject_is_bounce():
    mail = person(return_path="", subject="Không gửi được thư: Đề nghị cấp tài khoản")
    assert classify_automatic(mail, OWN) is Kind.BOUNCE


def test_null_return_path_with_an_ordinary_subject_is_not_a_bounce_but_gets_no_answer():
    mail = person(return_path="")
    assert classify_automatic(mail, OWN) is None
    assert not may_auto_reply(mail)


def test_out_of_office_is_auto_reply():
    mail = load("exchange_out_of_office.eml")
    assert classify_automatic(mail, OWN) is Kind.AUTO_REPLY
    assert not may_auto_reply(mail)


def test_gmail_vacation_reply_is_auto_reply():
    assert classify_automatic(load("gmail_vacation_reply.eml"), OWN) is Kind.AUTO_REPLY


def test_mailing_list_mail_is_auto_reply():
    assert classify_automatic(load("mailing_list_message.eml"), OWN) is Kind.AUTO_REPLY


def test_read_receipt_is_auto_reply():
    assert classify_automatic(load("read_receipt_mdn.eml"), OWN) is Kind.AUTO_REPLY


@pytest.mark.parametrize("header", [
    {"auto-submitted": "auto-replied"}, {"auto-submitted": "auto-generated; owner-email=x@y"},
    {"precedence": "bulk"}, {"precedence": "Junk"}, {"precedence": "list"}, {"precedence": "auto_reply"},
    {"x-auto-response-suppress": "All"}, {"x-autoreply": "yes"}, {"x-autorespond": ""},
    {"list-id": "<gv.truong.edu.vn>"}, {"list-unsubscribe": "<mailto:u@x>"},
])
def test_automatic_headers_mark_auto_reply(header):
    assert classify_automatic(person(headers=header), OWN) is Kind.AUTO_REPLY


def test_auto_submitted_no_is_a_person():
    assert classify_automatic(person(headers={"auto-submitted": "no"}), OWN) is None


@pytest.mark.parametrize("subject", [
    "Auto: Đề nghị cấp tài khoản", "Automatic reply: [YC-3] Đã tiếp nhận", "Out of Office: back on Monday",
    "Trả lời tự động: Đã tiếp nhận yêu cầu", "TRẢ LỜI TỰ ĐỘNG", "Vắng mặt: nghỉ phép", "Autoreply",
])
def test_auto_reply_subjects(subject):
    assert classify_automatic(person(subject=subject), OWN) is Kind.AUTO_REPLY


def test_vang_mat_inside_a_request_subject_is_a_person():
    assert classify_automatic(person(subject="Đơn xin vắng mặt và đề nghị cấp lại mật khẩu"), OWN) is None


def test_our_own_acknowledgement_coming_back_is_recognised():
    mail = load("own_acknowledgement_returned.eml")
    assert classify_automatic(mail, OWN) is Kind.AUTO_REPLY
    assert not may_auto_reply(mail)


def test_our_request_header_alone_marks_our_own_mail():
    mail = person(from_addr="cntt@thpt-nguyenhue.edu.vn", headers={"x-edudesk-request": "7"})
    assert classify_automatic(mail, OWN) is Kind.AUTO_REPLY


def test_staff_writing_from_the_office_address_by_hand_is_a_person():
    assert classify_automatic(person(from_addr="cntt@thpt-nguyenhue.edu.vn"), OWN) is None


@pytest.mark.parametrize("name", ["utf8_body_new_account.eml", "reply_with_request_number.eml",
                                  "reply_all_from_cc_person.eml", "windows1258_body_password_reset.eml",
                                  "smtp_received_no_return_path.eml", "html_only_body.eml"])
def test_people_are_not_automatic(name):
    mail = load(name)
    assert classify_automatic(mail, OWN) is None
    assert may_auto_reply(mail)


def test_absent_return_path_still_allows_reply():
    mail = load("smtp_received_no_return_path.eml")
    assert mail.return_path is None
    assert may_auto_reply(mail)


def test_null_return_path_forbids_reply():
    assert not may_auto_reply(person(return_path=""))
    assert may_auto_reply(person(return_path="mai@truong.edu.vn"))


def test_no_sender_address_forbids_reply():
    assert not may_auto_reply(person(from_addr=""))
