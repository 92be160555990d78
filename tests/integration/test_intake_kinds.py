"""Every way people really write, through the real intake pipeline and database: HTML tables and forwarded
forms become requests (the forwarder is the requester), a question becomes a `question` request with its own
acknowledgement, spam is closed silently, and a reply with only the missing field completes its request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.staff import Actor, Role
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from tests.mails import student_form_mail

pytestmark = pytest.mark.db
CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "mail"
EXPECTED: dict[str, dict[str, Any]] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
OFFICE = Actor("tg:1", "Văn phòng", frozenset({Role.OFFICE}))
SELECTION = [
    "html_gmail_table_label_value.eml", "html_only_list_header_row.eml", "html_outlook_list_windows1258.eml",
    "forward_gmail_en.eml", "forward_outlook_vi.eml", "forward_rfc822_attachment_outlook.eml",
    "question_wifi_gmail.eml", "question_lms_outlook_html_only.eml", "question_forgot_wifi_password.eml",
    "dmarc_quarantine_is_not_spam.eml", "form_with_gaps_is_no_question.eml",
    "spam_flag_spamassassin.eml", "spam_status_rspamd.eml", "spam_dmarc_reject_unknown_domain.eml",
    "spam_flag_no_is_a_form.eml",
]


async def _process(app: Any, raw: bytes) -> InboundMail:
    stored = await app.ledger.store(raw, source="cli")
    await app.worker.drain()
    return await InboundMail.get(id=stored.mail_id)


@pytest.fixture
async def app(app_factory: Any) -> Any:
    return await app_factory(inline_analysis=True)


@pytest.mark.parametrize("name", SELECTION)
async def test_each_kind_of_mail_ends_as_expected(app: Any, name: str) -> None:
    want = EXPECTED[name]
    row = await _process(app, (CORPUS / name).read_bytes())
    assert row.outcome == want["outcome"]
    finished = await AuditEvent.get(mail_id=row.id, action=f"mail_{row.outcome}")
    answers = await OutgoingMail.all().values_list("template", flat=True)
    assert "unreadable" not in answers, "no 'we could not read your form' for these mails"
    if want["outcome"] == "spam":
        assert row.state == "ignored" and finished.detail["filter"] == "spam"
        assert answers == [], "no backscatter"
        assert not await Request.exists()
        assert not await Job.filter(kind="refresh_cards").exists(), "no card"
        return
    request = await Request.get(id=row.request_id)  # type: ignore[attr-defined]
    assert request.kind == want["kind"]
    assert request.sender == want["requester"]
    persons = await RequestPerson.filter(request_id=request.id).order_by("row")
    assert [p.full_name for p in persons] == [p["full_name"] for p in want["persons"]]
    assert answers == ["question" if want["kind"] == "question" else "received"]
    assert await Job.filter(kind="refresh_cards").exists(), "the office gets a card"
    forwarded = [p["message"] for p in request.problems if p["code"] == "forwarded"]
    assert forwarded == ([f"Phiếu nằm trong thư được chuyển tiếp; người viết thư gốc: {want['forwarded_from']}."]
                         if want.get("forwarded_from") else [])


async def test_dmarc_reject_from_a_domain_that_wrote_before_is_not_dropped(app: Any) -> None:
    raw = (CORPUS / "spam_dmarc_reject_unknown_domain.eml").read_bytes()
    await _process(app, student_form_mail(sender="Cán bộ <canbo@bank-vn-secure.com>",
                                          message_id="<earlier@bank-vn-secure.com>"))
    row = await _process(app, raw)
    assert row.outcome == "request_created"  # the sender checks flag it; the office decides


async def test_a_question_can_be_answered_and_closed_with_the_existing_actions(app: Any) -> None:
    row = await _process(app, (CORPUS / "question_wifi_gmail.eml").read_bytes())
    request = await Request.get(id=row.request_id)  # type: ignore[attr-defined]
    await app.services.act(request.id, "ask_info", OFFICE, reason="Mật khẩu Wi-Fi tầng 2 dán ở phòng giáo viên.")
    await app.worker.drain()
    await app.services.act(request.id, "reject", OFFICE, reason="Đã trả lời, đóng câu hỏi.")
    request = await Request.get(id=request.id)
    assert request.state == "rejected"
    assert await OutgoingMail.filter(request_id=request.id).order_by("id").values_list("template", flat=True) == [
        "question", "need_info", "rejected"]


async def test_a_reply_with_only_the_missing_phone_completes_its_request(app: Any) -> None:
    await _process(app, student_form_mail(sender="Lê Văn Bình <binh.lv2009@gmail.com>", name="Lê Văn Bình",
                                          sid="HS2024001", phone="", message_id="<first@gmail.com>"))
    request = await Request.get()
    (person,) = await RequestPerson.filter(request_id=request.id)
    assert "missing_mobile" in {p["code"] for p in person.problems}
    await app.services.act(request.id, "ask_info", OFFICE, reason="Thiếu số điện thoại di động.")
    await app.worker.drain()
    asked = await OutgoingMail.get(request_id=request.id, template="need_info")
    # the reply answers our need-info mail: its In-Reply-To names that mail's Message-ID
    raw = (CORPUS / "reply_partial_phone_gmail_vi.eml").read_bytes().replace(
        b"yc1-needinfo@edudesk", asked.message_id.strip("<>").encode())
    row = await _process(app, raw)
    assert row.outcome == "reply" and row.request_id == request.id  # type: ignore[attr-defined]
    request = await Request.get(id=request.id)
    assert request.state == "received", "back to the office, checked again"
    (person,) = await RequestPerson.filter(request_id=request.id)
    assert person.data["mobile"] == "+84912345678"
    assert person.full_name == "Lê Văn Bình" and person.data["student_id"] == "HS2024001"
    assert "missing_mobile" not in {p["code"] for p in person.problems}
    reply = await AuditEvent.get(mail_id=row.id, action="mail_reply")
    assert reply.detail["fields_updated"] == ["mobile"] and reply.detail["updated_form"] is True
    assert "0912" not in json.dumps(reply.detail), "which fields changed, never the values"
    templates = await OutgoingMail.filter(request_id=request.id).values_list("template", flat=True)
    assert "unreadable" not in templates


async def test_a_partial_reply_that_names_no_row_of_a_list_changes_nobody(app: Any) -> None:
    row = await _process(app, (CORPUS / "html_only_list_header_row.eml").read_bytes())
    request = await Request.get(id=row.request_id)  # type: ignore[attr-defined]
    before = [p.data for p in await RequestPerson.filter(request_id=request.id).order_by("row")]
    ack = await OutgoingMail.get(request_id=request.id, template="received")
    row = await _process(app, _only(f"Re: [YC-{request.id}]", "giaovu@thpt-nguyenhue.edu.vn", ack.message_id,
                                    "Mã học sinh: HS9999999\nSĐT: 0912 345 678\n"))
    assert row.outcome == "reply"
    assert [p.data for p in await RequestPerson.filter(request_id=request.id).order_by("row")] == before


def _only(subject: str, sender: str, in_reply_to: str, body: str) -> bytes:
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "cntt@thpt-nguyenhue.edu.vn", subject
    m["Message-ID"], m["In-Reply-To"] = "<partial-list@gmail.com>", f"<{in_reply_to.strip('<>')}>"
    m.set_content(body)
    return m.as_bytes()
