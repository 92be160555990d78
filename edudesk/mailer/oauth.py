"""OAuth2 tokens for the office mailbox (Microsoft 365 app-only, Google Workspace domain-wide delegation),
the SASL strings that carry them, and their failures in words.

A `TokenSource` is blocking and thread-safe: the IMAP watcher calls it from its own thread, the SMTP sender
from a worker thread. It keeps the token in memory and renews it when less than `RENEW_BEFORE` seconds are
left, or after `invalidate()` (a server refused it).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError, EdudeskError
from edudesk.core.words import words

__all__ = ["MailAuthError", "TokenSource", "make_token_source", "oauthbearer_string", "sasl_string",
           "xoauth2_string"]

RENEW_BEFORE = 300.0  # seconds: a token with less left is renewed before use
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
_TIMEOUT = 30  # seconds for one request to a token endpoint

# Identity-platform codes we can explain (AADSTS<number>); other codes get the generic words.
_MICROSOFT_WORDS = {7000215, 7000222, 700016, 90002, 65001, 7000112, 700027, 7000216, 1002012, 700024}
# OAuth errors worth retrying as they are; every other refusal needs someone to fix the set-up first.
_TRANSIENT_ERRORS = {"temporarily_unavailable", "server_error", "slow_down"}


class MailAuthError(EdudeskError):
    """The mailbox's token could not be had, or the mail server refused it.

    `provider` is "microsoft" or "google", `provider_code` what the provider said (`AADSTS7000215`,
    `invalid_grant`, ...), `permanent` whether retrying can help before someone fixes the set-up."""

    code = "mail_auth"

    def __init__(self, provider: str, key: str, *, provider_code: str = "", detail: str = "",
                 permanent: bool = True, fields: dict[str, str] | None = None) -> None:
        self.provider = provider
        self.key = key
        self.provider_code = provider_code
        self.detail = detail
        self.permanent = permanent
        self.fields = {"code": provider_code, "detail": detail, "mailbox": "", "client_id": "", "protocol": "",
                       "tenant": "", **(fields or {})}
        super().__init__(self.in_words("vi"))

    def in_words(self, lang: str | None = "vi") -> str:
        """What it means and what to fix, in the reader's language, ending with the provider's code."""
        text = words(lang or "vi")(f"mailauth.{self.key}", **self.fields)
        return f"{text} ({self.provider_code})" if self.provider_code and self.provider_code not in text else text


def xoauth2_string(user: str, token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64): user, bearer token, two ^A at the end."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def oauthbearer_string(user: str, token: str, host: str = "", port: int = 0) -> str:
    """The SASL OAUTHBEARER initial response of RFC 7628 (before base64)."""
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    where = (f"host={host}\x01" if host else "") + (f"port={port}\x01" if port else "")
    return f"n,a={authzid},\x01{where}auth=Bearer {token}\x01\x01"


def sasl_string(mechanism: str, user: str, token: str, host: str = "", port: int = 0) -> str:
    """The initial response of the configured mechanism ("xoauth2" or "oauthbearer")."""
    if mechanism.lower() == "oauthbearer":
        return oauthbearer_string(user, token, host, port)
    return xoauth2_string(user, token)


class TokenSource:
    """A cached bearer token for one mailbox; `token()` renews it when it runs out or was refused."""

    provider = ""

    def __init__(self, user: str, *, clock: Callable[[], float] = time.time) -> None:
        self.user = user  # the mailbox the token lets us into
        self.clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0

    def token(self) -> str:
        """A token valid for at least a few more minutes; raises MailAuthError when none can be had."""
        with self._lock:
            if not self._token or self._expires - self.clock() < RENEW_BEFORE:
                token, lifetime = self._fetch()
                self._token, self._expires = token, self.clock() + lifetime
            return self._token

    @property
    def expires_at(self) -> float:
        """When the cached token runs out (seconds since the epoch, by `clock`); 0 when none is cached."""
        return self._expires

    def invalidate(self) -> None:
        """Forget the token (a server refused it): the next `token()` asks the provider again."""
        with self._lock:
            self._token, self._expires = "", 0.0

    def refused(self, protocol: str, server_text: str) -> MailAuthError:
        """The error for a mail server refusing a fresh token: the permission or delegation is missing."""
        return MailAuthError(self.provider, f"{self.provider}.refused", detail=server_text[:300],
                             fields=self._fields(protocol=protocol))

    def _fields(self, **more: str) -> dict[str, str]:
        return {"mailbox": self.user, **more}

    def _fetch(self) -> tuple[str, float]:
        """A new token and its lifetime in seconds."""
        raise NotImplementedError


class MicrosoftTokenSource(TokenSource):
    """Microsoft 365, app-only: the Entra app's client credentials (a secret or a certificate) with msal."""

    provider = "microsoft"

    def __init__(self, user: str, *, tenant_id: str, client_id: str, secret: str = "", certificate: str = "",
                 thumbprint: str = "", login_url: str = "https://login.microsoftonline.com",
                 clock: Callable[[], float] = time.time, verify: bool | str = True) -> None:
        super().__init__(user, clock=clock)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.authority = f"{login_url.rstrip('/')}/{tenant_id}"
        self._credential: str | dict[str, str] = secret
        if certificate:
            self._credential = _certificate_credential(certificate, thumbprint)
        self._verify = verify
        self._app: Any = None

    def _fields(self, **more: str) -> dict[str, str]:
        return {"mailbox": self.user, "client_id": self.client_id, **more}

    def _fetch(self) -> tuple[str, float]:
        try:
            answer = self._acquire()
        except BaseException:
            self._app = None
            raise
        if "access_token" in answer:
            return str(answer["access_token"]), float(answer.get("expires_in", 3599))
        # msal holds a refusal back for a few seconds per app (its throttling): the retry after someone
        # fixed the set-up must reach the tenant, so it starts with a new app.
        self._app = None
        raise self._error(answer)

    def _acquire(self) -> dict[str, Any]:
        import msal
        import requests

        try:
            if self._app is None:
                # The authority is checked (its openid-configuration fetched) once per app, not per token.
                self._app = msal.ConfidentialClientApplication(
                    self.client_id, authority=self.authority, client_credential=self._credential,
                    instance_discovery=False, http_client=_session(self._verify), token_cache=msal.TokenCache())
            # msal keeps its own cache with its own clock: ours decides when a token is due.
            self._app.remove_tokens_for_client()
            return dict(self._app.acquire_token_for_client(scopes=[MICROSOFT_SCOPE]))
        except ValueError as exc:
            # msal's tenant discovery failed with a 4xx (an unknown tenant), or the key could not be used.
            if "authority" in str(exc).lower() or "tenant" in str(exc).lower():
                raise MailAuthError(self.provider, "microsoft.90002", provider_code="AADSTS90002",
                                    fields=self._fields(tenant=self.tenant_id)) from None
            raise MailAuthError(self.provider, "microsoft.bad_certificate", detail=str(exc)[:300],
                                fields=self._fields()) from None
        except requests.RequestException as exc:
            raise MailAuthError(self.provider, "unreachable", detail=_short(exc), permanent=False,
                                fields=self._fields()) from None

    def _error(self, answer: dict[str, Any]) -> MailAuthError:
        codes = answer.get("error_codes") or []
        description = str(answer.get("error_description", ""))
        number = int(codes[0]) if codes else _aadsts(description)
        error = str(answer.get("error", ""))
        key = f"microsoft.{number}" if number in _MICROSOFT_WORDS else "microsoft.other"
        first = description.split(" Trace ID:")[0].strip()
        return MailAuthError(self.provider, key, provider_code=f"AADSTS{number}" if number else error,
                             detail=first[:300], permanent=error not in _TRANSIENT_ERRORS,
                             fields=self._fields(tenant=self.tenant_id))


