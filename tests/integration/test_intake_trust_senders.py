"""Issue #13, who gets an automatic answer and who is trusted: no answer to a null envelope sender, to
the office's own addresses or to machines; a flood from one outside sender writes a bounded audit trail;
a From that hides another address is read as clients read it and never trusted as the institution's."""

from __future__ import annotations

import asyncio
import smtplib
from datetime import timedelta
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import OutgoingMail, Request
from tests.conftest import wait_until
from tests.mails import mail, student_form_mail

pytestmark = pytest.mark.db
FLOOD_LIMIT = 8
RESET = "Đề nghị cấp lại mật khẩu.\nHọ và tên: Nguyễn Văn An\nMã số sinh viên: 20201234\nSố điện thoại: 0912345678\n"


@pytest.fixture
async def app(app_factory: Any, settings_factory: Any) -> App:
    settings = settings_factory(smtpd={"recipients": ["office-bknic@hust.edu.vn", "helpdesk@hust.edu.vn"]},
                                outgoing={"from_address": "no-reply@hust.edu.vn"}, intake={"flood_limit": FLOOD_LIMIT,
                                                                          "trusted_authserv_ids": ["mx.hust.edu.vn"]})
    return await app_factory(settings, inline_analysis=True, clock=FakeClock())  # type: ignore[no-any-return]


async def take(app: App, raw: bytes, **envelope: Any) -> InboundMail:
    """Store and process one mail as the intake does; the mail's ledger row afterwards."""
    stored = await app.ledger.store(raw, source=envelope.pop("source", "smtp"), **envelope)
    await app.pipeline.process(stored.mail_id)
    return await InboundMail.get(id=stored.mail_id)


def send(port: int, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, ["office-bknic@hust.edu.vn"], raw)


async def test_mail_from_the_null_envelope_sender_over_smtp_gets_no_answer(app: App) -> None:
    assert app.smtp is not None
    await app.smtp.start()
    await asyncio.to_thread(send, app.smtp.port, student_form_mail(message_id="<null-path@gmail.com>"), "")
    row = await wait_until(lambda: InboundMail.get_or_none(message_id="null-path@gmail.com"))
    assert row.envelope_from == "<>"
    await app.pipeline.process(row.id)
    assert await Request.filter(message_id="null-path@gmail.com").exists()  # the office still sees it
    assert not await OutgoingMail.all().exists()

    # With a delivery-failure subject, a null sender's mail is a bounce: no request either.
    dsn = mail(subject="Undelivered Mail Returned to Sender", message_id="<dsn@mx.gmail.com>")
    await asyncio.to_thread(send, app.smtp.port, dsn, "")
    row = await wait_until(lambda: InboundMail.get_or_none(message_id="dsn@mx.gmail.com"))
    await app.pipeline.process(row.id)
    assert (await InboundMail.get(id=row.id)).outcome == "bounce"
    assert not await OutgoingMail.all().exists()


@pytest.mark.parametrize("own", ["office-bknic@hust.edu.vn", "no-reply@hust.edu.vn", "helpdesk@hust.edu.vn"])
async def test_mail_from_one_of_the_offices_own_addresses_is_never_answered(app: App, own: str) -> None:
    row = await take(app, student_form_mail(sender=f"Văn phòng <{own}>"), envelope_from=own)
    assert row.outcome == "request_created"
    assert not await OutgoingMail.all().exists()


async def test_a_person_writing_from_outside_still_gets_an_answer(app: App) -> None:
    await take(app, student_form_mail(), envelope_from="an.nv2003@gmail.com")
    assert await OutgoingMail.filter(recipient="an.nv2003@gmail.com", template="received").exists()


async def test_a_flood_from_one_outside_sender_writes_a_bounded_audit_trail(app: App) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    total = FLOOD_LIMIT + 30
    for i in range(total):
        await take(app, student_form_mail(sid=f"2020{i:04d}", message_id=f"<flood-{i}@gmail.com>"))
    assert await Request.all().count() == FLOOD_LIMIT
    parked = await InboundMail.filter(outcome="flood").count()
    assert parked == total - FLOOD_LIMIT and await InboundMail.all().count() == total  # nothing is lost
    assert await AuditEvent.filter(action="mail_flood").count() == 1
    assert await AuditEvent.all().count() <= FLOOD_LIMIT + 1  # not one row per mail
    assert await OutgoingMail.all().count() <= FLOOD_LIMIT

    # Another sender is not held back, and the same sender is taken in again in the next window.
    await take(app, student_form_mail(sid="20209998", sender="binh.tt@gmail.com"))
    clock.advance(timedelta(minutes=app.settings.outgoing.auto_reply_window_minutes + 1))
    await take(app, student_form_mail(sid="20209999", message_id="<after@gmail.com>"))
    assert await Request.filter(message_id="after@gmail.com").exists()
    assert await Request.all().count() == FLOOD_LIMIT + 2


@pytest.mark.parametrize("from_header", [
    "=?utf-8?q?tuyensinh=40hust=2Eedu=2Evn?= <attacker@evil.test>",  # an encoded name that reads as an address
    "tuyensinh@hust.edu.vn, attacker@evil.test",  # two mailboxes
    "attacker@evil.test, tuyensinh@hust.edu.vn",
    '"Phòng Đào tạo <tuyensinh@hust.edu.vn>" <attacker@evil.test>',  # a display name holding an address
    "Phòng Đào tạo <tuyensinh@hust.edu.vn> <attacker@evil.test>",  # two angle addresses
    "tuyensinh@hust.edu.vn <attacker@evil.test>",  # an unquoted address as the name
])
async def test_a_from_hiding_an_institution_address_is_never_trusted(app: App, from_header: str) -> None:
    raw = mail(sender="x@y.z", subject="Cấp lại mật khẩu email", body=RESET).replace(
        b"From: x@y.z", b"From: " + from_header.encode())
    row = await take(app, raw, envelope_from="attacker@evil.test")
    request = await Request.get(id=row.request_id)  # type: ignore[attr-defined]
    assert request.kind == "password_reset"
    assert "spoof_suspected" in request.flags or "from_untrusted" in request.flags
    assert "external_sender" in request.flags  # a reset from outside: the office verifies the person first
    # No answer goes to the institution address the sender only named.
    assert not await OutgoingMail.filter(recipient="tuyensinh@hust.edu.vn").exists()


async def test_a_forged_school_address_does_not_lift_the_flood_limit(app: App) -> None:
    """Only a school sender proved by DMARC/DKIM may send more than the limit; a bare From line proves nothing."""
    for i in range(FLOOD_LIMIT + 5):
        await take(app, student_form_mail(sid=f"2021{i:04d}", message_id=f"<forged-{i}@x>",
                                          sender="phong.dt@hust.edu.vn"))
    assert await Request.filter(sender="phong.dt@hust.edu.vn").count() == FLOOD_LIMIT
    passed = {"Authentication-Results": "mx.hust.edu.vn; dkim=pass header.d=hust.edu.vn; dmarc=pass"}
    for i in range(FLOOD_LIMIT + 5):
        await take(app, student_form_mail(sid=f"2022{i:04d}", message_id=f"<signed-{i}@x>",
                                          sender="phong.ctsv@hust.edu.vn", headers=passed))
    assert await Request.filter(sender="phong.ctsv@hust.edu.vn").count() == FLOOD_LIMIT + 5
