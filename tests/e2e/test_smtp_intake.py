"""Mail in over SMTP to the real listener -> checked request -> acknowledgement in a real SMTP sink."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.accounts.models import Account
from edudesk.core.intake.domain import Population
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.registry import import_registry
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from tests.conftest import wait_until
from tests.mails import DOCX, filled_bm02, mail, registry_xlsx, student_form_mail, zip_bomb_docx
from tests.servers.smtp_sink import SmtpSink

pytestmark = pytest.mark.db
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mail"


def send(port: int, raw: bytes, sender: str = "an.nv2003@gmail.com",
         rcpt: str = "office-bknic@hust.edu.vn") -> Any:
    """Send raw bytes over SMTP as a mail client would."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.sendmail(sender, [rcpt], raw)


class Running:
    """An App with its listener and job worker running in the test's loop."""

    def __init__(self, app: App, sink: SmtpSink) -> None:
        self.app, self.sink = app, sink

    @property
    def port(self) -> int:
        assert self.app.smtp is not None
        return self.app.smtp.port

    async def send(self, raw: bytes, **kwargs: Any) -> Any:
        return await asyncio.to_thread(send, self.port, raw, **kwargs)

    async def settle(self) -> None:
        """Wait until no job is pending or running."""
        await wait_until(_no_jobs)


async def _no_jobs() -> bool:
    return not await Job.filter(state__in=["pending", "running"]).exists()


@pytest.fixture
async def running(app_factory: Any, settings_factory: Any, smtp_sink: SmtpSink,
                  tmp_path: Path) -> AsyncIterator[Running]:
    settings = settings_factory(outgoing={"transport": "smtp", "smtp_host": "127.0.0.1",
                                          "smtp_port": smtp_sink.port})
    app = await app_factory(settings, inline_analysis=False)
    await import_registry(
        registry_xlsx(tmp_path / "sv.xlsx", [
            ("20201234", "Nguyễn Văn An", "05/03/2003", "CNTT-01 K65", ""),
            ("20205678", "Trần Thị Bình", "12/11/2002", "KTMT-02 K65", "binh.tranthi@sis.hust.edu.vn"),
        ]),
        Population.STUDENT, settings, app.clock,
    )
    await Account.create(address="an.nguyenvan@sis.hust.edu.vn", population="student", person_id="19990001",
                         full_name="Nguyễn Văn An", created_at=app.clock.now())
    assert app.smtp is not None
    await app.smtp.start()
    task = asyncio.get_running_loop().create_task(app.worker.run())  # noqa: TID251 - test harness
    yield Running(app, smtp_sink)
    app.worker.stop()
    await asyncio.wait_for(task, 10)


async def test_form_mail_becomes_checked_request_and_acknowledgement_reaches_the_sink(running: Running) -> None:
    await running.send(student_form_mail(message_id="<form-1@gmail.com>"))
    request = await wait_until(lambda: Request.first())
    assert (request.kind, request.population, request.state) == ("new_account", "student", "received")
    assert request.deadline is not None and (request.deadline - request.received_at).total_seconds() == 24 * 3600
    person = await RequestPerson.get(request_id=request.id)
    assert person.data["student_id"] == "20201234"
    assert person.data["date_of_birth"] == "2003-03-05"
    assert person.data["mobile"] == "+84912345678"
    # The name's usual address is taken by an existing account: the next free suffix is proposed.
    assert person.proposed_address == "an.nguyenvan2@sis.hust.edu.vn"
    assert person.problems == []  # registry agrees on name, date of birth and class
    ack = await running.sink.wait_for(lambda m: "[YC-" in m.subject, timeout=15)
    assert f"[YC-{request.id}]" in ack.subject
    assert ack.rcpt_tos == ("an.nv2003@gmail.com",)
    assert ack.message["Auto-Submitted"] == "auto-generated"
    assert ack.message["In-Reply-To"] == "<form-1@gmail.com>"
    body = ack.message.get_body(("plain",)).get_content()
    assert "Nguyễn Văn An" in body and "20201234" in body
    # The proposed address is for the office to approve; its number shows who else has an account.
    assert "an.nguyenvan" not in body
    await wait_until(lambda: AuditEvent.filter(request_id=request.id, action="mail_sent").exists())
    assert await AuditEvent.filter(request_id=request.id, action="mail_request_created").exists()