class GoogleTokenSource(TokenSource):
    """Google Workspace: a service account with domain-wide delegation, impersonating the mailbox."""

    provider = "google"

    def __init__(self, user: str, info: dict[str, Any], *, clock: Callable[[], float] = time.time,
                 verify: bool | str = True) -> None:
        super().__init__(user, clock=clock)
        self.info = info
        self.client_id = str(info.get("client_id", ""))
        self._verify = verify
        self._credentials: Any = None

    def _fields(self, **more: str) -> dict[str, str]:
        return {"mailbox": self.user, "client_id": self.client_id, **more}

    def _fetch(self) -> tuple[str, float]:
        import google.auth.exceptions
        from google.auth.transport.requests import Request
        from google.oauth2 import service_account

        try:
            if self._credentials is None:
                self._credentials = service_account.Credentials.from_service_account_info(
                    self.info, scopes=[GOOGLE_SCOPE], subject=self.user)
        except (ValueError, KeyError) as exc:
            raise MailAuthError(self.provider, "google.bad_key", detail=_short(exc), fields=self._fields()) from None
        session = _session(self._verify)
        credentials = self._credentials
        try:
            credentials.refresh(Request(session))
        except google.auth.exceptions.RefreshError as exc:
            raise self._error(exc) from None
        except google.auth.exceptions.TransportError as exc:
            raise MailAuthError(self.provider, "unreachable", detail=_short(exc), permanent=False,
                                fields=self._fields()) from None
        finally:
            session.close()
        # google-auth keeps the expiry as a naive UTC time of its own (real) clock: what counts is how long
        # is left, counted from our clock.
        expiry = credentials.expiry
        lifetime = (expiry - datetime.now(UTC).replace(tzinfo=None)).total_seconds() if expiry else 3599.0
        return str(credentials.token), lifetime

    def _error(self, exc: Exception) -> MailAuthError:
        data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        error = str(data.get("error", "")) or str(exc.args[0] if exc.args else "").split(":")[0]
        description = str(data.get("error_description", "")) or str(exc.args[0] if exc.args else "")
        lowered = description.lower()
        if error == "unauthorized_client":
            key = "google.unauthorized_client"
        elif error == "invalid_grant" and "signature" in lowered:
            key = "google.invalid_signature"
        elif error == "invalid_grant" and ("email" in lowered or "user id" in lowered):
            key = "google.invalid_subject"
        elif error == "invalid_grant" and ("iat" in lowered or "timeframe" in lowered):
            key = "google.clock"
        else:
            key = "google.other"
        retryable = bool(getattr(exc, "retryable", False)) or error in _TRANSIENT_ERRORS
        return MailAuthError(self.provider, key, provider_code=error, detail=description[:300],
                             permanent=not retryable, fields=self._fields())


