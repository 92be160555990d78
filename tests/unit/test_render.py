"""Outgoing mail templates and headers: what the requester reads, and what keeps robots from answering."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import jinja2
import pytest

from edudesk.core.config import load_settings
from edudesk.core.intake.domain import Kind
from edudesk.mailer.outbox import to_mime
from edudesk.mailer.render import LANGUAGES, TEMPLATES, build_message, message_id_for, render_mail

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "edudesk" / "templates" / "email"
OFFICE = "office-bknic@hust.edu.vn"
OFFICE_NAME = "Văn phòng Trung tâm Mạng Thông tin"
REQUESTER_MSGID = "<CAF=abc123@mail.gmail.com>"


def context(**changes: Any) -> dict[str, Any]:
    """A realistic context: one student with a problem, one without, a request-level warning."""
    ctx: dict[str, Any] = {
        "number": 12,
        "kind": "new_account",
        "requester_name": "Nguyễn Thị Hoà",
        "persons": [
            {
                "full_name": "Trần Văn Đức",
                "student_id": "20201234",
                "staff_id": "",
                "proposed_address": "duc.tranvan@sis.hust.edu.vn",
                "problems": [
                    {"field": "mobile", "code": "mobile_missing", "message": "Thiếu số điện thoại di động"}
                ],
            },
            {
                "full_name": "Lê Thị Ngọc Ánh",
                "student_id": "20205678",
                "staff_id": "",
                "proposed_address": "anh.lethingoc@sis.hust.edu.vn",
                "problems": [],
            },
        ],
        "problems": [
            {"field": "from", "code": "external_sender", "message": "Thư được gửi từ địa chỉ ngoài trường"}
        ],
        # 08:00 UTC is 15:00 in Hà Nội
        "deadline": datetime(2026, 9, 1, 8, 0, tzinfo=UTC),
        "institution_name": "Trường Đại học Bách khoa Hà Nội",
        "office_name": OFFICE_NAME,
        "office_address": OFFICE,
        "reason": "Mã số sinh viên 20201234 không có trong danh sách sinh viên của trường",
        "address": "duc.tranvan@sis.hust.edu.vn",
        "password_link": "https://edudesk.hust.edu.vn/p/Zk3q9w",
        # a sender confirmation (confirm_sender): where the request came from, and the one-time link
        "sender_address": "hoa.nt@hust.edu.vn", "received": datetime(2026, 8, 31, 1, 0, tzinfo=UTC),
        "expires": datetime(2026, 9, 3, 1, 0, tzinfo=UTC), "link": "https://edudesk.hust.edu.vn/confirm/Qm4t7x",
        "limit_mb": 25,
        # the monthly BM03 (report_monthly)
        "month": "11/2026", "period_start": "01/11/2026", "period_end": "30/11/2026", "report_form": "BM03",
        "files": ["BM03_2026-11.xlsx", "BM03_2026-11.pdf"],
    }
    ctx.update(changes)
    return ctx


def render(template: str, lang: str = "vi", **changes: Any) -> tuple[str, str, str]:
    return render_mail(template, lang, context(**changes), templates_dir=TEMPLATES_DIR)


# mails to staff belong to no request
STAFF_TEMPLATES = ("channel_failing", "link_code", "chat_notice", "login_link", "report_monthly")
REQUEST_TEMPLATES = [t for t in TEMPLATES if t not in STAFF_TEMPLATES]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("template", REQUEST_TEMPLATES)
def test_every_template_renders_with_the_request_token_greeting_and_signature(
    template: str, lang: str
) -> None:
    subject, text, html = render(template, lang)
    assert subject.startswith("[YC-12] ")
    assert "\n" not in subject
    for body in (text, html):
        assert "Nguyễn Thị Hoà" in body
        assert OFFICE_NAME in body
        assert OFFICE in body
    assert html.lstrip().startswith("<!DOCTYPE html>")
    assert f'<html lang="{lang}">' in html
    assert "{{" not in text and "{%" not in text


@pytest.mark.parametrize(("lang", "channel", "label", "start", "words"), [
    ("vi", "imap", "IMAP", "[Cảnh báo] Kênh nhận thư IMAP đang lỗi (4 lần liên tiếp)", "không có thư nào bị mất"),
    ("en", "imap", "IMAP", "[Alert] The IMAP mail intake is failing (4 times in a row)", "no mail is lost"),
    ("vi", "outgoing", "gửi thư (SMTP)", "[Cảnh báo] Kênh gửi thư (SMTP) đang lỗi (4 lần liên tiếp)",
     "sẽ gửi bù toàn bộ thư tồn đọng"),
    ("en", "outgoing", "outgoing mail (SMTP)", "[Alert] Sending mail is failing (4 times in a row)",
     "will send the whole backlog"),
])
def test_channel_alert_names_the_channel_the_failures_and_the_error(lang: str, channel: str, label: str, start: str,
                                                                    words: str) -> None:
    subject, text, html = render("channel_failing", lang, number=None, requester_name="", channel=channel,
                                 channel_label=label, failures=4, error="[AUTHENTICATIONFAILED] Authentication failed.")
    assert subject == start
    for body in (text, html):
        assert "[AUTHENTICATIONFAILED] Authentication failed." in body
        assert words in body


def test_vietnamese_is_the_default_and_unknown_languages_fall_back_to_it() -> None:
    subject, text, _ = render("received", "fr")
    assert subject == "[YC-12] Đã tiếp nhận yêu cầu cấp tài khoản"
    assert text.startswith("Kính gửi Anh/Chị Nguyễn Thị Hoà,")
    assert "Trân trọng,\n" + OFFICE_NAME in text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_acknowledgement_lists_people_addresses_problems_and_deadline_in_vietnam_time(lang: str) -> None:
    _, text, html = render("received", lang)
    for body in (text, html):
        assert "Trần Văn Đức" in body and "20201234" in body
        assert "duc.tranvan@sis.hust.edu.vn" in body
        assert "anh.lethingoc@sis.hust.edu.vn" in body
        assert "Thiếu số điện thoại di động" in body
        assert "Thư được gửi từ địa chỉ ngoài trường" in body
        assert "01/09/2026 15:00" in body
        assert "[YC-12]" in body  # the reply hint names the token to keep
    assert ("trong vòng 24 giờ" if lang == "vi" else "within 24 hours") in text


def test_acknowledgement_without_people_says_nothing_was_read() -> None:
    _, text, _ = render("received", persons=[], problems=[])
    assert "chưa đọc được thông tin người đăng ký nào" in text


def test_need_info_lists_only_people_with_problems_under_their_form_row() -> None:
    persons = context()["persons"][::-1]  # the person with a problem is now row 2
    _, text, html = render("need_info", persons=persons)
    assert "2. Trần Văn Đức, mã số sinh viên 20201234\n   - Thiếu số điện thoại di động" in text
    assert "Lê Thị Ngọc Ánh" not in text and "Lê Thị Ngọc Ánh" not in html
    assert "trả lời trực tiếp thư này" in text


def test_rejection_gives_the_reason() -> None:
    subject, text, html = render("rejected")
    assert "chưa được chấp thuận" in subject
    assert "Lý do: Mã số sinh viên 20201234 không có trong danh sách" in text
    assert "không có trong danh sách" in html


@pytest.mark.parametrize("lang", LANGUAGES)
def test_done_mail_carries_the_one_time_link_and_never_a_password_by_default(lang: str) -> None:
    _, text, html = render("done", lang)
    for body in (text, html):
        assert "duc.tranvan@sis.hust.edu.vn" in body
        assert "https://edudesk.hust.edu.vn/p/Zk3q9w" in body
        assert "72" in body
        assert ("Mật khẩu tạm thời" if lang == "vi" else "Temporary password") not in body
    assert ("đổi mật khẩu ngay trong lần đăng nhập đầu tiên" if lang == "vi" else "first sign in") in text


def test_done_mail_includes_the_password_only_when_configured_to() -> None:
    _, text, html = render("done", password="Hx7-pq2m-Lz", password_link=None)
    assert "Mật khẩu tạm thời: Hx7-pq2m-Lz" in text
    assert "Hx7-pq2m-Lz" in html
    assert "Liên kết nhận mật khẩu" not in text


def test_done_mail_for_a_unit_lists_every_account() -> None:
    accounts = [
        {
            "full_name": "Trần Văn Đức",
            "address": "duc.tranvan@sis.hust.edu.vn",
            "password_link": "https://x/1",
        },
        {
            "full_name": "Lê Thị Ngọc Ánh",
            "address": "anh.lethingoc@sis.hust.edu.vn",
            "password_link": "https://x/2",
        },
    ]
    _, text, _ = render("done", kind="bulk_new_accounts", accounts=accounts)
    assert "Họ và tên: Lê Thị Ngọc Ánh\nĐịa chỉ thư: anh.lethingoc@sis.hust.edu.vn" in text
    assert "https://x/1" in text and "https://x/2" in text


def test_password_reset_and_deletion_have_their_own_wording() -> None:
    subject, text, _ = render("done", kind="password_reset")
    assert subject == "[YC-12] Đã cấp lại mật khẩu"
    subject, text, _ = render("done", kind="delete_accounts")
    assert subject == "[YC-12] Đã xoá tài khoản"
    assert "Liên kết nhận mật khẩu" not in text


def test_too_large_and_unreadable_work_before_a_request_number_exists() -> None:
    ctx = context(filename="Phiếu đăng ký.docx")
    del ctx["number"]
    subject, text, _ = render_mail("too_large", "vi", ctx, templates_dir=TEMPLATES_DIR)
    assert "[YC-" not in subject and "25 MB" in subject and "dưới 25 MB" in text
    subject, text, _ = render_mail("unreadable", "vi", ctx, templates_dir=TEMPLATES_DIR)
    assert "[YC-" not in subject
    assert 'tệp đính kèm "Phiếu đăng ký.docx"' in text
    assert "BM01" in text and "BM02" in text and "Số điện thoại di động:" in text


def test_html_escapes_what_the_requester_wrote_and_text_keeps_it() -> None:
    _, text, html = render("received", requester_name="<b>Hoà</b>")
    assert "&lt;b&gt;Hoà&lt;/b&gt;" in html and "<b>Hoà</b>" not in html
    assert "Kính gửi Anh/Chị <b>Hoà</b>," in text


@pytest.mark.parametrize(
    "template, missing",
    [("received", "deadline"), ("rejected", "reason"), ("done", "password_link"), ("received", "number")],
)
def test_a_missing_variable_fails_instead_of_leaving_a_gap(template: str, missing: str) -> None:
    ctx = context()
    del ctx[missing]
    with pytest.raises(jinja2.UndefinedError):
        render_mail(template, "vi", ctx, templates_dir=TEMPLATES_DIR)


def test_kind_may_be_the_core_enum_and_deadline_iso_text_from_a_job_payload() -> None:
    subject, text, _ = render("received", kind=Kind.PASSWORD_RESET, deadline="2026-09-01T08:00:00+00:00")
    assert subject == "[YC-12] Đã tiếp nhận yêu cầu cấp lại mật khẩu"
    assert "01/09/2026 15:00" in text


def test_unknown_template_is_refused() -> None:
    with pytest.raises(ValueError):
        render("recieved")


def build(**kwargs: Any) -> Any:
    args: dict[str, Any] = {
        "lang": "vi",
        "context": context(),
        "templates_dir": TEMPLATES_DIR,
        "sender": OFFICE,
        "sender_name": OFFICE_NAME,
        "to": "hoa.nguyenthi@hust.edu.vn",
        "message_id": message_id_for("mail:received:12", "hust.edu.vn"),
        "in_reply_to": REQUESTER_MSGID,
        "references": ("<root@mail.gmail.com>",),
        "date": datetime(2026, 9, 1, 8, 0, tzinfo=UTC),
    }
    args.update(kwargs)
    return build_message(args.pop("template", "received"), **args)


def test_message_threads_under_the_requesters_mail_with_a_deterministic_id() -> None:
    msg = build()
    assert msg.message_id == "<edudesk.mail-received-12@hust.edu.vn>"
    assert msg.message_id == build().message_id
    assert msg.in_reply_to == REQUESTER_MSGID
    assert msg.references == ("<root@mail.gmail.com>", REQUESTER_MSGID)
    assert msg.to == ("hoa.nguyenthi@hust.edu.vn",)
    assert msg.subject.startswith("[YC-12] ")


def test_message_always_carries_loop_prevention_and_request_headers() -> None:
    headers = build().headers
    assert headers["Auto-Submitted"] == "auto-generated"
    assert headers["X-Auto-Response-Suppress"] == "All"
    assert headers["X-Edudesk-Request"] == "12"
    assert "Precedence" not in headers  # "bulk" gets mail dropped by some servers
    ctx = context()
    del ctx["number"]
    assert build(template="too_large", context=ctx).headers["X-Edudesk-Request"] == "none"


def test_mime_encodes_the_vietnamese_sender_and_subject_and_round_trips() -> None:
    raw = to_mime(build())
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # RFC 2047 on the wire, nothing raw for old relays
    assert b"=?utf-8?" in head
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed["From"].addresses[0].display_name == OFFICE_NAME
    assert parsed["From"].addresses[0].addr_spec == OFFICE
    assert str(parsed["Subject"]) == "[YC-12] Đã tiếp nhận yêu cầu cấp tài khoản"
    assert parsed["Message-ID"] == "<edudesk.mail-received-12@hust.edu.vn>"
    assert parsed["In-Reply-To"] == REQUESTER_MSGID
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Date"] == "Tue, 01 Sep 2026 08:00:00 +0000"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    assert text is not None and "Trần Văn Đức" in text.get_content()
    assert html is not None and "Trần Văn Đức" in html.get_content()


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_staff_mails_carry_the_code_or_the_notice(lang: str) -> None:
    subject, text, html = render("link_code", lang, number=None, requester_name="Lê Văn Phòng", code="048213",
                                 surface="Zalo", minutes=10)
    assert "048213" in subject and "/lienket 048213" in text and "/lienket 048213" in html
    assert "Lê Văn Phòng" in text and "10" in text
    subject, text, html = render("chat_notice", lang, number=None, requester_name="Lê Văn Phòng", surface="Zalo",
                                 subject="Mời Thầy/Cô ký học bạ <10A1>", text="Lớp <10A1> & 3 học bạ",
                                 link="https://hd.vn/records")
    assert subject.endswith("Mời Thầy/Cô ký học bạ <10A1>") and "Lớp <10A1> & 3 học bạ" in text
    assert "Lớp &lt;10A1&gt; &amp; 3 học bạ" in html and "https://hd.vn/records" in html


# The words themselves, as a Vietnamese school's staff read them.

def _settings(**institution: Any) -> Any:
    return load_settings(None, overrides={"institution": institution,
                                          "sla": {"check_hours": 12.0, "provision_hours": 36.0}})


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_subjects_are_short_without_product_name_or_emoji(template: str, lang: str) -> None:
    subject, _, _ = render(template, lang, channel="imap", channel_label="IMAP", failures=4, error="x", code="123456",
                           surface="Telegram", minutes=10, text="⏰ YC-12 đã quá hạn\nDòng hai", link="",
                           subject="⏰ YC-12 đã quá hạn")
    assert "edudesk" not in subject.lower()
    assert not re.search("[\U00010000-\U0010FFFF\u23F0\u2705\u274C\uFE0F]", subject), subject
    assert len(subject) <= 70, subject


@pytest.mark.parametrize("template", REQUEST_TEMPLATES)
def test_a_units_list_addresses_the_unit_not_anh_chi(template: str) -> None:
    subject, text, html = render(template, kind="bulk_new_accounts", requester_name="Phòng Công tác sinh viên",
                                 accounts=[{"full_name": "Trần Văn Đức", "address": "duc@x", "password_link": "l"}])
    for body in (text, html):
        assert "Kính gửi: Phòng Công tác sinh viên" in body
        assert "Anh/Chị" not in body
    assert text.startswith("Kính gửi: Phòng Công tác sinh viên\n")


def test_a_person_stays_anh_chi_and_a_teacher_is_thay_co() -> None:
    _, text, _ = render("received")
    assert text.startswith("Kính gửi Anh/Chị Nguyễn Thị Hoà,")
    _, text, _ = render("chat_notice", requester_name="Lê Thị Mai", number=None, link="", surface="",
                        subject="Học bạ chờ ký", text="Còn 3 học bạ chờ Thầy/Cô ký.", addressee="teacher")
    assert text.startswith("Kính gửi Thầy/Cô Lê Thị Mai,") and "Anh/Chị" not in text


def test_acknowledgement_promises_each_steps_own_hours_from_the_settings() -> None:
    _, text, html = render_mail("received", "vi", context(), templates_dir=TEMPLATES_DIR, settings=_settings())
    for body in (text, html):
        assert "trong vòng 12 giờ" in body.replace("<strong>", "").replace("</strong>", "")
        assert "trong vòng 36 giờ" in body.replace("<strong>", "").replace("</strong>", "")
    assert "24 giờ" not in text


@pytest.mark.parametrize("template", ["need_info", "rejected", "too_large", "unreadable"])
def test_form_names_come_from_the_institution_settings(template: str) -> None:
    ctx = context(filename="phieu.docx")
    settings = _settings(staff_form="QT-CB01", student_form="QT-SV02", list_form="DS-05")
    _, text, html = render_mail(template, "vi", ctx, templates_dir=TEMPLATES_DIR, settings=settings)
    for body in (text, html):
        assert "QT-CB01" in body and "QT-SV02" in body and "BM01" not in body and "BM02" not in body
    ctx = context(kind="bulk_new_accounts", requester_name="Phòng Đào tạo")
    _, text, _ = render_mail(template, "en", ctx, templates_dir=TEMPLATES_DIR, settings=settings)
    assert "DS-05" in text and "BM-CNTT31" not in text


def test_list_file_without_passwords_says_it_does_not_contain_them() -> None:
    accounts = [{"full_name": "A", "address": "a@x", "password_link": "https://x/1"},
                {"full_name": "B", "address": "b@x", "password_link": "https://x/1"}]
    _, text, html = render("done", kind="bulk_new_accounts", accounts=accounts, accounts_sheet=True)
    for body in (text, html):
        assert "tệp này không chứa mật khẩu" in body and "không có mật khẩu" not in body


def test_plain_text_keeps_its_line_breaks() -> None:
    _, text, _ = render("done")
    assert "Liên kết nhận mật khẩu: https://edudesk.hust.edu.vn/p/Zk3q9w\n\nVì lý do bảo mật" in text
    _, text, _ = render("done", kind="delete_accounts", accounts=[{"full_name": "A", "address": "a@x"}])
    assert "Các tài khoản sau đã được xóa:\n- A: a@x\n" in text
    _, text, _ = render("chat_notice", number=None, link="https://x/r/1", surface="Zalo", subject="s",
                        text="Dòng một\nDòng hai")
    assert "Dòng một\nDòng hai\n\nMở: https://x/r/1\n\n(Thư này" in text
    assert "gửi được tới Anh/Chị.)\n\nTrân trọng," in text