async def test_same_message_id_twice_makes_one_request_and_one_acknowledgement(running: Running) -> None:
    raw = student_form_mail(message_id="<twice@gmail.com>")
    await running.send(raw)
    await running.send(raw)  # a client retrying after a lost 250
    await wait_until(lambda: OutgoingMail.filter(state="sent").exists())
    await running.settle()
    assert await InboundMail.all().count() == 1
    assert await Request.all().count() == 1
    assert len(running.sink.received()) == 1


async def test_registry_mismatch_and_diacritics_only_difference_are_found(running: Running) -> None:
    await running.send(student_form_mail(name="Tran Thi Binh", sid="20205678", dob="12/11/2003",
                                         klass="KTMT-02 K65"))
    request = await wait_until(lambda: Request.first())
    person = await RequestPerson.get(request_id=request.id)
    codes = {p["code"]: p for p in person.problems}
    assert codes["name_diacritics"]["severity"] == "warning"
    assert "Trần Thị Bình" in codes["name_diacritics"]["message"]
    assert "12/11/2002" in codes["dob_mismatch"]["message"]
    assert codes["has_account"]["severity"] == "error"  # the registry knows her institutional address


async def test_unknown_student_and_missing_mobile_are_reported(running: Running) -> None:
    await running.send(student_form_mail(sid="20209999", phone=""))
    request = await wait_until(lambda: Request.first())
    person = await RequestPerson.get(request_id=request.id)
    assert {"not_in_registry", "missing_mobile"} <= {p["code"] for p in person.problems}


async def test_reply_all_from_cc_person_threads_into_the_request(running: Running) -> None:
    await running.send(student_form_mail(message_id="<orig@gmail.com>"))
    ack = await running.sink.wait_for(lambda m: "[YC-" in m.subject, timeout=15)
    reply = mail(sender="Cô Lan <lan.pham@hust.edu.vn>", subject="Re: " + ack.subject,
                 body="Tôi xác nhận sinh viên An thuộc lớp tôi.",
                 headers={"In-Reply-To": ack.message["Message-ID"],
                          "References": f"<orig@gmail.com> {ack.message['Message-ID']}"})
    await running.send(reply, sender="lan.pham@hust.edu.vn")
    await wait_until(lambda: InboundMail.filter(outcome="reply").exists())
    assert await Request.all().count() == 1
    mails = await InboundMail.filter(request_id=(await Request.first()).id).count()  # type: ignore[union-attr]
    assert mails == 2


async def test_auto_reply_to_our_acknowledgement_is_ignored_and_never_answered(running: Running) -> None:
    await running.send(student_form_mail())
    ack = await running.sink.wait_for(lambda m: "[YC-" in m.subject, timeout=15)
    ooo = mail(subject="Automatic reply: " + ack.subject, body="Tôi đang đi công tác.",
               headers={"Auto-Submitted": "auto-replied", "In-Reply-To": ack.message["Message-ID"]})
    await running.send(ooo)
    # Our own acknowledgement bounced back into the office mailbox is recognised too.
    await running.send(ack.raw, sender="office-bknic@hust.edu.vn")
    await wait_until(lambda: _count_is(InboundMail.filter(outcome="auto_reply"), 2))
    await running.settle()
    assert len(running.sink.received()) == 1
    assert await AuditEvent.filter(action="mail_auto_reply").count() == 2


async def _count_is(query: Any, n: int) -> bool:
    return bool(await query.count() == n)


async def test_automatic_answers_to_one_sender_are_capped(running: Running) -> None:
    for i in range(5):
        await running.send(student_form_mail(sid=f"2020{i:04d}", message_id=f"<burst-{i}@gmail.com>"))
    await wait_until(lambda: _count_is(Request.all(), 5))
    await running.settle()
    assert len(running.sink.received()) == 3  # auto_reply_limit
    assert await AuditEvent.filter(action="auto_reply_suppressed").count() == 2


