"""Issue #13, acknowledgements: a mail quoting someone's ID gets an answer that says only what it wrote.

The requests arrive over the real SMTP listener; the answers are read from the real maildir outbox.
"""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.accounts.models import Account
from edudesk.core.intake.domain import Population
from edudesk.core.models import Job
from edudesk.core.people.registry import import_registry
from edudesk.core.requests.models import OutgoingMail, Request
from edudesk.core.text import fold
from tests.conftest import wait_until
from tests.mails import mail, registry_xlsx, student_form_mail

pytestmark = pytest.mark.db


def send(port: int, raw: bytes, sender: str) -> None:
    """Send raw bytes over SMTP as a mail client would."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, ["office-bknic@hust.edu.vn"], raw)


async def _idle() -> bool:
    return not await Job.filter(state__in=["pending", "running"]).exists()


class Office:
    """The service with its listener, its worker and the default maildir outbox."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.outbox = app.settings.path(app.settings.outgoing.maildir)

    async def send(self, raw: bytes, sender: str) -> Request:
        """Send a mail and wait until its request exists and its answer is written."""
        assert self.app.smtp is not None
        before = await Request.all().count()
        await asyncio.to_thread(send, self.app.smtp.port, raw, sender)
        await wait_until(lambda: _more_than(before))
        await wait_until(_idle)
        request = await Request.all().order_by("-id").first()
        assert request is not None
        return request

    async def answer_to(self, request: Request) -> EmailMessage:
        """The acknowledgement of a request, parsed from its maildir file."""
        out = await OutgoingMail.get(key=f"ack:{request.id}")
        assert out.state == "sent"
        for path in (self.outbox / "new").iterdir():
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            if out.message_id in str(message["Message-ID"]):
                assert isinstance(message, EmailMessage)
                return message
        raise AssertionError(f"no maildir file for {out.message_id}")


async def _more_than(n: int) -> bool:
    return bool(await Request.all().count() > n)


def everything_in(message: EmailMessage) -> str:
    """Subject, text and HTML of a mail, folded (no diacritics, lower case) so no spelling escapes."""
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    assert text is not None and html is not None
    return fold(" ".join([str(message["Subject"]), text.get_content(), html.get_content()]))


@pytest.fixture
async def office(app_factory: Any, settings_factory: Any, tmp_path: Path) -> AsyncIterator[Office]:
    app = await app_factory(settings_factory(), inline_analysis=True)
    await import_registry(
        registry_xlsx(tmp_path / "sv.xlsx", [
            ("20205678", "Trần Thị Bình", "12/11/2002", "KTMT-02 K65", "binh.tranthi@sis.hust.edu.vn"),
            ("20201234", "Phạm Minh Khôi", "05/03/2003", "CNTT-01 K65", ""),
        ]),
        Population.STUDENT, app.settings, app.clock,
    )
    await Account.create(address="khoi.phamminh@sis.hust.edu.vn", population="student", person_id="20201234",
                         full_name="Phạm Minh Khôi", created_at=app.clock.now())
    assert app.smtp is not None
    await app.smtp.start()
    task = asyncio.get_running_loop().create_task(app.worker.run())  # noqa: TID251 - test harness
    yield Office(app)
    app.worker.stop()
    await asyncio.wait_for(task, 10)


REGISTRY_SECRETS = ("tran thi binh", "12/11/2002", "binh.tranthi", "ktmt-02")


async def test_answer_to_a_wrong_name_and_date_shows_what_was_written_not_what_the_registry_says(
        office: Office) -> None:
    # Someone else already asked for Bình's account: that request is open.
    first = await office.send(student_form_mail(name="Trần Thị Bình", sid="20205678", dob="12/11/2002",
                                                klass="KTMT-02 K65", sender="Bình <binh.tt@gmail.com>"),
                              "binh.tt@gmail.com")
    # A stranger quotes her student ID with a made-up name, date of birth and class.
    probe = await office.send(student_form_mail(name="Lê Văn Cường", sid="20205678", dob="01/01/2000",
                                                klass="CNTT-09 K60", sender="Cường <probe@yahoo.com>"),
                              "probe@yahoo.com")
    # The office still sees every finding.
    problems = {p["code"] for p in (await probe.persons.all())[0].problems}  # type: ignore[attr-defined]
    assert {"name_mismatch", "dob_mismatch", "class_mismatch", "duplicate_request", "has_account"} <= problems

    body = everything_in(await office.answer_to(probe))
    assert "le van cuong" in body and "20205678" in body  # what the sender wrote
    for secret in REGISTRY_SECRETS:
        assert secret not in body
    assert f"yc-{first.id}" not in body  # another open request's number
    assert "sis.hust.edu.vn" not in body  # no address the registry or the account table holds or implies
    assert "doi chieu cac thong tin tren voi ho so" in body  # and that the office will check it


async def test_answer_to_a_password_reset_without_a_name_does_not_name_the_account(office: Office) -> None:
    raw = mail(sender="Khôi <khoi.pm.2003@gmail.com>", subject="Cấp lại mật khẩu email",
               body="Em quên mật khẩu email.\nMã số sinh viên: 20201234\nSố điện thoại: 0912345678\n")
    request = await office.send(raw, "khoi.pm.2003@gmail.com")
    assert request.kind == "password_reset"
    person = (await request.persons.all())[0]  # type: ignore[attr-defined]
    assert person.proposed_address == "khoi.phamminh@sis.hust.edu.vn"  # the office's card has it
    body = everything_in(await office.answer_to(request))
    assert "20201234" in body
    for secret in ("khoi.phamminh", "pham minh khoi", "05/03/2003", "cntt-01"):
        assert secret not in body


async def test_english_answer_says_the_office_will_check_and_hides_the_registry(
        app_factory: Any, settings_factory: Any, tmp_path: Path) -> None:
    app = await app_factory(settings_factory(general={"language": "en"}), inline_analysis=True)
    await import_registry(registry_xlsx(tmp_path / "sv.xlsx", [
        ("20205678", "Trần Thị Bình", "12/11/2002", "KTMT-02 K65", "binh.tranthi@sis.hust.edu.vn")]),
        Population.STUDENT, app.settings, app.clock)
    assert app.smtp is not None
    await app.smtp.start()
    task = asyncio.get_running_loop().create_task(app.worker.run())  # noqa: TID251 - test harness
    try:
        office = Office(app)
        request = await office.send(student_form_mail(name="Lê Văn Cường", sid="20205678", dob="01/01/2000",
                                                      sender="probe@yahoo.com"), "probe@yahoo.com")
        body = everything_in(await office.answer_to(request))
        for secret in REGISTRY_SECRETS:
            assert secret not in body
        assert "we will check the details above against the school's records" in body
    finally:
        app.worker.stop()
        await asyncio.wait_for(task, 10)
