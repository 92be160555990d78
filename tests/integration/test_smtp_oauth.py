"""SmtpMailSender with OAuth2 against a real aiosmtpd submission server taking XOAUTH2 / OAUTHBEARER after
STARTTLS, each token checked with the fake token service: sent, a refused token renewed once, a missing
permission a refused login in words (the mail waits for the fix; see test_smtp_oauth_outage)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edudesk.core.config import load_settings
from edudesk.core.ports import OutgoingMessage
from edudesk.mailer.oauth import GoogleTokenSource, MicrosoftTokenSource
from edudesk.mailer.outbox import MailSendError, SmtpMailSender, make_mail_sender
from tests.fakes.oauth_tokens import CLIENT_ID, CLIENT_SECRET, MAILBOX, TENANT, FakeOAuth
from tests.oauth_fixtures import fake_fixture  # noqa: F401 - the fixtures
from tests.servers.smtp_oauth import OAuthSmtpServer, parse_bearer


@pytest.fixture(name="server")
def server_fixture(fake: FakeOAuth) -> Iterator[OAuthSmtpServer]:
    """The submission server, checking tokens for SMTP with the fake."""
    with OAuthSmtpServer(fake.introspection_url("smtp")) as server:
        yield server


def message(subject: str = "Kết quả cấp tài khoản YC-12") -> OutgoingMessage:
    """A small result mail from the office."""
    return OutgoingMessage(message_id=f"<{subject.encode().hex()[:16]}@edudesk>", sender=f"Văn phòng <{MAILBOX}>",
                           to=("an.nguyenvan@sis.school.test",), subject=subject, text="Tài khoản đã được cấp.")


def microsoft(fake: FakeOAuth) -> MicrosoftTokenSource:
    """The office mailbox's Microsoft token source (app secret)."""
    return MicrosoftTokenSource(MAILBOX, tenant_id=TENANT, client_id=CLIENT_ID, secret=CLIENT_SECRET,
                                login_url=fake.url, verify=str(fake.ca_path))


def sender(server: OAuthSmtpServer, tokens: MicrosoftTokenSource | GoogleTokenSource,
           mechanism: str = "xoauth2") -> SmtpMailSender:
    """An SMTP sender with STARTTLS and OAuth2, as for smtp.office365.com:587."""
    return SmtpMailSender(server.host, server.port, starttls=True, tls_context=server.client_tls_context(),
                          tokens=tokens, mechanism=mechanism)


def test_the_test_server_reads_both_sasl_shapes() -> None:
    assert parse_bearer("XOAUTH2", b"user=a@b\x01auth=Bearer t0k\x01\x01") == ("a@b", "t0k")
    assert parse_bearer("OAUTHBEARER", b"n,a=a@b,\x01host=h\x01port=587\x01auth=Bearer t0k\x01\x01") == ("a@b", "t0k")
    assert parse_bearer("XOAUTH2", b"user=a@b\x01auth=Basic t0k\x01\x01") is None


async def test_mail_is_sent_after_starttls_with_auth_xoauth2_and_a_microsoft_token(
        fake: FakeOAuth, server: OAuthSmtpServer) -> None:
    await sender(server, microsoft(fake)).send(message())
    mail = await server.wait_for()
    assert mail.subject == "Kết quả cấp tài khoản YC-12" and mail.rcpt_tos == ("an.nguyenvan@sis.school.test",)
    assert server.logins == [("XOAUTH2", MAILBOX)] and server.refusals == 0
    assert fake.issued("microsoft") == 1


async def test_oauthbearer_with_a_google_service_account_token(fake: FakeOAuth, server: OAuthSmtpServer) -> None:
    tokens = GoogleTokenSource(MAILBOX, fake.service_account_info(), verify=str(fake.ca_path))
    await sender(server, tokens, "oauthbearer").send(message("Gửi qua Gmail"))
    assert (await server.wait_for()).subject == "Gửi qua Gmail"
    assert server.logins == [("OAUTHBEARER", MAILBOX)]


async def test_a_token_the_server_refuses_is_renewed_once_and_the_mail_still_goes(
        fake: FakeOAuth, server: OAuthSmtpServer) -> None:
    tokens = microsoft(fake)
    smtp = sender(server, tokens)
    await smtp.send(message("Một"))
    fake.revoke_tokens()  # e.g. revoked by an administrator's sign-out; the app itself is still allowed
    await smtp.send(message("Hai"))
    await server.wait_for(lambda m: m.subject == "Hai")
    assert server.refusals == 1 and fake.issued() == 2 and len(server.logins) == 2


async def test_without_smtp_sendasapp_the_login_is_refused_and_says_what_to_grant(
        fake: FakeOAuth, server: OAuthSmtpServer) -> None:
    fake.withdraw_consent("SMTP.SendAsApp")
    with pytest.raises(MailSendError) as caught:
        await sender(server, microsoft(fake)).send(message())
    error = caught.value
    assert error.auth and not error.permanent and server.refusals == 2 and server.received() == []
    assert "SMTP.SendAsApp" in error.message and "Add-RecipientPermission" in error.message
    assert "535 5.7.8" in error.message
    assert not any(t in error.message for t in fake.tokens)  # never a token in what people read


async def test_a_rotated_secret_fails_before_any_smtp_auth_with_the_aadsts_code(
        fake: FakeOAuth, server: OAuthSmtpServer) -> None:
    fake.rotate_secret()
    with pytest.raises(MailSendError) as caught:
        await sender(server, microsoft(fake)).send(message())
    assert caught.value.auth and "AADSTS7000215" in caught.value.message
    assert server.refusals == 0 and server.logins == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_make_mail_sender_wires_the_token_source_from_settings(
        fake: FakeOAuth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_path))  # the system's way to trust a (proxy's) CA
    with OAuthSmtpServer(fake.introspection_url("smtp"), require_tls=False) as plain:
        settings = load_settings(None, {
            "general": {"data_dir": str(tmp_path)},
            "outgoing": {"transport": "smtp", "smtp_host": plain.host, "smtp_port": plain.port, "auth": "oauth2",
                         "smtp_username": MAILBOX},
            "mail_oauth": {"tenant_id": TENANT, "client_id": CLIENT_ID, "login_url": fake.url}},
            environ={"EDUDESK_MAIL_CLIENT_SECRET": CLIENT_SECRET})
        await make_mail_sender(settings).send(message("Qua cấu hình"))
        assert (await plain.wait_for()).subject == "Qua cấu hình"
        assert plain.logins == [("XOAUTH2", MAILBOX)]
