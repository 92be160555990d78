"""Reply threading: Message-ID keys and request numbers in subjects."""

from __future__ import annotations

from pathlib import Path

import pytest

from edudesk.core.intake.domain import IncomingMail
from edudesk.core.intake.threading import request_number_from_subject, thread_keys
from edudesk.mailer.parse import parse_mail

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mail"


def test_thread_keys_put_in_reply_to_first_and_drop_duplicates():
    mail = IncomingMail(message_id="new@x", subject="Re: x", from_addr="a@b.vn", in_reply_to="b@x",
                        references=("a@x", "b@x", "<c@x>", ""))
    assert thread_keys(mail) == ("b@x", "a@x", "c@x")


def test_thread_keys_of_a_parsed_reply():
    mail = parse_mail((FIXTURES / "reply_with_request_number.eml").read_bytes())
    assert thread_keys(mail) == ("yc7-ack@edudesk", "CAGx8f=Qm1+ZkLwA@mail.gmail.com")


def test_a_new_mail_has_no_thread_keys():
    assert thread_keys(IncomingMail(message_id="n@x", subject="x", from_addr="a@b.vn")) == ()


@pytest.mark.parametrize(("subject", "number"), [
    ("Re: [YC-123] Đã tiếp nhận yêu cầu", 123),
    ("RE: Fwd: [yc-0042] Đã tiếp nhận", 42),
    ("[YC 7]", 7),
    ("Bổ sung YC-123", 123),
    ("Bổ sung YC 123", 123),
    ("Bổ sung yc123", 123),
    ("Hỏi lại #123", 123),
    ("Về yêu cầu số 123", 123),
    ("Ve yeu cau so 123", 123),
    ("YÊU CẦU SỐ: 9 đã xong chưa", 9),
    ("Yêu cầu #15 bổ sung", 15),
])
def test_request_number_forms(subject, number):
    assert request_number_from_subject(subject) == number


@pytest.mark.parametrize("subject", [
    "Sinh viên 20201234 xin cấp lại mật khẩu",
    "Sinh vien 20201234 xin cap lai mat khau nam 2024",
    "Năm học 2024-2025",
    "Lớp 10A1 cần 35 tài khoản",
    "Yêu cầu 5 tài khoản mới",
    "Mã GV0123",
    "BYC-12",
    "[YC-0]",
    "",
])
def test_subject_request_number_not_confused_with_student_id(subject):
    assert request_number_from_subject(subject) is None


def test_bracketed_number_wins_over_other_forms():
    assert request_number_from_subject("Re: #5 [YC-77] Đã tiếp nhận") == 77
