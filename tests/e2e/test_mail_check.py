"""`edudesk mail check` as an administrator runs it (a real subprocess on a real config.toml) against Dovecot
taking OAuth2 tokens, an aiosmtpd submission server taking XOAUTH2 after STARTTLS, and the fake token
services: one screen saying what works, and for what does not, what to fix."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.oauth_tokens import CLIENT_ID, CLIENT_SECRET, MAILBOX, TENANT, FakeOAuth
from tests.integration.test_imap import make_mail
from tests.oauth_fixtures import dovecot_oauth_fixture, fake_fixture  # noqa: F401 - the fixtures
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp_oauth import OAuthSmtpServer

ROOT = Path(__file__).resolve().parents[2]




@pytest.fixture(name="submission")
def submission_fixture(fake: FakeOAuth) -> Iterator[OAuthSmtpServer]:
    """The submission server (STARTTLS, then XOAUTH2/OAUTHBEARER)."""
    with OAuthSmtpServer(fake.introspection_url("smtp")) as server:
        yield server


def write_config(tmp_path: Path, dovecot: DovecotServer, smtp: OAuthSmtpServer, fake: FakeOAuth,
                 **mail_oauth: str) -> Path:
    """A config.toml for the office mailbox in Microsoft 365 (the fakes standing in for it)."""
    oauth = {"provider": "microsoft", "tenant_id": TENANT, "client_id": CLIENT_ID, "login_url": fake.url,
             **mail_oauth}
    lines = [
        "[general]", f'data_dir = "{tmp_path / "data"}"',
        "[imap]", "enabled = true", f'host = "{dovecot.host}"', f"port = {dovecot.port}", "ssl = false",
        f'username = "{MAILBOX}"', 'auth = "oauth2"',
        "[outgoing]", 'transport = "smtp"', f'smtp_host = "{smtp.host}"', f"smtp_port = {smtp.port}",
        "smtp_starttls = true", f'smtp_username = "{MAILBOX}"', 'auth = "oauth2"',
        "[mail_oauth]", *(f"{key} = {json.dumps(value)}" for key, value in oauth.items()),
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def mail_check(config: Path, fake: FakeOAuth, smtp: OAuthSmtpServer, *args: str,
                     **secrets: str) -> subprocess.CompletedProcess[str]:
    """Run `edudesk mail check` in a subprocess (off the loop: the fake token service runs on it)."""
    env = {**os.environ, **secrets,
           "REQUESTS_CA_BUNDLE": str(fake.ca_path),  # the token service's CA, as for a TLS-inspecting proxy
           "SSL_CERT_FILE": str(smtp.ca_path)}  # the submission server's CA, for STARTTLS
    command = [sys.executable, "-m", "edudesk", "--config", str(config),
               "mail", "check", *args]
    return await asyncio.to_thread(subprocess.run, command, cwd=ROOT, capture_output=True, text=True,
                                   timeout=120, env=env)


async def test_mail_check_signs_in_everywhere_with_oauth2_and_sends_nothing(
        fake: FakeOAuth, dovecot_oauth: DovecotServer, submission: OAuthSmtpServer, tmp_path: Path) -> None:
    dovecot_oauth.deliver(make_mail("Thư đang chờ"))
    config = write_config(tmp_path, dovecot_oauth, submission, fake)
    done = await mail_check(config, fake, submission, EDUDESK_MAIL_CLIENT_SECRET=CLIENT_SECRET)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"Kiểm tra hộp thư {MAILBOX} — OAuth2 Microsoft 365 (XOAUTH2)"
    assert lines[1].startswith("OK") and "Lấy mã truy cập (token) từ Microsoft 365, dùng được đến" in lines[1]
    assert [line.split(None, 1)[0] for line in lines[1:-1]] == ["OK"] * 6
    assert f"OK    IMAP: đăng nhập {MAILBOX} (XOAUTH2)" in lines
    assert "OK    IMAP: mở thư mục INBOX (chỉ đọc): 1 thư" in lines
    assert f"OK    SMTP: đăng nhập {MAILBOX} (XOAUTH2), không gửi thư nào" in lines
    assert lines[-1] == "Mọi bước đều ổn."
    assert submission.logins == [("XOAUTH2", MAILBOX)] and submission.received() == []  # nothing sent
    assert fake.issued() == 1  # one token serves IMAP and SMTP of the same mailbox
    assert CLIENT_SECRET not in done.stdout + done.stderr
    assert not any(token in done.stdout + done.stderr for token in fake.tokens)


async def test_mail_check_after_the_secret_was_replaced_names_the_aadsts_code_and_the_fix(
        fake: FakeOAuth, dovecot_oauth: DovecotServer, submission: OAuthSmtpServer, tmp_path: Path) -> None:
    fake.rotate_secret()
    config = write_config(tmp_path, dovecot_oauth, submission, fake)
    done = await mail_check(config, fake, submission, EDUDESK_MAIL_CLIENT_SECRET=CLIENT_SECRET)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "LỖI   Lấy mã truy cập (token) từ Microsoft 365" in out
    assert "Cách sửa: Khoá bí mật (client secret) của ứng dụng" in out and "(AADSTS7000215)" in out
    assert "OK    IMAP 127.0.0.1" in out  # the connection itself works
    assert out.splitlines()[-1].startswith("Có 1 bước lỗi")  # the sign-ins after it are not tried
    assert CLIENT_SECRET not in out + done.stderr


async def test_mail_check_without_the_exchange_mailbox_permission_says_what_to_run(
        fake: FakeOAuth, dovecot_oauth: DovecotServer, submission: OAuthSmtpServer, tmp_path: Path) -> None:
    fake.mailbox_access.clear()
    config = write_config(tmp_path, dovecot_oauth, submission, fake)
    done = await mail_check(config, fake, submission, EDUDESK_MAIL_CLIENT_SECRET=CLIENT_SECRET)
    assert done.returncode == 1
    assert f"LỖI   IMAP: đăng nhập {MAILBOX} (XOAUTH2)" in done.stdout
    assert "IMAP.AccessAsApp" in done.stdout and f"New-ServicePrincipal -AppId {CLIENT_ID}" in done.stdout
    assert "Add-MailboxPermission" in done.stdout


async def test_mail_check_in_english_for_google_without_delegation(
        fake: FakeOAuth, dovecot_oauth: DovecotServer, submission: OAuthSmtpServer, tmp_path: Path) -> None:
    fake.remove_delegation()
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(fake.service_account_info()), encoding="utf-8")
    config = write_config(tmp_path, dovecot_oauth, submission, fake, provider="google")
    done = await mail_check(config, fake, submission, "--lang", "en",
                            EDUDESK_MAIL_GOOGLE_CREDENTIALS=str(key_file))
    assert done.returncode == 1
    out = done.stdout
    assert out.startswith(f"Checking mailbox {MAILBOX} — OAuth2 Google Workspace (XOAUTH2)")
    assert "FAIL  Token from Google Workspace" in out
    assert f"To fix: The service account (client ID {fake.google_client_id}) has no domain-wide delegation" in out
    assert "https://mail.google.com/" in out and "(unauthorized_client)" in out
    assert "PRIVATE KEY" not in out + done.stderr