async def test_thirty_megabyte_mail_is_refused_with_552_and_the_service_keeps_running(running: Running) -> None:
    big = mail(attachments=[("scan.pdf", "application/pdf", b"%PDF-1.4\n" + b"x" * (30 * 2**20))])
    with pytest.raises(smtplib.SMTPException) as refused:
        await running.send(big)
    assert "552" in str(refused.value)
    await running.send(student_form_mail())
    await wait_until(lambda: Request.first())


async def test_zip_bomb_named_docx_is_refused_with_a_clear_answer(running: Running) -> None:
    await running.send(mail(subject="Phiếu đăng ký", attachments=[("phieu-dang-ky.docx", DOCX, zip_bomb_docx())]))
    request = await wait_until(lambda: Request.first())
    assert any(p["code"] == "hostile_attachment" for p in request.problems)
    ack = await running.sink.wait_for(lambda m: "[YC-" in m.subject, timeout=15)
    assert "phieu-dang-ky.docx" in ack.message.get_body(("plain",)).get_content()


async def test_filled_bm02_docx_attachment_is_read(running: Running) -> None:
    form = filled_bm02({"Họ và tên": "Nguyễn Văn An", "Mã số sinh viên": "20201234", "Ngày sinh": "05/03/2003",
                        "Lớp": "CNTT-01 K65", "Số điện thoại": "0912.345.678"})
    await running.send(mail(subject="Gửi phiếu BM02", attachments=[("BM02.docx", DOCX, form)]))
    request = await wait_until(lambda: Request.first())
    assert request.source == "docx"
    person = await RequestPerson.get(request_id=request.id)
    assert (person.data["student_id"], person.data["date_of_birth"]) == ("20201234", date(2003, 3, 5).isoformat())
    assert person.data["mobile"] == "+84912345678"


@pytest.mark.parametrize("name", ["broken_mime_missing_boundary.eml", "broken_mime_bad_base64.eml",
                                  "broken_mime_garbage_content_type.eml"])
async def test_broken_mime_gets_an_outcome_and_an_audit_entry(running: Running, name: str) -> None:
    await running.send((FIXTURES / name).read_bytes())
    row = await wait_until(lambda: InboundMail.filter(state__not="pending").first())
    assert row.outcome in ("request_created", "auto_reply", "bounce")
    assert await AuditEvent.filter(mail_id=row.id).exists()
    await running.send(student_form_mail(message_id="<after-broken@gmail.com>"))
    await wait_until(lambda: Request.filter(message_id="after-broken@gmail.com").exists())


async def test_spoofed_free_mail_password_reset_is_flagged(running: Running) -> None:
    raw = mail(sender="Phòng Đào tạo <daotao.hust.edu.vn@gmail.com>", subject="Cấp lại mật khẩu email",
               body="Đề nghị cấp lại mật khẩu.\nHọ và tên: Nguyễn Văn An\nMã số sinh viên: 20201234\n"
                    "Số điện thoại: 0912345678\n")
    await running.send(raw)
    request = await wait_until(lambda: Request.first())
    assert request.kind == "password_reset"
    assert "external_sender" in request.flags


async def test_dmarc_failure_on_a_reset_is_flagged(running: Running) -> None:
    raw = mail(sender="Nguyễn Văn An <an.nguyenvan@sis.hust.edu.vn>", subject="Cấp lại mật khẩu",
               body="Em quên mật khẩu.\nHọ và tên: Nguyễn Văn An\nMã số sinh viên: 20201234\nSĐT: 0912345678\n",
               headers={"Authentication-Results": "mx.hust.edu.vn; spf=fail smtp.mailfrom=sis.hust.edu.vn; "
                                                  "dkim=none; dmarc=fail header.from=sis.hust.edu.vn"})
    await running.send(raw, sender="an.nguyenvan@sis.hust.edu.vn")
    request = await wait_until(lambda: Request.first())
    assert "auth_failed" in request.flags
    assert request.auth_results["dmarc"] == "fail"


