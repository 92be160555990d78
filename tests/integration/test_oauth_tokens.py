"""The mailbox's token sources (mailer/oauth.py) against the fake Microsoft and Google token services:
tokens issued, cached, renewed before they run out and after a refusal, and every refusal in words."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.config import load_settings
from edudesk.core.errors import ConfigError
from edudesk.core.words import CATALOGUES
from edudesk.mailer.oauth import (
    GoogleTokenSource,
    MailAuthError,
    MicrosoftTokenSource,
    make_token_source,
    oauthbearer_string,
    xoauth2_string,
)
from tests.fakes.oauth_tokens import (
    CLIENT_ID,
    CLIENT_SECRET,
    MAILBOX,
    TENANT,
    FakeOAuth,
    MovableClock,
    unregistered_certificate_pem,
)


@pytest.fixture(name="fake")
async def fake_fixture() -> AsyncIterator[FakeOAuth]:
    """The fake token services on real time (the sources get their own movable clock)."""
    fake = await FakeOAuth().start()
    yield fake
    await fake.stop()


def microsoft(fake: FakeOAuth, clock: MovableClock | None = None, **changes: str) -> MicrosoftTokenSource:
    """A Microsoft source with the app's secret, trusting the fake's TLS certificate."""
    options = {"tenant_id": TENANT, "client_id": CLIENT_ID, "secret": CLIENT_SECRET, **changes}
    return MicrosoftTokenSource(MAILBOX, login_url=fake.url, clock=clock or MovableClock(),
                                verify=str(fake.ca_path), **options)


def google(fake: FakeOAuth, clock: MovableClock | None = None, user: str = MAILBOX) -> GoogleTokenSource:
    """A Google source with the fake's service-account key file."""
    return GoogleTokenSource(user, fake.service_account_info(), clock=clock or MovableClock(),
                             verify=str(fake.ca_path))


async def token_of(source: MicrosoftTokenSource | GoogleTokenSource) -> str:
    """`token()` off the event loop (it blocks, as it does in the IMAP thread)."""
    return await asyncio.to_thread(source.token)


async def refusal(source: MicrosoftTokenSource | GoogleTokenSource) -> MailAuthError:
    """The MailAuthError `token()` raises."""
    with pytest.raises(MailAuthError) as caught:
        await token_of(source)
    return caught.value


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_mail_auth_failure_has_words_in_both_languages(lang: str) -> None:
    keys = [k.removeprefix("mailauth.") for k in CATALOGUES[lang] if k.startswith("mailauth.")]
    assert len(keys) >= 20
    for key in keys:
        error = MailAuthError(key.partition(".")[0], key, provider_code="X1", detail="chi tiết",
                              fields={"mailbox": MAILBOX, "client_id": CLIENT_ID, "protocol": "IMAP"})
        text = error.in_words(lang)
        assert text.endswith("(X1)") and "{" not in text, (key, text)


def test_sasl_strings_are_those_of_the_specifications() -> None:
    assert xoauth2_string("office@school.test", "abc") == "user=office@school.test\x01auth=Bearer abc\x01\x01"
    assert oauthbearer_string("a,b=c@school.test", "abc") == "n,a=a=2Cb=3Dc@school.test,\x01auth=Bearer abc\x01\x01"


async def test_microsoft_token_is_issued_cached_and_renewed_five_minutes_before_it_runs_out(
        fake: FakeOAuth) -> None:
    clock = MovableClock()
    source = microsoft(fake, clock)
    first = await token_of(source)
    assert fake.check(first, "imap") is not None and fake.check(first, "smtp") is not None
    assert await token_of(source) == first and fake.issued("microsoft") == 1  # cached
    form = fake.token_requests[-1]
    assert (form["grant_type"], form["scope"], form["client_id"]) == (
        "client_credentials", "https://outlook.office365.com/.default", CLIENT_ID)
    clock.advance(3599 - 301)  # still 301 s left: good enough
    assert await token_of(source) == first
    clock.advance(2)  # 299 s left: renewed before it can die in the middle of a login
    second = await token_of(source)
    assert second != first and fake.issued("microsoft") == 2


