"""The service watching an OAuth2 mailbox (Microsoft 365 stand-ins: the fake token service and Dovecot
taking its tokens): when the app's authorisation is revoked, staff get one alert mail saying what to fix,
and the channel recovers by itself once it is fixed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edudesk.core.intake.models import ChannelHealth, InboundMail
from edudesk.core.models import AuditEvent
from tests.conftest import wait_until
from tests.fakes.oauth_tokens import CLIENT_ID, CLIENT_SECRET, MAILBOX, TENANT, FakeOAuth
from tests.integration.test_imap import make_mail
from tests.oauth_fixtures import dovecot_oauth_fixture, fake_fixture  # noqa: F401 - the fixtures
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp_sink import SmtpSink

pytestmark = pytest.mark.db




async def test_a_revoked_app_secret_alerts_staff_once_in_words_and_the_mailbox_recovers_when_fixed(
        app_factory: Any, settings_factory: Any, fake: FakeOAuth, dovecot_oauth: DovecotServer,
        smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUDESK_MAIL_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_path))  # the token service's CA
    settings = settings_factory(
        imap={"enabled": True, "host": dovecot_oauth.host, "port": dovecot_oauth.port, "ssl": False,
              "username": MAILBOX, "auth": "oauth2", "backlog_since": "all", "poll_interval": 0.2,
              "backoff_initial": 0.05, "backoff_max": 0.1, "alert_after_failures": 3},
        mail_oauth={"tenant_id": TENANT, "client_id": CLIENT_ID, "login_url": fake.url},
        smtpd={"enabled": False},
        outgoing={"transport": "smtp", "smtp_host": smtp_sink.host, "smtp_port": smtp_sink.port,
                  "alerts_to": ["kythuat@school.test"]},
    )
    fake.rotate_secret()  # an administrator replaced the secret edudesk holds
    app = await app_factory(settings, inline_analysis=True)
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    try:
        alert = await smtp_sink.wait_for(lambda m: "kythuat@school.test" in m.rcpt_tos, timeout=30)
        await wait_until(lambda: _failures_at_least(6), timeout=30)  # it keeps trying after the alert
        fake.restore()  # the secret in edudesk's environment is valid again
        dovecot_oauth.deliver(make_mail("Sau khi sửa quyền"))
        await wait_until(_recovered, timeout=30)
        await wait_until(lambda: InboundMail.filter(source="imap").exists(), timeout=30)
    finally:
        app.worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    part = alert.message.get_body(("plain",))
    assert part is not None
    body = part.get_content()
    assert "Kênh nhận thư IMAP đang lỗi" in alert.subject
    assert "AADSTS7000215" in body and "Khoá bí mật (client secret) của ứng dụng" in body
    assert "Value (không phải Secret ID)" in body
    assert CLIENT_SECRET not in body and fake.client_secret not in body
    assert len([m for m in smtp_sink.received() if "kythuat@school.test" in m.rcpt_tos]) == 1  # once per outage
    assert await AuditEvent.filter(action="channel_failing").count() == 1
    assert await AuditEvent.filter(action="channel_recovered").count() == 1


async def _failures_at_least(n: int) -> bool:
    row = await ChannelHealth.get_or_none(channel="imap")
    return row is not None and row.failures >= n


async def _recovered() -> bool:
    row = await ChannelHealth.get_or_none(channel="imap")
    return row is not None and row.ok
