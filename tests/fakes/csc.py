"""A fake Cloud Signature Consortium API v1 (1.0.4.0) remote signing service on 127.0.0.1, and its fixture.

It speaks the v1 wire format: every call a POST of JSON under /csc/v1/, errors as HTTP 400/401 with
{"error": ..., "error_description": ...} (the spec's texts where it gives one).

- `info` (no token): name, region, authType ["basic", "oauth2code"], methods.
- `auth/login` (HTTP Basic user:password) → access_token, expires_in (by the injected clock); or a
  bearer token handed out by `token_for` (as an OAuth2 authorization-code flow would).
- `credentials/list` → credentialIDs of the token's user; `credentials/info` → key {status, algo, len},
  cert {status, certificates (base64 DER, signer first: "none" | "single" | "chain"), DN and dates if
  certInfo}, authMode "implicit", SCAL "1" | "2", multisign.
- `credentials/authorize` {credentialID, numSignatures, hash (required with SCAL 2), description}: at most
  `multisign` signatures; authMode "implicit" holds the call while the person's phone is asked (the
  test's `confirm` / `deny`, or `phone` answering every prompt), answers {SAD, expiresIn}, 400
  access_denied on a no, and `hold_status` (504) once `hold_seconds` pass. A caller that hangs up leaves its
  prompt "abandoned": a later tap on the phone gives nobody a SAD.
- `signatures/signHash` {credentialID, SAD, hash, hashAlgo, signAlgo}: the SAD must be known, of this
  credential, unexpired (`sad_seconds`), bound to these very hashes under SCAL 2, with signatures left
  (numSignatures); at most `multisign` hashes a call, each of the digest length of hashAlgo; the key
  (a DemoPki-issued RSA certificate) really signs, PKCS#1 v1.5 over the hash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from edudesk.core.ports import Clock, SystemClock
from edudesk.core.signing.pki import Credential, DemoPki
from tests.fakes.server import FakeServer

SHA256_RSA, RSA = "1.2.840.113549.1.1.11", "1.2.840.113549.1.1.1"
HASHES: dict[str, hashes.HashAlgorithm] = {"2.16.840.1.101.3.4.2.1": hashes.SHA256(),
                                           "2.16.840.1.101.3.4.2.2": hashes.SHA384(),
                                           "2.16.840.1.101.3.4.2.3": hashes.SHA512()}
SIGN_ALGO_HASH = {SHA256_RSA: "2.16.840.1.101.3.4.2.1"}  # signAlgo that imply their hash
WAITING, CONFIRMED, DENIED, ABANDONED, TIMED_OUT = "waiting", "confirmed", "denied", "abandoned", "timed_out"


class CscFail(Exception):
    """An error answer: HTTP status and the CSC/OAuth2 error body."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _bad(description: str, error: str = "invalid_request") -> CscFail:
    return CscFail(400, error, description)


@dataclass
class Subscriber:
    """A person with a login and one credential whose key the fake holds."""

    user_id: str
    password: str
    credential_id: str
    credential: Credential

    @property
    def key(self) -> rsa.RSAPrivateKey:
        """The credential's RSA key."""
        assert isinstance(self.credential.key, rsa.RSAPrivateKey)
        return self.credential.key


@dataclass
class Prompt:
    """One credentials/authorize call: the push on the person's phone, held until answered."""

    id: str
    user_id: str
    credential_id: str
    num_signatures: int
    hashes: list[str] | None
    description: str
    state: str = WAITING
    settled: asyncio.Event = field(default_factory=asyncio.Event)  # answered, abandoned or timed out


@dataclass
class Sad:
    """Signature activation data: for one credential, so many signatures (these hashes under SCAL 2)."""

    credential_id: str
    remaining: int
    hashes: set[str] | None
    expires: dt.datetime


