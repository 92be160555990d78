"""Mail delivered into a real Dovecot mailbox, watched by the whole service -> checked request -> ack in the sink."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.intake.domain import Population
from edudesk.core.intake.models import ChannelHealth, InboundMail
from edudesk.core.models import AuditEvent
from edudesk.core.people.registry import import_registry
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.mailer.imap import DONE_KEYWORD
from tests.conftest import wait_until
from tests.mails import registry_xlsx, student_form_mail
from tests.servers.dovecot import DEFAULT_PASSWORD, DEFAULT_USER, DovecotServer
from tests.servers.smtp_sink import SmtpSink, free_port

pytestmark = pytest.mark.db


async def test_mail_in_the_imap_mailbox_becomes_a_checked_request_and_is_acknowledged_once(
        app_factory: Any, settings_factory: Any, dovecot: DovecotServer, smtp_sink: SmtpSink,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUDESK_TEST_IMAP_PASSWORD", DEFAULT_PASSWORD)
    settings = settings_factory(
        imap={"enabled": True, "host": dovecot.host, "port": dovecot.port, "ssl": False, "username": DEFAULT_USER,
              "password_env": "EDUDESK_TEST_IMAP_PASSWORD", "backlog_since": "all", "poll_interval": 0.2,
              "backoff_initial": 0.05, "backoff_max": 0.3},
        smtpd={"enabled": False},
        outgoing={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port},
    )
    app = await app_factory(settings, inline_analysis=True)
    await import_registry(registry_xlsx(tmp_path / "sv.xlsx", [
        ("20201234", "Nguyễn Văn An", "05/03/2003", "CNTT-01 K65", ""),
    ]), Population.STUDENT, settings, app.clock)
    # One mail is there before edudesk starts (the backlog), one already opened in a mail client.
    dovecot.deliver(student_form_mail(message_id="<imap-1@gmail.com>"))
    dovecot.deliver_seen(student_form_mail(name="Nguyen Van An", dob="06/03/2003", sid="20201234",
                                           message_id="<imap-2@gmail.com>"))
    supervisor = app.supervisor()
    task = asyncio.get_running_loop().create_task(supervisor.run())  # noqa: TID251 - test harness
    try:
        await wait_until(lambda: _requests(2), timeout=30)
        # A third arrives while the watcher idles.
        dovecot.deliver(student_form_mail(sid="20209999", phone="", message_id="<imap-3@gmail.com>"))
        await wait_until(lambda: _requests(3), timeout=30)
        for mid in ("<imap-1@gmail.com>", "<imap-2@gmail.com>", "<imap-3@gmail.com>"):
            await smtp_sink.wait_for(lambda m, mid=mid: m.message.get("In-Reply-To", "") == mid, timeout=30)
    finally:
        app.worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    first = await Request.get(message_id="imap-1@gmail.com")
    assert (first.kind, first.population) == ("new_account", "student")
    p1 = await RequestPerson.get(request_id=first.id)
    assert p1.proposed_address == "an.nguyenvan@sis.hust.edu.vn"
    assert not [p for p in p1.problems if p["severity"] == "error"]

    second = await RequestPerson.get(request__message_id="imap-2@gmail.com")
    codes = {p["code"] for p in second.problems}
    assert {"name_diacritics", "dob_mismatch"} <= codes
    assert second.proposed_address == "an.nguyenvan2@sis.hust.edu.vn"  # the first request holds .nguyenvan

    third = await RequestPerson.get(request__message_id="imap-3@gmail.com")
    assert {"not_in_registry", "missing_mobile"} <= {p["code"] for p in third.problems}

    assert await InboundMail.filter(source="imap").count() == 3
    assert await AuditEvent.filter(action="mail_request_created").count() == 3
    assert len(smtp_sink.received()) == 3  # one acknowledgement each, nothing more
    with dovecot.connect() as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    # Each mail is marked processed on the server (after the commit), the one read in a client too.
    assert len(flags) == 3
    assert all(DONE_KEYWORD in fl for fl in flags.values()), flags


async def _requests(n: int) -> bool:
    return bool(await Request.all().count() == n)


async def test_a_mailbox_that_keeps_failing_is_reported_to_staff_by_mail_once(
        app_factory: Any, settings_factory: Any, smtp_sink: SmtpSink) -> None:
    settings = settings_factory(
        imap={"enabled": True, "host": "127.0.0.1", "port": free_port(), "ssl": False, "username": DEFAULT_USER,
              "backlog_since": "all", "backoff_initial": 0.05, "backoff_max": 0.1, "alert_after_failures": 3},
        smtpd={"enabled": False},
        outgoing={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port,
                  "alerts_to": ["kythuat@hust.edu.vn"]},
    )
    app = await app_factory(settings, inline_analysis=True)
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    try:
        alert = await smtp_sink.wait_for(lambda m: "kythuat@hust.edu.vn" in m.rcpt_tos, timeout=30)
        await wait_until(lambda: _failures_at_least(6), timeout=30)  # it keeps retrying after the alert
    finally:
        app.worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "Kênh nhận thư IMAP đang lỗi" in alert.subject
    assert "không có thư nào bị mất" in alert.message.get_body(("plain",)).get_content()
    assert len(smtp_sink.received()) == 1  # one alert per outage, not one per failed attempt
    assert await AuditEvent.filter(action="channel_failing").count() == 1


async def _failures_at_least(n: int) -> bool:
    row = await ChannelHealth.get_or_none(channel="imap")
    return row is not None and row.failures >= n
