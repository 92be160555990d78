"""A fake of the two token services the office mailbox signs in with, plus RFC 7662 introspection for the
test mail servers (Dovecot's oauth2 passdb, the aiosmtpd XOAUTH2 server), and the `fake_oauth` fixture.

Microsoft identity platform (over HTTPS: msal refuses anything else): the tenant's openid-configuration and
`POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, a client secret or a certificate
assertion (RS256 with `x5t`, PS256 with `x5t#S256`, verified against the registered certificate), scope
`https://outlook.office365.com/.default`; refusals in AAD's shape (`error`, `error_description` starting with
the AADSTS code, `error_codes`, `timestamp`, `trace_id`, `correlation_id`).

Google OAuth 2.0 (`POST /token`): the JWT bearer grant of a service account, RS256-verified against the
account's key (kid, iss, aud, iat/exp), `sub` = the impersonated mailbox, scope `https://mail.google.com/`
allowed only with domain-wide delegation; refusals `{"error": "invalid_grant" | "unauthorized_client", ...}`.

Introspection (`POST /introspect/imap`, `/introspect/smtp`, form `token=`): `{"active": true, "username",
"exp", "scope", "client_id"}` while the token lives (by `now`), is not revoked, carries the protocol's
permission and its app may use the mailbox; else `{"active": false}`. Served on plain HTTP as well, for
Dovecot. Test controls: rotate the secret, disable the app, withdraw consent or delegation, delete the key,
revoke tokens, set the lifetime; `issued` counts the tokens given out.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
import ssl
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from ipaddress import IPv4Address
from pathlib import Path
from typing import Self

import jwt
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.fakes.microsoft_graph import aad_error
from tests.fakes.server import FakeServer

TENANT = "3b9f1c2d-4e5a-4b6c-9d7e-8f9012345678"
CLIENT_ID = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
CLIENT_SECRET = "Mk8~edudesk.mail-secret_value"
MAILBOX = "office@school.test"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
GOOGLE_AUDIENCE = "https://oauth2.googleapis.com/token"  # what google-auth puts in `aud`, whatever token_uri
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ROLES = frozenset({"IMAP.AccessAsApp", "SMTP.SendAsApp"})
ROLE_OF = {"imap": "IMAP.AccessAsApp", "smtp": "SMTP.SendAsApp"}


@cache
def _rsa_key(name: str) -> rsa.RSAPrivateKey:
    # One key per purpose and test session: RSA-2048 costs tens of milliseconds to make.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _self_signed(key: rsa.RSAPrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC) - timedelta(minutes=5)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=365)).sign(key, hashes.SHA256()))


def write_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edudesk fake token service CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_text(_pem_key(key))
    return paths


def unregistered_certificate_pem() -> str:
    """A private key and certificate the Entra app does not know (a renewed certificate never uploaded)."""
    key = _rsa_key("unregistered-certificate")
    return _pem_key(key) + _self_signed(key, "edudesk mail app").public_bytes(serialization.Encoding.PEM).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def google_error(status: int, error: str, description: str) -> web.Response:
    """Google's OAuth 2.0 error answer."""
    return web.json_response({"error": error, "error_description": description}, status=status)


@dataclass
class Issued:
    """One access token as the fake remembers it."""

    provider: str
    client: str
    username: str  # the mailbox it is good for ("" when the app may use none)
    roles: frozenset[str]
    expires: float
    revoked: bool = False