class FakeCsc(FakeServer):
    """The fake remote signing service: subscribers, tokens, prompts on phones, SADs."""

    handler_cancellation = True  # a client that hangs up on a held authorize cancels it (its prompt is abandoned)

    def __init__(self, pki: DemoPki, *, clock: Clock | None = None, multisign: int = 20, scal: int = 2,
                 sad_seconds: int = 300, token_seconds: int = 3600, hold_seconds: float = 60.0,
                 hold_status: int = 504, auth_mode: str = "implicit") -> None:
        self.pki = pki
        self.clock = clock or SystemClock()
        self.multisign, self.scal = multisign, scal
        self.sad_seconds, self.token_seconds = sad_seconds, token_seconds
        self.hold_seconds, self.hold_status = hold_seconds, hold_status
        self.auth_mode = auth_mode  # only "implicit" is served by authorize; "explicit" wants a PIN
        self.phone: str | None = None  # "confirm" | "deny": the person answers every prompt at once
        self.after_authorize: Callable[[Prompt, str], None] | None = None  # sees (prompt, SAD) before the answer
        self.subscribers: dict[str, Subscriber] = {}
        self.prompts: list[Prompt] = []
        self.sads: dict[str, Sad] = {}
        self.calls: list[tuple[str, Any]] = []
        self._tokens: dict[str, tuple[dt.datetime, str]] = {}
        self._prompted = asyncio.Condition()

    def routes(self, app: web.Application) -> None:
        """The fake's HTTP API."""
        app.router.add_post("/csc/v1/info", self._info)
        app.router.add_post("/csc/v1/auth/login", self._login)
        for name, handler in (("credentials/list", self._list), ("credentials/info", self._credential_info),
                              ("credentials/authorize", self._authorize), ("signatures/signHash", self._sign_hash)):
            app.router.add_post(f"/csc/v1/{name}", self._api(name, handler))

    # -- the test's side -------------------------------------------------------------------------------

    def add_subscriber(self, name: str, *, credential: Credential | None = None) -> Subscriber:
        """A person with a certificate of the demo CA (or the one given) held in the service."""
        cred = credential or self.pki.issue(name)
        sub = Subscriber(f"user{len(self.subscribers) + 1}", secrets.token_urlsafe(12),
                         f"cred-{secrets.token_hex(6)}", cred)
        self.subscribers[sub.user_id] = sub
        return sub

    def token_for(self, sub: Subscriber) -> str:
        """A bearer token for the person (what the OAuth2 flow would have given edudesk)."""
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (self.clock.now() + dt.timedelta(seconds=self.token_seconds), sub.user_id)
        return token

    def revoke_tokens(self) -> None:
        """Forget every token (the next call with one gets 401 invalid_token)."""
        self._tokens.clear()

    def waiting(self) -> list[Prompt]:
        """Prompts on a phone that someone is still waiting for."""
        return [p for p in self.prompts if p.state == WAITING]

    async def next_prompt(self, timeout: float = 10.0) -> Prompt:
        """The first waiting prompt, once there is one."""
        async with self._prompted:
            await asyncio.wait_for(self._prompted.wait_for(self.waiting), timeout)
        return self.waiting()[0]

    def confirm(self, prompt: Prompt) -> None:
        """The person approves on the phone."""
        self._answer(prompt, CONFIRMED)

    def deny(self, prompt: Prompt) -> None:
        """The person taps "decline"."""
        self._answer(prompt, DENIED)

    def endpoint_calls(self, name: str) -> list[Any]:
        """The bodies of the calls made to one endpoint, in order."""
        return [body for endpoint, body in self.calls if endpoint == name]

    def _answer(self, prompt: Prompt, state: str) -> None:
        if prompt.state != WAITING:
            raise ValueError(f"prompt {prompt.id} is {prompt.state}, not waiting")
        prompt.state = state
        prompt.settled.set()

    # -- plumbing --------------------------------------------------------------------------------------

    @staticmethod
    def _error(fail: CscFail) -> web.Response:
        return web.json_response({"error": fail.error, "error_description": fail.description}, status=fail.status)

    def _user(self, request: web.Request) -> Subscriber:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise CscFail(401, "invalid_token", "Missing bearer token")
        held = self._tokens.get(auth.removeprefix("Bearer "))
        if held is None or held[0] <= self.clock.now():
            raise CscFail(401, "invalid_token", "The access token is not valid")
        return self.subscribers[held[1]]

    def _api(self, name: str, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            try:
                sub = self._user(request)
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                self.calls.append((name, body))
                if not isinstance(body, dict):
                    raise _bad("The request body must be a JSON object")
                return web.json_response(await handler(sub, body))
            except CscFail as fail:
                return self._error(fail)
        return wrapped

    def _own_credential(self, sub: Subscriber, body: dict[str, Any]) -> None:
        credential_id = body.get("credentialID")
        if not isinstance(credential_id, str):
            raise _bad("Missing (or invalid type) string parameter credentialID")
        if credential_id != sub.credential_id:
            raise _bad("Invalid parameter credentialID")

    # -- service and auth ------------------------------------------------------------------------------

    async def _info(self, request: web.Request) -> web.Response:
        self.calls.append(("info", None))
        return web.json_response({
            "specs": "1.0.4.0", "name": "Fake CSC", "logo": "", "region": "VN", "lang": "vi-VN",
            "description": "A fake remote signing service for edudesk's tests", "authType": ["basic", "oauth2code"],
            "oauth2": self.url + "/oauth2", "methods": ["auth/login", "credentials/list", "credentials/info",
                                                        "credentials/authorize", "signatures/signHash"]})

    async def _login(self, request: web.Request) -> web.Response:
        self.calls.append(("auth/login", None))
        auth = request.headers.get("Authorization", "")
        try:
            user, _, password = base64.b64decode(auth.removeprefix("Basic "), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        sub = self.subscribers.get(user)
        if not auth.startswith("Basic ") or sub is None or not secrets.compare_digest(sub.password, password):
            return self._error(CscFail(400, "authentication_error", "An error occurred during authentication"))
        return web.json_response({"access_token": self.token_for(sub), "expires_in": self.token_seconds})

    # -- credentials -----------------------------------------------------------------------------------

    async def _list(self, sub: Subscriber, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("userID") not in (None, sub.user_id):
            raise _bad("Invalid parameter userID")
        max_results = body.get("maxResults", 10)
        if not isinstance(max_results, int) or max_results < 1:
            raise _bad("Invalid parameter maxResults")
        return {"credentialIDs": [sub.credential_id][:max_results]}

    async def _credential_info(self, sub: Subscriber, body: dict[str, Any]) -> dict[str, Any]:
        self._own_credential(sub, body)
        which = body.get("certificates", "single")
        if which not in ("none", "single", "chain"):
            raise _bad("Invalid parameter certificates")
        cred = sub.credential
        ders = {"none": [], "single": [cred.der], "chain": [cred.der, *cred.chain_der]}[which]
        cert: dict[str, Any] = {"status": "valid" if cred.cert.not_valid_after_utc > self.clock.now() else "expired",
                                "certificates": [base64.b64encode(d).decode() for d in ders]}
        if body.get("certInfo"):
            cert.update(issuerDN=cred.cert.issuer.rfc4514_string(), subjectDN=cred.cert.subject.rfc4514_string(),
                        serialNumber=format(cred.serial, "x"),
                        validFrom=cred.cert.not_valid_before_utc.strftime("%Y%m%d%H%M%SZ"),
                        validTo=cred.cert.not_valid_after_utc.strftime("%Y%m%d%H%M%SZ"))
        return {"description": f"Chữ ký số của {cred.name}", "lang": "vi-VN",
                "key": {"status": "enabled", "algo": [SHA256_RSA, RSA], "len": sub.key.key_size},
                "cert": cert, "authMode": self.auth_mode, "SCAL": str(self.scal), "multisign": self.multisign}

    async def _authorize(self, sub: Subscriber, body: dict[str, Any]) -> dict[str, Any]:
        self._own_credential(sub, body)
        num = body.get("numSignatures")
        if not isinstance(num, int) or isinstance(num, bool) or num < 1:
            raise _bad("Missing (or invalid type) integer parameter numSignatures")
        if num > self.multisign:
            raise _bad("Numbers of signatures too high")
        pinned = body.get("hash")
        if self.scal == 2 or pinned is not None:
            if not isinstance(pinned, list) or not pinned or not all(isinstance(h, str) for h in pinned):
                raise _bad("Missing (or invalid type) array parameter hash")
            if len(pinned) != num:
                raise _bad("Invalid parameter numSignatures: it must equal the number of hashes")
            for h in pinned:
                _decode(h)
        if self.auth_mode == "explicit" and not isinstance(body.get("PIN"), str):
            raise _bad("Missing (or invalid type) string parameter PIN")
        prompt = Prompt(secrets.token_hex(8), sub.user_id, sub.credential_id, num,
                        list(pinned) if isinstance(pinned, list) else None, str(body.get("description", "")))
        async with self._prompted:
            self.prompts.append(prompt)
            self._prompted.notify_all()
        if self.phone is not None:
            self._answer(prompt, CONFIRMED if self.phone == "confirm" else DENIED)
        try:
            await asyncio.wait_for(prompt.settled.wait(), self.hold_seconds)
        except TimeoutError:
            prompt.state = TIMED_OUT
            prompt.settled.set()
            raise CscFail(self.hold_status, "expired_request",
                          "The user did not authorize the request in time") from None
        except asyncio.CancelledError:
            prompt.state = ABANDONED  # the caller hung up: nobody gets a SAD from a later tap
            prompt.settled.set()
            raise
        if prompt.state == DENIED:
            raise CscFail(400, "access_denied", "The user denied the authorization request")
        sad = secrets.token_urlsafe(32)
        self.sads[sad] = Sad(sub.credential_id, num, set(prompt.hashes) if prompt.hashes is not None else None,
                             self.clock.now() + dt.timedelta(seconds=self.sad_seconds))
        if self.after_authorize is not None:
            self.after_authorize(prompt, sad)
        return {"SAD": sad, "expiresIn": self.sad_seconds}

    # -- signing ---------------------------------------------------------------------------------------

    async def _sign_hash(self, sub: Subscriber, body: dict[str, Any]) -> dict[str, Any]:
        self._own_credential(sub, body)
        token = body.get("SAD")
        if not isinstance(token, str):
            raise _bad("Missing (or invalid type) string parameter SAD")
        sad = self.sads.get(token)
        if sad is None or sad.credential_id != sub.credential_id:
            raise _bad("Invalid parameter SAD")
        if sad.expires <= self.clock.now():
            del self.sads[token]
            raise _bad("SAD expired")
        hash_list = body.get("hash")
        if not isinstance(hash_list, list) or not all(isinstance(h, str) for h in hash_list):
            raise _bad("Missing (or invalid type) array parameter hash")
        if not hash_list:
            raise _bad("Empty hash array")
        if len(hash_list) > self.multisign:
            raise _bad(f"Numbers of signatures too high: at most {self.multisign} hashes per call")
        if len(hash_list) > sad.remaining:
            raise _bad(f"Numbers of signatures too high: the SAD allows {sad.remaining} more")
        sign_algo = body.get("signAlgo")
        if not isinstance(sign_algo, str):
            raise _bad("Missing (or invalid type) string parameter signAlgo")
        if sign_algo not in (SHA256_RSA, RSA):
            raise _bad("Invalid parameter signAlgo")
        hash_algo = body.get("hashAlgo", SIGN_ALGO_HASH.get(sign_algo))
        if not isinstance(hash_algo, str):
            raise _bad("Missing (or invalid type) string parameter hashAlgo")
        if hash_algo not in HASHES or SIGN_ALGO_HASH.get(sign_algo, hash_algo) != hash_algo:
            raise _bad("Invalid parameter hashAlgo")
        algorithm = HASHES[hash_algo]
        digests = [_decode(h) for h in hash_list]
        if any(len(d) != algorithm.digest_size for d in digests):
            raise _bad("Invalid digest value length")
        if sad.hashes is not None and not set(hash_list) <= sad.hashes:
            raise _bad("Hash is not authorized by the SAD")
        if sub.credential.cert.not_valid_after_utc <= self.clock.now():
            raise _bad("Signing certificate is expired")
        sad.remaining -= len(hash_list)
        if sad.hashes is not None:
            sad.hashes -= set(hash_list)
        if sad.remaining == 0:
            del self.sads[token]
        signatures = [sub.key.sign(d, padding.PKCS1v15(), utils.Prehashed(algorithm)) for d in digests]
        return {"signatures": [base64.b64encode(s).decode() for s in signatures]}


def _decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("Invalid Base64 hash string parameter") from None


@pytest.fixture(name="fake_csc")
async def fake_csc_fixture() -> AsyncIterator[FakeCsc]:
    """A started fake CSC service on the real clock with a fresh demo CA, no subscribers yet."""
    fake = await FakeCsc(DemoPki.create()).start()
    yield fake
    await fake.stop()
