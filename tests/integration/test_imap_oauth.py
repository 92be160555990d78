"""ImapIntake signing in with OAuth2 (SASL XOAUTH2 / OAUTHBEARER) to a real Dovecot whose oauth2 passdb asks
the fake token service (RFC 7662 introspection) about each token: mail stored for both providers' tokens, a
token renewed before it runs out and after a refusal, a revoked authorisation reported in words until it is
restored."""

from __future__ import annotations

from edudesk.mailer.imap import ImapIntake
from edudesk.mailer.oauth import GoogleTokenSource, MicrosoftTokenSource, TokenSource
from tests.fakes.oauth_tokens import CLIENT_ID, CLIENT_SECRET, MAILBOX, TENANT, FakeOAuth, MovableClock
from tests.integration.test_imap import MemorySink, eventually, imap_settings, make_mail, watching
from tests.oauth_fixtures import dovecot_oauth_fixture, fake_fixture  # noqa: F401 - the fixtures
from tests.servers.dovecot import DEFAULT_USER, DovecotServer

assert MAILBOX == DEFAULT_USER  # the token's mailbox is the Dovecot user the tests deliver to




def microsoft(fake: FakeOAuth, clock: MovableClock | None = None) -> MicrosoftTokenSource:
    """The office mailbox's Microsoft token source (app secret)."""
    return MicrosoftTokenSource(MAILBOX, tenant_id=TENANT, client_id=CLIENT_ID, secret=CLIENT_SECRET,
                                login_url=fake.url, verify=str(fake.ca_path), clock=clock or MovableClock())


def oauth_intake(server: DovecotServer, sink: MemorySink, tokens: TokenSource, mechanism: str = "xoauth2",
                 **changes: object) -> ImapIntake:
    """An ImapIntake with auth = "oauth2" and no password at all."""
    return ImapIntake(imap_settings(server, auth="oauth2", **changes), "", sink, checkpoints=sink, health=sink,
                      max_message_size=1_000_000, tokens=tokens, mechanism=mechanism)


def logins(server: DovecotServer, method: str) -> int:
    """Successful IMAP logins with this SASL method, from Dovecot's own log."""
    return server.log_path.read_text(errors="replace").count(f"Login: user=<{MAILBOX}>, method={method}")


def failures(sink: MemorySink) -> list[str]:
    """The failure details the watcher reported."""
    return [detail for ok, detail in sink.health if not ok]


async def test_intake_signs_in_with_xoauth2_and_a_microsoft_token_and_stores_mail(
        fake: FakeOAuth, dovecot_oauth: DovecotServer) -> None:
    dovecot_oauth.deliver(make_mail("Cấp tài khoản qua Microsoft 365"))
    sink = MemorySink()
    async with watching(oauth_intake(dovecot_oauth, sink, microsoft(fake))):
        await eventually(lambda: len(sink.mails) == 1 and sink.healthy is True)
        dovecot_oauth.deliver(make_mail("Thư mới khi IDLE"))
        await eventually(lambda: len(sink.mails) == 2)
    assert sink.subjects() == ["Cấp tài khoản qua Microsoft 365", "Thư mới khi IDLE"]
    assert logins(dovecot_oauth, "XOAUTH2") == 1 and fake.issued("microsoft") == 1
    assert failures(sink) == []


async def test_intake_signs_in_with_oauthbearer_and_a_google_service_account_token(
        fake: FakeOAuth, dovecot_oauth: DovecotServer) -> None:
    dovecot_oauth.deliver(make_mail("Cấp tài khoản qua Google Workspace"))
    sink = MemorySink()
    tokens = GoogleTokenSource(MAILBOX, fake.service_account_info(), verify=str(fake.ca_path))
    async with watching(oauth_intake(dovecot_oauth, sink, tokens, "oauthbearer")):
        await eventually(lambda: len(sink.mails) == 1 and sink.healthy is True)
    assert logins(dovecot_oauth, "OAUTHBEARER") == 1 and fake.issued("google") == 1