def _many_parts(message_id: str, parts: int) -> bytes:
    """A multipart mail of `parts` tiny attachments, written out directly (the email package's builder
    takes ~0.7 ms a part, the parser ~0.06 ms)."""
    head = mail(message_id=message_id).split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    head = [h for h in head if not h.lower().startswith((b"content-", b"mime-version"))]
    part = (b"--b0\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
            b"filename=\"scan%d.bin\"\r\n\r\nxxxxxxxxxx\r\n")
    body = b"".join(part % i for i in range(parts))
    return (b"\r\n".join(head) + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
            + b"--b0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nK\xc3\xadnh g\xe1\xbb\xadi\r\n"
            + body + b"--b0--\r\n")


async def test_mail_that_takes_too_long_is_quarantined_and_does_not_block_the_next(
        app_factory: Any, settings_factory: Any, smtp_sink: SmtpSink) -> None:
    settings = settings_factory(intake={"parse_timeout_seconds": 0.3},
                                outgoing={"transport": "smtp", "smtp_port": smtp_sink.port})
    app = await app_factory(settings)
    assert app.smtp is not None
    await app.smtp.start()
    task = asyncio.get_running_loop().create_task(app.worker.run())  # noqa: TID251 - test harness
    try:
        # 40,000 small parts: ~2.3 s of parsing on this kind of machine, so 0.3 s is missed on any machine.
        # (Four 4 MB PDFs took only 0.6-0.8 s, and a faster CI machine parsed them within the limit.)
        slow = _many_parts("<slow@gmail.com>", 40_000)
        await asyncio.to_thread(send, app.smtp.port, slow)
        await asyncio.to_thread(send, app.smtp.port, student_form_mail(message_id="<next@gmail.com>"))
        await wait_until(lambda: Request.filter(message_id="next@gmail.com").exists(), timeout=30)
        row = await wait_until(lambda: InboundMail.filter(message_id="slow@gmail.com", state="quarantined").first(),
                               timeout=30)
        assert row.outcome == "timeout"
        assert await AuditEvent.filter(mail_id=row.id, action="mail_timeout").exists()
        answer = await smtp_sink.wait_for(lambda m: "an.nv2003@gmail.com" in m.rcpt_tos
                                          and "slow@gmail.com" in (m.message["In-Reply-To"] or ""), timeout=15)
        assert answer.message["Auto-Submitted"] == "auto-generated"
    finally:
        app.worker.stop()
        await asyncio.wait_for(task, 10)



async def test_backlog_over_the_limit_holds_then_defers_senders_and_loses_nothing(
        app_factory: Any, settings_factory: Any, smtp_sink: SmtpSink) -> None:
    settings = settings_factory(smtpd={"max_backlog": 2, "backlog_wait_seconds": 1.0},
                                outgoing={"transport": "smtp", "smtp_host": "127.0.0.1",
                                          "smtp_port": smtp_sink.port})
    app = await app_factory(settings, inline_analysis=True)
    assert app.smtp is not None
    await app.smtp.start()
    port = app.smtp.port
    # No worker yet: stored mail waits unprocessed, as it does when processing falls behind.
    for i in range(2):
        await asyncio.to_thread(send, port, student_form_mail(sid=f"2020{i:04d}", message_id=f"<bp-{i}@gmail.com>"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(smtplib.SMTPSenderRefused) as deferred:
        await asyncio.to_thread(send, port, student_form_mail(sid="20200002", message_id="<bp-2@gmail.com>"))
    assert deferred.value.smtp_code == 451  # temporary: the sender's server keeps the mail and retries
    assert loop.time() - started >= 0.9  # held first, not refused at once
    assert await InboundMail.all().count() == 2

    # A held sender is let in as soon as the backlog drains.
    task = loop.create_task(app.worker.run())  # noqa: TID251 - test harness
    try:
        await asyncio.to_thread(send, port, student_form_mail(sid="20200002", message_id="<bp-2@gmail.com>"))
        await wait_until(lambda: _count_is(Request.all(), 3))
    finally:
        app.worker.stop()
        await asyncio.wait_for(task, 10)
