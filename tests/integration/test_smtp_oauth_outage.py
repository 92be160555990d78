"""A refused login at the outgoing relay (an OAuth2 permission withdrawn) is an outage, not a fault of the mail:
every waiting mail stays queued, staff are told once (chat notice to the technical staff, and a mail that waits
with the rest), and the mails go out once the permission is back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from edudesk.core.intake.models import ChannelHealth
from edudesk.core.jobs import RetryLater
from edudesk.core.models import Job
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import OutgoingMail
from edudesk.mailer.oauth import MicrosoftTokenSource
from edudesk.mailer.outbox import SmtpMailSender
from tests.fakes.oauth_tokens import CLIENT_ID, CLIENT_SECRET, MAILBOX, TENANT, FakeOAuth
from tests.oauth_fixtures import fake_fixture  # noqa: F401 - the fixtures
from tests.servers.smtp_oauth import OAuthSmtpServer

pytestmark = pytest.mark.db



@pytest.fixture(name="server")
def server_fixture(fake: FakeOAuth) -> Iterator[OAuthSmtpServer]:
    """The submission server, checking tokens for SMTP with the fake."""
    with OAuthSmtpServer(fake.introspection_url("smtp")) as server:
        yield server


async def _send_job(app: Any, outgoing_id: int) -> Job:
    jobs = [j for j in await Job.filter(kind="send_mail") if j.payload.get("outgoing_id") == outgoing_id]
    assert len(jobs) == 1
    return jobs[0]


async def test_a_withdrawn_send_permission_keeps_the_mail_waiting_alerts_once_and_sends_after_the_fix(
        app_factory: Any, settings_factory: Any, fake: FakeOAuth, server: OAuthSmtpServer) -> None:
    tokens = MicrosoftTokenSource(MAILBOX, tenant_id=TENANT, client_id=CLIENT_ID, secret=CLIENT_SECRET,
                                  login_url=fake.url, verify=str(fake.ca_path))
    relay = SmtpMailSender(server.host, server.port, starttls=True, tls_context=server.client_tls_context(),
                           tokens=tokens, mechanism="xoauth2")
    settings = settings_factory(smtpd={"enabled": False}, imap={"alert_after_failures": 2},
                                outgoing={"alerts_to": ["kythuat@school.test"]})
    app = await app_factory(settings, inline_analysis=True, mail_sender=relay)
    async with in_transaction() as conn:
        await queue_mail(conn, app.queue, app.clock, settings, key="outage:1", template="chat_notice",
                         recipient="an.nguyenvan@sis.school.test",
                         context={**mail_context(settings), "subject": "Kết quả YC-1", "text": "Đã cấp.",
                                  "link": "", "surface": ""})
    mail = await OutgoingMail.get(key="outage:1")
    job = await _send_job(app, mail.id)
    fake.withdraw_consent("SMTP.SendAsApp")

    for _ in range(3):  # three tries while the permission is missing
        with pytest.raises(RetryLater):
            await app.delivery(job)
    mail = await OutgoingMail.get(key="outage:1")
    assert mail.state in ("pending", "sending") and server.received() == []  # waiting, never dead
    health = await ChannelHealth.get(channel="outgoing")
    assert (health.ok, health.failures, health.alerted) == (False, 3, True)
    notices = [j.payload for j in await Job.filter(kind="chat_notice")]
    assert len(notices) == 1 and notices[0]["audience"] == "technical"  # one alert for the outage
    assert "SMTP.SendAsApp" in notices[0]["text"] and "kênh gửi thư (SMTP) đang lỗi" in notices[0]["text"]
    assert not any(t in notices[0]["text"] for t in fake.tokens)
    alert = await OutgoingMail.get(template="channel_failing")
    assert alert.recipient == "kythuat@school.test"

    fake.restore()
    await app.delivery(job)
    await server.wait_for(lambda m: m.subject == "Kết quả YC-1")
    assert (await OutgoingMail.get(key="outage:1")).state == "sent"
    health = await ChannelHealth.get(channel="outgoing")
    assert (health.ok, health.failures, health.alerted) == (True, 0, False)