class FakeOAuth(FakeServer):
    """Microsoft's and Google's token endpoints and an introspection endpoint; `url` is HTTPS, `http_url` not.

    One Entra app (TENANT, CLIENT_ID, CLIENT_SECRET or `certificate_pem()`) with IMAP.AccessAsApp and
    SMTP.SendAsApp consented and full access to MAILBOX; one Google service account with delegation for
    https://mail.google.com/ in the domain school.test. Time is `now` (seconds).
    """

    def __init__(self, *, now: Callable[[], float] = time.time, token_lifetime: int = 3599,
                 mailboxes: tuple[str, ...] = (MAILBOX,)) -> None:
        self.now = now
        self.token_lifetime = token_lifetime
        self.tenant, self.client_id, self.client_secret = TENANT, CLIENT_ID, CLIENT_SECRET
        self.mailboxes = {m.lower() for m in mailboxes}  # Google: users of the domain
        self.mailbox_access = {m.lower() for m in mailboxes}  # Microsoft: Add-MailboxPermission done for these
        self.consented = set(ROLES)
        self.app_enabled = True
        self.certificate = _self_signed(_rsa_key("app-certificate"), "edudesk mail app")
        self.google_client_email = "edudesk-mail@edudesk-test.iam.gserviceaccount.com"
        self.google_client_id = "109876543210987654321"
        self.google_key_id = secrets.token_hex(20)
        self.google_key_valid = True
        self.delegated = {GOOGLE_SCOPE}
        self.domains = {"school.test"}
        self.tokens: dict[str, Issued] = {}
        self.token_requests: list[dict[str, str]] = []  # every token request's form (secrets included: tests)
        self.introspections = 0
        self._tmp: Path | None = None
        self._https: web.TCPSite | None = None
        self.https_port = 0
        self.ca_path = Path()

    # -- server ------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The HTTPS base URL (what `login_url` and the key file's token_uri point at)."""
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        """The plain HTTP base URL (Dovecot's introspection_url)."""
        return f"http://127.0.0.1:{self.port}"

    def introspection_url(self, protocol: str = "imap") -> str:
        """Where a mail server asks whether a token is good for `protocol` ("imap" or "smtp")."""
        return f"{self.http_url}/introspect/{protocol}"

    @property
    def google_token_uri(self) -> str:
        """Google's token endpoint on this fake (token_uri of the key file)."""
        return f"{self.url}/token"

    def routes(self, app: web.Application) -> None:
        """The fake's HTTP API."""
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._microsoft_token)
        app.router.add_post("/token", self._google_token)
        app.router.add_post("/introspect/{protocol}", self._introspect)

    async def start(self) -> Self:
        """Listen on two free ports of 127.0.0.1: plain HTTP and HTTPS (certificate of `ca_path`'s CA)."""
        await super().start()
        assert self._runner is not None
        self._tmp = Path(tempfile.mkdtemp(prefix="edudesk-oauth-"))
        self.ca_path, cert, key = write_tls_files(self._tmp)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._https = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await self._https.start()
        server = self._https._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.https_port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        """Close both listeners and remove the TLS files."""
        await super().stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- credentials a test hands to edudesk ---------------------------------------------------------------

    def certificate_pem(self) -> str:
        """The app's private key and certificate in one PEM (what certificate_env holds)."""
        cert = self.certificate.public_bytes(serialization.Encoding.PEM).decode()
        return _pem_key(_rsa_key("app-certificate")) + cert

    def certificate_sha1(self) -> str:
        """The certificate's SHA-1 thumbprint in hex, as the Entra portal shows it."""
        return self.certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - what Entra shows

    def service_account_info(self, **overrides: str) -> dict[str, str]:
        """The service account's key file content, token_uri pointing at this fake."""
        info = {"type": "service_account", "project_id": "edudesk-test", "private_key_id": self.google_key_id,
                "private_key": _pem_key(_rsa_key("google-service-account")),
                "client_email": self.google_client_email, "client_id": self.google_client_id,
                "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": self.google_token_uri}
        info.update(overrides)
        return info

    # -- test controls -----------------------------------------------------------------------------------

    def revoke_tokens(self) -> None:
        """Every token issued so far is refused from now on (new ones are still given)."""
        for issued in self.tokens.values():
            issued.revoked = True

    def revoke(self, token: str) -> None:
        """This one token is refused from now on."""
        self.tokens[token].revoked = True

    def expire_tokens(self) -> None:
        """Every token issued so far runs out now, as if its lifetime had passed."""
        for issued in self.tokens.values():
            issued.expires = min(issued.expires, self.now())

    def rotate_secret(self) -> str:
        """An administrator replaced the app's secret: the old one is refused, its tokens revoked."""
        self.client_secret = "Rt9~" + secrets.token_urlsafe(24)
        self.revoke_tokens()
        return self.client_secret

    def disable_app(self, disabled: bool = True) -> None:
        """The Entra app is switched off (AADSTS7000112), its tokens revoked; False switches it back on."""
        self.app_enabled = not disabled
        if disabled:
            self.revoke_tokens()

    def withdraw_consent(self, role: str) -> None:
        """Admin consent for one application permission is withdrawn: new tokens lack it, old ones revoked."""
        self.consented.discard(role)
        self.revoke_tokens()

    def remove_delegation(self) -> None:
        """The Workspace admin removed the domain-wide delegation; the account's tokens are revoked."""
        self.delegated.discard(GOOGLE_SCOPE)
        self.revoke_tokens()

    def delete_google_key(self) -> None:
        """The service account's key was deleted in the Cloud console (Invalid JWT Signature)."""
        self.google_key_valid = False
        self.revoke_tokens()

    def restore(self) -> None:
        """Everything as at the start (the original secret, consent, delegation and key)."""
        self.client_secret, self.app_enabled, self.consented = CLIENT_SECRET, True, set(ROLES)
        self.delegated, self.google_key_valid = {GOOGLE_SCOPE}, True

    def issued(self, provider: str = "") -> int:
        """How many tokens were given out (by one provider, or all)."""
        return sum(1 for i in self.tokens.values() if not provider or i.provider == provider)

    # -- Microsoft -----------------------------------------------------------------------------------------

    async def _openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant != self.tenant:
            return aad_error(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                             "have the correct tenant ID and are signing into the correct cloud.")
        base = f"{self.url}/{tenant}"
        return web.json_response({
            "token_endpoint": f"{base}/oauth2/v2.0/token", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0", "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"], "tenant_region_scope": "AS"})

    async def _microsoft_token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        tenant = request.match_info["tenant"]
        secret, assertion = form.get("client_secret", ""), form.get("client_assertion", "")
        refusals = [  # in the order the identity platform checks them
            (tenant != self.tenant, 400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make "
             "sure you have the correct tenant ID and are signing into the correct cloud."),
            (form.get("grant_type") != "client_credentials", 400, "unsupported_grant_type", 70003,
             f"The app requested an unsupported grant type '{form.get('grant_type', '')}'."),
            (form.get("client_id") != self.client_id, 400, "unauthorized_client", 700016, "Application with "
             f"identifier '{form.get('client_id', '')}' was not found in the directory '{tenant}'. This can happen "
             "if the application has not been installed by the administrator of the tenant or consented to by any "
             "user in the tenant. You may have sent your authentication request to the wrong tenant."),
            (not (secret or assertion), 401, "invalid_client", 7000216, "'client_assertion', 'client_secret' or "
             "'request' is required for the 'client_credentials' grant type."),
            (bool(secret) and secret != self.client_secret, 401, "invalid_client", 7000215, "Invalid client secret "
             "provided. Ensure the secret being sent in the request is the client secret value, not the client "
             f"secret ID, for a secret added to app '{self.client_id}'."),
        ]
        for refused, status, error, number, text in refusals:
            if refused:
                return aad_error(status, error, number, text)
        if assertion:
            refusal = self._check_assertion(form, f"{self.url}/{tenant}/oauth2/v2.0/token")
            if refusal is not None:
                return refusal
        if not self.app_enabled:
            return aad_error(401, "unauthorized_client", 7000112, f"Application '{self.client_id}'(edudesk mail) "
                             "is disabled.")
        if form.get("scope") != MICROSOFT_SCOPE:
            return aad_error(400, "invalid_scope", 1002012, f"The provided value for scope {form.get('scope')} is "
                             "not valid. Client credential flows must have a scope value with /.default suffixed to "
                             "the resource identifier (application ID URI).")
        mailbox = next(iter(sorted(self.mailbox_access)), "")
        token = self._issue("microsoft", self.client_id, mailbox, frozenset(self.consented))
        return web.json_response({"token_type": "Bearer", "expires_in": self.token_lifetime,
                                  "ext_expires_in": self.token_lifetime, "access_token": token})

    def _check_assertion(self, form: dict[str, str], audience: str) -> web.Response | None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return aad_error(400, "invalid_request", 700023, "Invalid client assertion type.")
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return aad_error(400, "invalid_request", 50027, "JWT token is invalid or malformed.")
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        known = {("RS256", "x5t"): _b64url(hashlib.sha1(der).digest()),  # noqa: S324 - the header's definition
                 ("PS256", "x5t#S256"): _b64url(hashlib.sha256(der).digest())}
        expected = next(((alg, field) for (alg, field) in known if field in header), None)
        sent = str(header.get(expected[1], "")).rstrip("=") if expected else ""  # msal pads, others do not
        if expected is None or sent != known[expected] or header.get("alg") != expected[0]:
            return aad_error(401, "invalid_client", 700027, "Client assertion failed signature validation. "
                             f"The key was not found. [Reason - The key was not found., Thumbprint of key used by "
                             f"client: '{header.get('x5t') or header.get('x5t#S256', '')}']")
        try:
            claims = jwt.decode(assertion, self.certificate.public_key(), algorithms=[expected[0]],  # type: ignore[arg-type]
                                audience=audience, options={"verify_exp": False, "verify_nbf": False,
                                                            "require": ["aud", "iss", "sub", "exp", "jti"]})
        except jwt.InvalidAudienceError:
            return aad_error(401, "invalid_client", 700021, "Client assertion audience claim does not match Realm "
                             "issuer.")
        except jwt.PyJWTError:
            return aad_error(401, "invalid_client", 700027, "Client assertion failed signature validation.")
        if claims["iss"] != self.client_id or claims["sub"] != self.client_id:
            return aad_error(401, "invalid_client", 700023, "Client assertion subject and issuer do not match the "
                             "client id.")
        now = self.now()
        if not (float(claims.get("nbf", now)) - 300 <= now < float(claims["exp"]) + 300):
            return aad_error(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")
        return None

    # -- Google --------------------------------------------------------------------------------------------

    async def _google_token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        if form.get("grant_type") != JWT_BEARER:
            return google_error(400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, _rsa_key("google-service-account").public_key(), algorithms=["RS256"],
                                audience=[GOOGLE_AUDIENCE, self.google_token_uri], options={
                                    "verify_exp": False, "verify_iat": False,
                                    "require": ["iss", "scope", "aud", "iat", "exp"]})
        except jwt.InvalidAudienceError:
            return google_error(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        except jwt.PyJWTError:
            return google_error(400, "invalid_grant", "Invalid JWT Signature.")
        if (not self.google_key_valid or header.get("kid") not in (None, self.google_key_id)
                or claims["iss"] != self.google_client_email):
            return google_error(400, "invalid_grant", "Invalid JWT Signature.")
        # Google checks the assertion's times against its own (real) clock.
        now = time.time()
        iat, exp = int(claims["iat"]), int(claims["exp"])
        if not (iat - 300 <= now < exp) or exp - iat > 3600:
            return google_error(400, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) "
                                "and in a reasonable timeframe. Check your iat and exp values in the JWT claim.")
        subject = str(claims.get("sub", "")).lower()
        if subject.rpartition("@")[2] not in self.domains or subject not in self.mailboxes:
            return google_error(400, "invalid_grant", "Invalid email or User ID")
        scopes = set(str(claims["scope"]).split())
        if not scopes or not scopes <= self.delegated:
            return google_error(401, "unauthorized_client", "Client is unauthorized to retrieve access tokens using "
                                "this method, or client not authorized for any of the scopes requested.")
        roles = frozenset(ROLES) if GOOGLE_SCOPE in scopes else frozenset()
        token = self._issue("google", self.google_client_id, subject, roles)
        return web.json_response({"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"})

    # -- tokens and introspection ------------------------------------------------------------------------

    def _issue(self, provider: str, client: str, username: str, roles: frozenset[str]) -> str:
        prefix = "eyJ0eXAiOiJKV1Qi." if provider == "microsoft" else "ya29."
        token = prefix + secrets.token_urlsafe(32)
        self.tokens[token] = Issued(provider, client, username, roles, self.now() + self.token_lifetime)
        return token

    def check(self, token: str, protocol: str) -> Issued | None:
        """The token's record when it is good for `protocol` right now; None when not."""
        issued = self.tokens.get(token)
        if issued is None or issued.revoked or issued.expires <= self.now():
            return None
        if ROLE_OF.get(protocol) not in issued.roles:
            return None
        if issued.provider == "microsoft" and issued.username not in self.mailbox_access:
            return None
        return issued

    async def _introspect(self, request: web.Request) -> web.Response:
        self.introspections += 1
        form = await request.post()
        issued = self.check(str(form.get("token", "")), request.match_info["protocol"])
        if issued is None:
            return web.json_response({"active": False})
        scope = GOOGLE_SCOPE if issued.provider == "google" else " ".join(sorted(issued.roles))
        return web.json_response({"active": True, "username": issued.username, "client_id": issued.client,
                                  "scope": scope, "token_type": "Bearer", "exp": int(issued.expires),
                                  "jti": str(uuid.uuid4())})


@pytest.fixture(name="fake_oauth")
async def fake_oauth_fixture() -> AsyncIterator[FakeOAuth]:
    """A started FakeOAuth on real time."""
    fake = await FakeOAuth().start()
    yield fake
    await fake.stop()


class MovableClock:
    """A clock for TokenSource and the fake: real time plus whatever a test moved it by (`advance`)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.offset += seconds
