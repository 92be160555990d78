"""`edudesk mail check`: sign in to the office mailbox the way the service will (password or OAuth2), open
the watched folder read-only, sign in to the outgoing SMTP server and quit without sending; one screen of
OK / LỖI lines, each failure followed by what to fix. Secrets are never printed."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient

from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.text import local_time
from edudesk.core.words import Words, words
from edudesk.mailer.imap import oauth2_login
from edudesk.mailer.oauth import MailAuthError, TokenSource, make_token_source
from edudesk.mailer.outbox import SmtpMailSender

TIMEOUT = 15.0  # seconds for one connection or answer: a check should not hang on a dead server


@dataclass(frozen=True)
class Step:
    """One line of the report: `ok` None is a step left out."""

    ok: bool | None
    text: str
    fix: str = ""


class MailCheck:
    """The steps, run in order; a step that cannot work because an earlier one failed is not tried."""

    def __init__(self, settings: Settings, lang: str) -> None:
        self.settings = settings
        self.lang = lang
        self.w: Words = words(lang)
        self.steps: list[Step] = []
        self._refused: set[str] = set()  # mailboxes whose token could not be had (said once)

    def run(self) -> list[Step]:
        """Every step's outcome (blocking: it talks to the servers)."""
        imap_tokens = self._tokens("imap")
        smtp_tokens = self._tokens("smtp", reuse=imap_tokens)
        self._imap(imap_tokens)
        self._smtp(smtp_tokens)
        return self.steps

    def title(self) -> str:
        """What is checked: the mailbox and how edudesk signs in to it."""
        s = self.settings
        oauth = s.imap.auth == "oauth2" or (s.outgoing.transport == "smtp" and s.outgoing.auth == "oauth2")
        method = self.w("mailcheck.oauth", provider=self.w(f"mailcheck.provider.{s.mail_oauth.provider}"),
                        mechanism=s.mail_oauth.mechanism.upper()) if oauth else self.w("mailcheck.password")
        mailbox = s.mail_oauth.mailbox or s.imap.username or s.outgoing.smtp_username or s.outgoing.from_address
        return self.w("mailcheck.title", mailbox=mailbox, method=method)

    # -- steps ---------------------------------------------------------------------------------------------

    def _add(self, ok: bool | None, text: str, fix: str = "") -> bool:
        self.steps.append(Step(ok, text, fix))
        return bool(ok)

    def _explain(self, exc: BaseException) -> str:
        if isinstance(exc, EdudeskError) and self.lang != "vi" and not isinstance(exc, MailAuthError):
            return f"{exc.in_words(self.lang)} {exc.message}"  # the key it names, with the catalogue's sentence
        return exc.in_words(self.lang) if isinstance(exc, EdudeskError) else f"{type(exc).__name__}: {exc}"

    def _tokens(self, protocol: str, reuse: TokenSource | None = None) -> TokenSource | None:
        s = self.settings
        if protocol == "smtp" and s.outgoing.transport != "smtp":
            return None
        if protocol == "imap" and not self._imap_configured():
            return None
        provider = self.w(f"mailcheck.provider.{s.mail_oauth.provider}")
        try:
            tokens = make_token_source(s, protocol)
        except EdudeskError as exc:
            self._add(False, self.w("mailcheck.token_failed", provider=provider), self._explain(exc))
            return None
        if tokens is None or tokens.user.lower() in self._refused:
            return None
        if reuse is not None and reuse.user.lower() == tokens.user.lower():
            return reuse  # the same mailbox: one token serves both
        try:
            tokens.token()
        except MailAuthError as exc:
            self._refused.add(tokens.user.lower())
            self._add(False, self.w("mailcheck.token_failed", provider=provider), exc.in_words(self.lang))
            return None
        until = local_time(datetime.fromtimestamp(tokens.expires_at, UTC), s.general.timezone)
        self._add(True, self.w("mailcheck.token", provider=provider, until=until))
        return tokens

    def _imap_configured(self) -> bool:
        s = self.settings
        return bool(s.imap.enabled or s.imap.username or (s.imap.auth == "oauth2" and s.mail_oauth.mailbox))

    def _imap(self, tokens: TokenSource | None) -> None:
        s, w = self.settings.imap, self.w
        if not self._imap_configured():
            self._add(None, w("mailcheck.imap_off"))
            return
        try:
            client = IMAPClient(s.host, s.port, ssl=s.ssl, timeout=TIMEOUT)
            if s.starttls and not s.ssl:
                client.starttls(ssl.create_default_context())
        except Exception as exc:
            self._add(False, w("mailcheck.imap_connect", host=s.host, port=s.port),
                      w("mailcheck.fix_connect", section="imap", detail=f"{type(exc).__name__}: {exc}"))
            return
        self._add(True, w("mailcheck.imap_connect", host=s.host, port=s.port))
        try:
            if self._imap_login(client, tokens):
                self._imap_folder(client)
        finally:
            try:
                client.logout()
            except Exception:
                client.shutdown()

    def _imap_login(self, client: IMAPClient, tokens: TokenSource | None) -> bool:
        s, w, o = self.settings.imap, self.w, self.settings.mail_oauth
        if s.auth == "oauth2":
            if tokens is None:
                return False  # the token step already said why
            line = w("mailcheck.imap_login", user=tokens.user, how=o.mechanism.upper())
            offered = [c.decode().removeprefix("AUTH=") for c in client.capabilities() if c.startswith(b"AUTH=")]
            if o.mechanism.upper() not in offered:
                return self._add(False, line, w("mailcheck.fix_mechanism", mechanism=o.mechanism.upper(),
                                                offered=", ".join(offered) or "-"))
            return self._attempt(line, lambda: oauth2_login(client, tokens, o.mechanism))
        line = w("mailcheck.imap_login", user=s.username, how=w("mailcheck.password"))
        password = self.settings.secret(s.password_env)
        return self._attempt(line, lambda: client.login(s.username, password),
                             lambda exc: w("mailcheck.fix_password", env=s.password_env, detail=str(exc)))

    def _imap_folder(self, client: IMAPClient) -> None:
        folder = self.settings.imap.mailbox
        try:
            info = client.select_folder(folder, readonly=True)
        except Exception as exc:
            self._add(False, self.w("mailcheck.imap_folder_failed", folder=folder),
                      self.w("mailcheck.fix_folder", folder=folder, detail=str(exc)))
            return
        self._add(True, self.w("mailcheck.imap_folder", folder=folder, count=int(info.get(b"EXISTS", 0))))

    def _smtp(self, tokens: TokenSource | None) -> None:
        out, w, o = self.settings.outgoing, self.w, self.settings.mail_oauth
        if out.transport != "smtp":
            self._add(None, w("mailcheck.smtp_off", path=self.settings.path(out.maildir)))
            return
        connect = w("mailcheck.smtp_connect", host=out.smtp_host, port=out.smtp_port,
                    tls=w("mailcheck.starttls") if out.smtp_starttls else "")
        sender = SmtpMailSender(out.smtp_host, out.smtp_port, starttls=out.smtp_starttls, username=out.smtp_username,
                                password=self.settings.secret(out.smtp_password_env), tokens=tokens,
                                mechanism=o.mechanism)
        try:
            smtp = smtplib.SMTP(out.smtp_host, out.smtp_port, timeout=TIMEOUT)
        except Exception as exc:
            self._add(False, connect, w("mailcheck.fix_connect", section="outgoing",
                                        detail=f"{type(exc).__name__}: {exc}"))
            return
        try:
            if not self._attempt(connect, lambda: _hello(smtp, out.smtp_starttls),
                                 lambda exc: w("mailcheck.fix_connect", section="outgoing", detail=str(exc))):
                return
            if out.auth == "oauth2":
                if tokens is None:
                    return
                line = w("mailcheck.smtp_login", user=tokens.user, how=o.mechanism.upper())
                self._attempt(line, lambda: sender.login(smtp), lambda exc: w(
                    "mailcheck.fix_mechanism", mechanism=o.mechanism.upper(),
                    offered=smtp.esmtp_features.get("auth", "-").strip().upper())
                    if isinstance(exc, smtplib.SMTPNotSupportedError)
                    else w("mailcheck.fix_connect", section="outgoing", detail=_smtp_reply(exc)))
            elif out.smtp_username:
                line = w("mailcheck.smtp_login", user=out.smtp_username, how=w("mailcheck.password"))
                self._attempt(line, lambda: sender.login(smtp), lambda exc: w(
                    "mailcheck.fix_password", env=out.smtp_password_env, detail=_smtp_reply(exc)))
            else:
                self._add(None, w("mailcheck.smtp_no_login"))
        finally:
            try:
                smtp.quit()
            except Exception:
                smtp.close()

    def _attempt(self, line: str, action: Callable[[], Any],
                 fix: Callable[[Exception], str] | None = None) -> bool:
        """Run one step: OK, or LỖI with the error in words (a MailAuthError says itself what to fix)."""
        try:
            action()
        except MailAuthError as exc:
            return self._add(False, line, exc.in_words(self.lang))
        except Exception as exc:
            return self._add(False, line, fix(exc) if fix else self._explain(exc))
        return self._add(True, line)


def _hello(smtp: smtplib.SMTP, starttls: bool) -> None:
    smtp.ehlo()
    if starttls:
        smtp.starttls(context=ssl.create_default_context())
        smtp.ehlo()


def _smtp_reply(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
        return f"{exc.smtp_code} {text}"
    return str(exc)


def report(settings: Settings, lang: str) -> tuple[str, bool]:
    """The screen of the check and whether everything worked (blocking)."""
    check = MailCheck(settings, lang)
    steps = check.run()
    w = check.w
    marks = {True: w("mailcheck.ok"), False: w("mailcheck.fail"), None: w("mailcheck.skip")}
    width = 6  # one column for the marks in every language
    lines = [check.title()]
    for step in steps:
        lines.append(f"{marks[step.ok]:<{width}}{step.text}")
        if step.fix:
            lines.append(" " * width + w("mailcheck.fix", fix=step.fix))
    failed = sum(1 for s in steps if s.ok is False)
    lines.append(w("mailcheck.failed", count=failed) if failed else w("mailcheck.all_ok"))
    return "\n".join(lines), not failed
