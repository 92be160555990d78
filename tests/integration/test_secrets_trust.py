"""A one-time password link exists in clear only in the mail that carries it: never in a job, a table or a log.

Real service (job worker, SQLite or PostgreSQL, local directory), real SMTP relay (aiosmtpd) and, for the
first attempt of the retry test, a relay port nobody listens on.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from tortoise.connection import get_connection

from edudesk.app import App
from edudesk.core.accounts.models import PasswordLink, PendingSecret
from edudesk.core.accounts.passwordlinks import LinkInfo, peek_password_link
from edudesk.core.db import dialect
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import MailSender, OutgoingMessage
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from edudesk.mailer.outbox import SmtpMailSender
from tests.conftest import wait_until
from tests.servers.smtp_sink import ReceivedMail, SmtpSink, free_port

pytestmark = pytest.mark.db
OFFICE = Actor("tg:1", "Lê Văn Phòng", frozenset({Role.OFFICE}))
TECH = Actor("tg:2", "Trần Kỹ Thuật", frozenset({Role.TECHNICAL}))
LINK = re.compile(r"(https?://\S+/p/([A-Za-z0-9_\-]{20,}))")


async def dump_database() -> str:
    """Every row of every table, as text (what a copy of the database shows)."""
    conn = get_connection("default")
    if dialect() == "sqlite":
        sql = "SELECT name AS t FROM sqlite_master WHERE type = 'table'"
    else:
        sql = "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'public'"
    tables = [r["t"] for r in await conn.execute_query_dict(sql)]
    assert {"job", "outgoing_mail", "audit_event", "pending_secret", "password_link"} <= set(tables)
    lines = [f"{t}: {row!r}" for t in tables for row in await conn.execute_query_dict(f'SELECT * FROM "{t}"')]
    return "\n".join(lines)


def database_files(app: App) -> bytes:
    """The raw bytes of the SQLite files (main, WAL): deleted rows linger in free pages (empty on PostgreSQL)."""
    url = app.settings.database_url
    if not url.startswith("sqlite://"):
        return b""
    path = Path(url.removeprefix("sqlite://"))
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


class DumpingSender:
    """A relay in front of another: copies the database the moment a mail is handed over, then passes it on."""

    def __init__(self, relay: MailSender) -> None:
        self.relay = relay
        self.dumps: list[str] = []

    async def send(self, message: OutgoingMessage) -> None:
        """Copy the database, then send."""
        self.dumps.append(await dump_database())
        await self.relay.send(message)


async def provisioned(app: App, people: int = 1) -> Request:
    """A request approved and handed to provisioning; the worker has not run yet."""
    now = app.clock.now()
    request = await Request.create(kind="new_account" if people == 1 else "bulk_new_accounts", population="student",
                                   state="received", sender="k62@hust.edu.vn", sender_name="Văn phòng Khoa CNTT",
                                   subject="Cấp tài khoản", received_at=now, deadline=now + timedelta(hours=24),
                                   updated_at=now)
    await RequestPerson.bulk_create([
        RequestPerson(request=request, row=i, person_id=f"2025{i:04d}", full_name=f"Phạm Thị Hương {i}",
                      proposed_address=f"huong.pt{i:04d}@sis.hust.edu.vn",
                      data={"student_id": f"2025{i:04d}", "full_name": f"Phạm Thị Hương {i}"}) for i in range(people)])
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    return request


def link_in(mail: ReceivedMail) -> tuple[str, str]:
    """The link URL and its token from a result mail's text."""
    body = mail.message.get_body(("plain",))
    found = LINK.search(body.get_content() if body is not None else "")  # type: ignore[union-attr]
    assert found, "the result mail carries no password link"
    return found.group(1), found.group(2)


async def test_the_link_is_in_clear_only_in_the_mail(app_factory: Any, settings_factory: Any,
                                                    smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture) -> None:
    sender = DumpingSender(SmtpMailSender(smtp_sink.host, smtp_sink.port, timeout=5))
    app = await app_factory(settings_factory(), inline_analysis=True, mail_sender=sender)
    with caplog.at_level(logging.DEBUG):
        request = await provisioned(app, people=2)
        await app.worker.drain()
    mail = await smtp_sink.wait_for(lambda m: f"YC-{request.id}" in m.subject)
    url, token = link_in(mail)
    assert isinstance(await peek_password_link(token, app.clock), LinkInfo)  # the link in the mail works

    # At the moment the mail was handed over, the database held the link only sealed.
    [at_send] = [d for d in sender.dumps if "link:" in d]
    assert token not in at_send and url not in at_send
    sealed = [s for s in await PendingSecret.all() if s.key.startswith("link:")]
    assert sealed == []  # sent: the sealed copy is gone too
    assert await OutgoingMail.filter(request_id=request.id, template="done", state="sent").count() == 1
    assert await PasswordLink.filter(request_id=request.id).count() == 1

    # After: no table, no byte of the database files, no log line has it.
    after = await dump_database()
    assert "send_mail" in after and "password_link" in after
    for secret in (token, url):
        assert secret not in after
        assert secret.encode() not in database_files(app)
        assert not [r for r in caplog.records if secret in r.getMessage()]


async def test_a_retry_after_a_failed_send_still_finds_the_sealed_link(app_factory: Any, settings_factory: Any,
                                                                      smtp_sink: SmtpSink) -> None:
    app = await app_factory(settings_factory(), inline_analysis=True,
                            mail_sender=SmtpMailSender("127.0.0.1", free_port(), timeout=2))
    request = await provisioned(app)
    await app.worker.drain()
    done = await OutgoingMail.get(request_id=request.id, template="done")
    assert done.state != "sent"  # the relay was not there: retried later
    [sealed] = [s for s in await PendingSecret.filter(request_id=request.id) if s.key.startswith("link:")]
    plain = app.box.open(sealed.sealed)
    assert plain.encode() not in database_files(app) and plain not in await dump_database()

    app.delivery.sender = SmtpMailSender(smtp_sink.host, smtp_sink.port, timeout=5)

    async def sent() -> bool:
        await app.worker.drain()
        return (await OutgoingMail.get(id=done.id)).state == "sent"

    await wait_until(sent, timeout=10)
    mail = await smtp_sink.wait_for(lambda m: f"YC-{request.id}" in m.subject)
    url, _token = link_in(mail)
    assert url == plain
    assert not await PendingSecret.filter(key=sealed.key).exists()
