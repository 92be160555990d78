"""A real aiosmtpd submission server that signs senders in with bearer tokens (SASL XOAUTH2 and OAUTHBEARER,
after STARTTLS), checking each token by RFC 7662 introspection, and keeps what it receives.

It behaves as Microsoft 365's and Gmail's submission servers do: AUTH only over TLS (unless `require_tls`
is off), MAIL refused before AUTH, and a refused token answered first with a base64 JSON challenge
(`{"status":"401","schemes":"bearer",...}`) that the client must acknowledge with an empty line, then
`535 5.7.8`.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import ssl
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from tests.fakes.oauth_tokens import write_tls_files
from tests.servers.smtp_sink import SmtpSink, _Handler

REFUSED_CHALLENGE = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}


def parse_bearer(mechanism: str, blob: bytes) -> tuple[str, str] | None:
    """(user, token) of an XOAUTH2 or OAUTHBEARER initial response; None when it is not well formed."""
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if mechanism == "OAUTHBEARER":
        header, _, rest = text.partition("\x01")
        parts = header.split(",")
        if len(parts) < 3 or parts[0] not in ("n", "y"):
            return None
        user = parts[1].removeprefix("a=").replace("=2C", ",").replace("=3D", "=")
        fields = rest
    else:
        fields = text
    values = dict(p.split("=", 1) for p in fields.split("\x01") if "=" in p)
    user = values.get("user", "") if mechanism == "XOAUTH2" else user
    auth = values.get("auth", "")
    if not auth.startswith("Bearer ") or not user or not text.endswith("\x01\x01"):
        return None
    return user, auth.removeprefix("Bearer ")


class _OAuthHandler(_Handler):
    sink: OAuthSmtpServer

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER")

    async def _bearer(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        parsed = parse_bearer(mechanism, blob)
        if parsed is not None and await self.sink.token_is_good(*parsed):
            self.sink.logins.append((mechanism, parsed[0]))
            return AuthResult(success=True, auth_data=parsed[0])
        self.sink.refusals += 1
        # The error comes as a challenge first; whatever the client answers, the login then fails.
        answer = await server.challenge_auth(json.dumps(REFUSED_CHALLENGE))
        if answer is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message="535 5.7.8 Username and Password not accepted.")


class OAuthSmtpServer(SmtpSink):
    """aiosmtpd on its own thread and a free port, AUTH by bearer token only; `logins` lists who signed in
    (mechanism, user), `refusals` counts refused tokens, `messages` what arrived. With `require_tls` (the
    default) it offers STARTTLS with a certificate of `ca_path`'s CA and AUTH only after it."""

    def __init__(self, introspection_url: str, *, require_tls: bool = True) -> None:
        super().__init__()
        self.introspection_url = introspection_url
        self.logins: list[tuple[str, str]] = []
        self.refusals = 0
        self._tmp = Path(tempfile.mkdtemp(prefix="edudesk-smtp-oauth-"))
        self.ca_path, cert, key = write_tls_files(self._tmp)
        kwargs: dict[str, Any] = {"auth_required": True, "auth_require_tls": require_tls,
                                  "auth_exclude_mechanism": ["LOGIN", "PLAIN"]}
        if require_tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert, key)
            kwargs["tls_context"] = context
        self._controller = Controller(_OAuthHandler(self), hostname=self.host, port=self.port, **kwargs)

    def __enter__(self) -> OAuthSmtpServer:
        self.start()
        return self

    def client_tls_context(self) -> ssl.SSLContext:
        """A client context trusting this server's certificate (for STARTTLS)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    def stop(self) -> None:
        """Stop listening and remove the certificate files."""
        super().stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    async def token_is_good(self, user: str, token: str) -> bool:
        """Ask the token server whether the token is active and belongs to `user`."""
        async with aiohttp.ClientSession() as session, session.post(
                self.introspection_url, data={"token": token}, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            answer = await resp.json()
        return bool(answer.get("active")) and str(answer.get("username", "")).lower() == user.lower()