def _session(verify: bool | str) -> Any:
    """A requests session for the token endpoints: a time limit on every call, and a CA file given here
    wins over REQUESTS_CA_BUNDLE (without one, requests' usual environment settings and proxies apply)."""
    import requests

    class _Session(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            kwargs.setdefault("timeout", _TIMEOUT)
            if self.verify is not True:
                kwargs.setdefault("verify", self.verify)
            return super().request(*args, **kwargs)

    session = _Session()
    session.verify = verify
    return session


def _aadsts(description: str) -> int:
    found = re.match(r"AADSTS(\d+)", description)
    return int(found.group(1)) if found else 0


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _read_text_or_path(value: str, what: str) -> str:
    text = value.strip()
    if text.startswith(("-----BEGIN", "{")):
        return text
    try:
        return Path(text).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"mail_oauth: không đọc được {what} ({exc.strerror}: {text}).",
                          code="config_mail_oauth") from None


def _certificate_credential(value: str, thumbprint: str) -> dict[str, str]:
    """msal's certificate credential from a PEM holding the private key and the certificate."""
    pem = _read_text_or_path(value, "chứng thư (certificate_env)")
    key = re.search(r"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----",
                    pem, re.S)
    cert = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if key is None:
        raise ConfigError("mail_oauth.certificate_env: không thấy khoá riêng (PRIVATE KEY) trong PEM.",
                          code="config_mail_oauth")
    if thumbprint:
        return {"private_key": key.group(0), "thumbprint": thumbprint.replace(":", "").strip()}
    if cert is None:
        raise ConfigError("mail_oauth.certificate_env: cần cả chứng thư (CERTIFICATE) trong PEM, hoặc đặt "
                          "certificate_thumbprint.", code="config_mail_oauth")
    return {"private_key": key.group(0), "public_certificate": cert.group(0)}


def make_token_source(settings: Settings, protocol: str) -> TokenSource | None:
    """The token source for "imap" or "smtp" when that side has auth = "oauth2"; None for passwords."""
    auth = settings.imap.auth if protocol == "imap" else settings.outgoing.auth
    if auth != "oauth2":
        return None
    o = settings.mail_oauth
    if protocol == "imap":
        mailbox = o.mailbox or settings.imap.username
    else:
        mailbox = o.mailbox or settings.outgoing.smtp_username or settings.imap.username
    if not mailbox:
        raise ConfigError("mail_oauth.mailbox: cần địa chỉ hộp thư của văn phòng (hoặc imap.username).",
                          code="config_mail_oauth")
    if o.provider == "google":
        source = settings.secret(o.google_credentials_env)
        if not source:
            raise ConfigError(f"mail_oauth.google_credentials_env: biến môi trường {o.google_credentials_env} "
                              "chưa có khoá tài khoản dịch vụ Google (JSON).", code="config_mail_oauth")
        try:
            info = json.loads(_read_text_or_path(source, "khoá tài khoản dịch vụ Google"))
        except ValueError:
            raise ConfigError("mail_oauth.google_credentials_env: khoá tài khoản dịch vụ Google không phải JSON.",
                              code="config_mail_oauth") from None
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise ConfigError("mail_oauth.google_credentials_env: cần khoá của một tài khoản dịch vụ "
                              "(type = service_account).", code="config_mail_oauth")
        return GoogleTokenSource(mailbox, info)
    missing = [k for k in ("tenant_id", "client_id") if not getattr(o, k)]
    if missing:
        raise ConfigError(f"mail_oauth.{missing[0]}: cần cho Microsoft 365.", code="config_mail_oauth")
    secret = settings.secret(o.client_secret_env)
    certificate = settings.secret(o.certificate_env)
    if not (secret or certificate):
        raise ConfigError(f"mail_oauth.client_secret_env: biến môi trường {o.client_secret_env} chưa có khoá bí "
                          "mật của ứng dụng (hoặc đặt certificate_env).", code="config_mail_oauth")
    return MicrosoftTokenSource(mailbox, tenant_id=o.tenant_id, client_id=o.client_id, secret=secret,
                                certificate=certificate, thumbprint=o.certificate_thumbprint, login_url=o.login_url)