async def test_a_token_about_to_run_out_is_renewed_before_the_next_login(
        fake: FakeOAuth, dovecot_oauth: DovecotServer) -> None:
    clock = MovableClock()
    sink = MemorySink()
    async with watching(oauth_intake(dovecot_oauth, sink, microsoft(fake, clock))):
        await eventually(lambda: sink.healthy is True)
        clock.advance(3400)  # under five minutes left by edudesk's clock ...
        fake.expire_tokens()  # ... and gone at the server: a login with it would fail
        dovecot_oauth.stop()  # an outage: the watcher must log in again
        dovecot_oauth.deliver_offline(make_mail("Đến trong lúc mất kết nối"))
        dovecot_oauth.start()
        await eventually(lambda: len(sink.mails) == 1, within=10)
    assert fake.issued() == 2 and logins(dovecot_oauth, "XOAUTH2") == 2
    assert not any("từ chối mã truy cập" in d for d in failures(sink))  # renewed before use, never refused


async def test_a_token_the_server_refuses_is_renewed_once_and_the_login_goes_on(
        fake: FakeOAuth, dovecot_oauth: DovecotServer) -> None:
    sink = MemorySink()
    async with watching(oauth_intake(dovecot_oauth, sink, microsoft(fake))):
        await eventually(lambda: sink.healthy is True)
        fake.revoke_tokens()  # still valid by edudesk's clock, refused by the server
        dovecot_oauth.stop()
        dovecot_oauth.deliver_offline(make_mail("Sau khi thu hồi mã"))
        dovecot_oauth.start()
        await eventually(lambda: len(sink.mails) == 1, within=10)
    assert fake.issued() == 2 and logins(dovecot_oauth, "XOAUTH2") == 2
    assert not any("từ chối mã truy cập" in d for d in failures(sink))


async def test_a_revoked_authorisation_is_reported_in_words_until_it_is_restored(
        fake: FakeOAuth, dovecot_oauth: DovecotServer) -> None:
    sink = MemorySink()
    async with watching(oauth_intake(dovecot_oauth, sink, microsoft(fake))):
        await eventually(lambda: sink.healthy is True)
        fake.rotate_secret()  # an administrator replaced the secret: every token revoked, ours refused
        dovecot_oauth.stop()
        dovecot_oauth.start()
        await eventually(lambda: len(failures(sink)) >= 3, within=10)  # it keeps trying, with backoff
        reported = failures(sink)[-1]
        assert "AADSTS7000215" in reported and "Khoá bí mật (client secret)" in reported
        assert "Value (không phải Secret ID)" in reported
        assert CLIENT_SECRET not in reported and not any(t in reported for t in fake.tokens)
        fake.restore()  # the new secret is in place (here: the old one is valid again)
        dovecot_oauth.deliver(make_mail("Khi đã sửa xong"))
        await eventually(lambda: len(sink.mails) == 1 and sink.healthy is True, within=10)


async def test_without_mailbox_permission_the_refusal_says_what_to_run_in_exchange(
        fake: FakeOAuth, dovecot_oauth: DovecotServer) -> None:
    fake.mailbox_access.clear()  # the service principal has no FullAccess on the office mailbox
    sink = MemorySink()
    # A long backoff: exactly one login attempt happens while the test looks.
    async with watching(oauth_intake(dovecot_oauth, sink, microsoft(fake), backoff_initial=60, backoff_max=60)):
        await eventually(lambda: len(failures(sink)) >= 1)
    reported = failures(sink)[0]
    assert "IMAP.AccessAsApp" in reported and "Add-MailboxPermission -Identity office@school.test" in reported
    assert "New-ServicePrincipal -AppId " + CLIENT_ID in reported
    assert "AUTHENTICATIONFAILED" in reported  # the server's own answer, for whoever digs deeper
    assert fake.issued() == 2  # the first refusal got one fresh token, not an endless loop