async def test_invalidate_fetches_a_new_token_once(fake: FakeOAuth) -> None:
    source = microsoft(fake)
    first = await token_of(source)
    fake.revoke(first)  # the mail server refuses it; the source cannot know until told
    source.invalidate()
    second = await token_of(source)
    assert second != first and fake.check(second, "imap") is not None
    assert await token_of(source) == second and fake.issued() == 2


async def test_microsoft_certificate_credential_signs_an_assertion_the_tenant_verifies(fake: FakeOAuth) -> None:
    with_cert = microsoft(fake, secret="", certificate=fake.certificate_pem())
    token = await token_of(with_cert)
    assert fake.check(token, "imap") is not None
    form = fake.token_requests[-1]
    assert "client_secret" not in form and form["client_assertion_type"].endswith("client-assertion-type:jwt-bearer")
    # The older SHA-1 thumbprint (RS256, x5t) works too.
    sha1 = microsoft(fake, secret="", certificate=fake.certificate_pem(), thumbprint=fake.certificate_sha1())
    assert fake.check(await token_of(sha1), "smtp") is not None


async def test_certificate_not_registered_with_the_app_is_refused_in_words(fake: FakeOAuth,
                                                                           tmp_path: Path) -> None:
    path = tmp_path / "mail-app.pem"  # given as a path this time, as an administrator might
    path.write_text(unregistered_certificate_pem())
    error = await refusal(microsoft(fake, secret="", certificate=str(path)))
    assert error.provider_code == "AADSTS700027" and error.permanent
    assert "chứng thư" in error.message and "Certificates & secrets" in error.message


@pytest.mark.parametrize(("change", "code", "vi", "en"), [
    ({"secret": "wrong-secret-id"}, "AADSTS7000215", "Khoá bí mật (client secret) của ứng dụng",
     "The client secret of app"),
    ({"client_id": "00000000-0000-4000-8000-000000000000"}, "AADSTS700016", "Không có ứng dụng",
     "There is no app"),
    ({"tenant_id": "contoso-khong-co"}, "AADSTS90002", "Không có tenant contoso-khong-co", "has no tenant"),
])
async def test_microsoft_refusals_are_explained_in_vietnamese_and_english(
        fake: FakeOAuth, change: dict[str, Any], code: str, vi: str, en: str) -> None:
    error = await refusal(microsoft(fake, **change))
    assert error.provider_code == code and error.permanent
    assert vi in error.message and code in error.message
    assert en in error.in_words("en") and code in error.in_words("en")
    assert "wrong-secret-id" not in error.message and CLIENT_SECRET not in error.message


async def test_a_disabled_app_and_a_rotated_secret_are_refused_with_what_to_do(fake: FakeOAuth) -> None:
    source = microsoft(fake)
    await token_of(source)
    fake.disable_app()
    source.invalidate()
    error = await refusal(source)
    assert error.provider_code == "AADSTS7000112" and "Enterprise applications" in error.message
    fake.disable_app(False)
    fake.rotate_secret()
    error = await refusal(source)
    assert error.provider_code == "AADSTS7000215" and "Value (không phải Secret ID)" in error.message


async def test_unreachable_token_service_is_a_passing_failure(fake: FakeOAuth, tmp_path: Path) -> None:
    url, ca = fake.url, tmp_path / "ca.pem"
    ca.write_bytes(fake.ca_path.read_bytes())
    await fake.stop()
    source = MicrosoftTokenSource(MAILBOX, tenant_id=TENANT, client_id=CLIENT_ID, secret=CLIENT_SECRET,
                                  login_url=url, verify=str(ca))
    error = await refusal(source)
    assert not error.permanent and error.key == "unreachable"
    assert "Không liên lạc được máy chủ cấp mã truy cập" in error.message


async def test_google_service_account_token_impersonates_the_mailbox_and_renews(fake: FakeOAuth) -> None:
    clock = MovableClock()
    source = google(fake, clock)
    first = await token_of(source)
    issued = fake.check(first, "imap")
    assert issued is not None and issued.username == MAILBOX and issued.provider == "google"
    assert await token_of(source) == first
    clock.advance(3400)
    assert await token_of(source) != first and fake.issued("google") == 2


async def test_google_without_delegation_says_to_add_the_client_id_with_the_mail_scope(fake: FakeOAuth) -> None:
    fake.remove_delegation()
    error = await refusal(google(fake))
    assert error.provider_code == "unauthorized_client" and error.permanent
    assert fake.google_client_id in error.message and "https://mail.google.com/" in error.message
    assert "Ủy quyền trên toàn miền" in error.message
    assert "Domain-wide delegation" in error.in_words("en")


async def test_google_deleted_key_and_unknown_mailbox_are_invalid_grant_in_words(fake: FakeOAuth) -> None:
    error = await refusal(google(fake, user="vanthu@school.test"))
    assert (error.provider_code, error.key) == ("invalid_grant", "google.invalid_subject")
    assert "vanthu@school.test" in error.message
    fake.delete_google_key()
    error = await refusal(google(fake))
    assert (error.provider_code, error.key) == ("invalid_grant", "google.invalid_signature")
    assert "Tạo khoá JSON mới" in error.message


def _settings(tmp_path: Path, environ: dict[str, str], **mail_oauth: str) -> object:
    return load_settings(None, {"general": {"data_dir": str(tmp_path)},
                                "imap": {"auth": "oauth2", "username": MAILBOX},
                                "outgoing": {"auth": "oauth2", "smtp_username": "gui@school.test"},
                                "mail_oauth": mail_oauth}, environ=environ)


async def test_make_token_source_builds_each_provider_from_settings(fake: FakeOAuth, tmp_path: Path) -> None:
    settings = _settings(tmp_path, {"EDUDESK_MAIL_CLIENT_SECRET": CLIENT_SECRET}, tenant_id=TENANT,
                         client_id=CLIENT_ID, login_url=fake.url)
    imap = make_token_source(settings, "imap")  # type: ignore[arg-type]
    smtp = make_token_source(settings, "smtp")  # type: ignore[arg-type]
    assert isinstance(imap, MicrosoftTokenSource) and imap.user == MAILBOX and imap.authority == f"{fake.url}/{TENANT}"
    assert isinstance(smtp, MicrosoftTokenSource) and smtp.user == "gui@school.test"
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(fake.service_account_info()))
    settings = _settings(tmp_path, {"EDUDESK_MAIL_GOOGLE_CREDENTIALS": str(key_file)}, provider="google",
                         mailbox="office@school.test")
    source = make_token_source(settings, "smtp")  # type: ignore[arg-type]
    assert isinstance(source, GoogleTokenSource) and source.user == MAILBOX
    assert make_token_source(load_settings(None, {}), "imap") is None  # passwords: no source


async def test_make_token_source_names_the_missing_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mail_oauth.tenant_id"):
        make_token_source(_settings(tmp_path, {}), "imap")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="EDUDESK_MAIL_CLIENT_SECRET"):
        make_token_source(_settings(tmp_path, {}, tenant_id=TENANT, client_id=CLIENT_ID), "imap")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="google_credentials_env"):
        make_token_source(_settings(tmp_path, {}, provider="google"), "imap")  # type: ignore[arg-type]


async def test_the_fake_enforces_token_lifetime_by_its_clock() -> None:
    clock = MovableClock()
    async with FakeOAuth(now=clock) as fake:
        token = await token_of(microsoft(fake, clock))
        assert fake.check(token, "imap") is not None
        clock.advance(3600)
        assert fake.check(token, "imap") is None
