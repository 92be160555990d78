"""A fake VNPT SmartCA gateway (OAuth token + /csc/... signing API) on 127.0.0.1, its test CA and fixture.

It speaks the gateway's wire format (JSON, every answer wrapped as {code, codeDesc, message, content},
code 0 = success): `/auth/token` (form; client credentials plus the subscriber's user_id, bearer tokens
that expire by the injected clock), `/csc/credentials/list` and `/info` (the chain, base64 DER, signer
first), `/csc/signature/signhash` (at most 50 hashes, SHA-256 in base64, a notifyUrl; answers a tranId)
and `/csc/credentials/gettraninfo` (tranStatus 4000 waiting, 1 signed with each document's `sig`, 4001
expired after `transaction_seconds`, 4002 rejected). Subscribers hold real RSA-2048 keys and certificates
issued by `ProviderCa`; the person's phone is the test: `confirm` really signs the hashes, `reject` says no.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from cryptography.x509.oid import NameOID

from edudesk.core.ports import Clock, SystemClock
from tests.fakes.server import FakeServer

MAX_HASHES = 50
WAITING, SIGNED, EXPIRED, REJECTED = 4000, 1, 4001, 4002
STATUS_DESC = {WAITING: "WAITING_FOR_SIGNER_CONFIRM", SIGNED: "SUCCESS", EXPIRED: "EXPIRED",
               REJECTED: "SIGNER_REJECTED"}


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class ProviderCa:
    """A provider's CA (root → issuing CA) that issues subscribers' RSA-2048 certificates; tests trust `root`."""

    def __init__(self, name: str = "VNPT Certification Authority (thử nghiệm)") -> None:
        now = dt.datetime.now(dt.UTC)
        self.root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.root = self._cert(_name(name + " Root", "VNPT Group"), self.root_key.public_key(), None, ca=True,
                               start=now - dt.timedelta(days=1), days=3650)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.issuing = self._cert(_name(name, "VNPT Group"), self.key.public_key(), (self.root, self.root_key),
                                  ca=True, start=now - dt.timedelta(days=1), days=1825)

    def _cert(self, subject: x509.Name, public: rsa.RSAPublicKey, issuer: tuple[x509.Certificate, Any] | None, *,
              ca: bool, start: dt.datetime, days: int) -> x509.Certificate:
        issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (subject, self.root_key)
        usage = dict(digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                     data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                     encipher_only=False, decipher_only=False)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(public)
                   .serial_number(x509.random_serial_number()).not_valid_before(start)
                   .not_valid_after(start + dt.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(**usage), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
        return builder.sign(issuer_key, hashes.SHA256())

    def issue(self, common_name: str,
              org: str = "Trường THPT Lê Quý Đôn") -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
        """A fresh subscriber key and its certificate (one year)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        return key, self._cert(_name(common_name, org), key.public_key(), (self.issuing, self.key), ca=False,
                               start=start, days=365)

    @property
    def root_der(self) -> bytes:
        """The root certificate, DER (what the validation context trusts)."""
        return self.root.public_bytes(serialization.Encoding.DER)

    def chain_b64(self, cert: x509.Certificate) -> list[str]:
        """Signer first, then the issuing CA and the root, base64 DER (as the APIs answer)."""
        return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
                for c in (cert, self.issuing, self.root)]


def sign_hash(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    """RSA PKCS#1 v1.5 over an already computed SHA-256 hash (what a remote signing key does)."""
    return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


@dataclass
class Subscriber:
    """A SmartCA subscriber: the user_id (CCCD), one credential with a real key."""

    user_id: str
    name: str
    credential_id: str
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()  # the CAs above `cert` when another CA issued it (root last)


@dataclass
class Transaction:
    """One signhash request waiting for (or answered by) the person's phone."""

    id: str
    user_id: str
    credential_id: str
    datas: list[dict[str, str]]
    description: str
    notify_url: str
    ref: str
    created: dt.datetime
    status: int = WAITING
    signatures: list[str] = field(default_factory=list)


class SmartCaFail(Exception):
    """An answer in SmartCA's envelope with a non-zero code."""

    def __init__(self, code: int, desc: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.desc, self.message, self.status = code, desc, message, status


class FakeSmartCa(FakeServer):
    """The fake gateway: one service provider (client id/secret), its subscribers and their transactions."""

    def __init__(self, *, clock: Clock | None = None, ca: ProviderCa | None = None, token_seconds: int = 3600,
                 transaction_seconds: float = 300.0) -> None:
        self.clock = clock or SystemClock()
        self.ca = ca or ProviderCa()
        self.client_id = "edudesk-0001.apps.smartcaapi.com"
        self.client_secret = secrets.token_urlsafe(16)
        self.token_seconds = token_seconds
        self.transaction_seconds = transaction_seconds
        self.subscribers: dict[str, Subscriber] = {}
        self.transactions: dict[str, Transaction] = {}
        self.calls: list[tuple[str, Any]] = []
        self.token_requests = 0
        self._tokens: dict[str, tuple[dt.datetime, str]] = {}  # token -> (expiry, user_id)

    def routes(self, app: web.Application) -> None:
        """The fake's HTTP API."""
        app.router.add_post("/auth/token", self._token)
        for path, handler in (("/csc/credentials/list", self._list), ("/csc/credentials/info", self._info),
                              ("/csc/signature/signhash", self._signhash),
                              ("/csc/credentials/gettraninfo", self._traninfo)):
            app.router.add_post(path, self._api(handler))

    # -- the test's side: subscribers and their phones -------------------------------------------------

    def add_subscriber(self, user_id: str, name: str, *, issued: Any = None) -> Subscriber:
        """A teacher with an activated SmartCA certificate (of the provider's CA, or `issued`: a certificate of
        another CA with its key and chain, e.g. a demo CA whose OCSP responder runs)."""
        if issued is not None:
            sub = Subscriber(user_id, name, f"cred-{secrets.token_hex(6)}", issued.key, issued.cert,
                             tuple(issued.chain))
            self.subscribers[user_id] = sub
            return sub
        key, cert = self.ca.issue(name)
        sub = Subscriber(user_id, name, f"cred-{secrets.token_hex(6)}", key, cert)
        self.subscribers[user_id] = sub
        return sub

    def waiting(self, user_id: str = "") -> list[Transaction]:
        """Transactions still waiting for the person (of one subscriber)."""
        return [t for t in self.transactions.values() if t.status == WAITING and not self._expired(t)
                and (not user_id or t.user_id == user_id)]

    def confirm(self, tran_id: str) -> None:
        """The person confirms on the phone: the key signs every hash of the transaction."""
        tran = self.transactions[tran_id]
        if tran.status != WAITING or self._expired(tran):
            raise ValueError(f"transaction {tran_id} is not waiting")
        key = self.subscribers[tran.user_id].key
        tran.signatures = [base64.b64encode(sign_hash(key, base64.b64decode(d["hash"]))).decode() for d in tran.datas]
        tran.status = SIGNED

    def reject(self, tran_id: str) -> None:
        """The person taps "Từ chối"."""
        self.transactions[tran_id].status = REJECTED

    def expire_tokens(self) -> None:
        """Forget every issued access token (the next call with one gets 401)."""
        self._tokens.clear()

    def _expired(self, tran: Transaction) -> bool:
        return self.clock.now() >= tran.created + dt.timedelta(seconds=self.transaction_seconds)

    # -- OAuth -----------------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=400)
        user_id = str(form.get("user_id", ""))
        if user_id not in self.subscribers:
            return web.json_response({"error": "invalid_grant", "error_description": "user_id not found"}, status=400)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = (self.clock.now() + dt.timedelta(seconds=self.token_seconds), user_id)
        return web.json_response({"access_token": token, "token_type": "Bearer", "expires_in": self.token_seconds,
                                  "scope": "sign offline_access"})

    def _api(self, handler: Any) -> Any:
        async def wrapped(request: web.Request) -> web.Response:
            auth = request.headers.get("Authorization", "")
            held = self._tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
            if held is None or held[0] <= self.clock.now():
                return web.Response(status=401, text="Unauthorized")
            try:
                body = await request.json()
            except ValueError:
                body = None
            self.calls.append((request.path, body))
            try:
                if not isinstance(body, dict):
                    raise SmartCaFail(400, "INVALID_REQUEST", "Body must be a JSON object")
                content = handler(self.subscribers[held[1]], body)
            except SmartCaFail as fail:
                return web.json_response({"code": fail.code, "codeDesc": fail.desc, "message": fail.message,
                                          "content": None}, status=fail.status)
            return web.json_response({"code": 0, "codeDesc": "SUCCESS", "message": "Thành công", "content": content})
        return wrapped

    # -- the signing API -------------------------------------------------------------------------------

    def _credential(self, sub: Subscriber, body: dict[str, Any]) -> None:
        if body.get("credentialId") != sub.credential_id:
            raise SmartCaFail(404, "CREDENTIAL_NOT_FOUND", "Không tìm thấy chứng thư số", status=404)

    def _list(self, sub: Subscriber, body: dict[str, Any]) -> list[str]:
        return [sub.credential_id]

    def _info(self, sub: Subscriber, body: dict[str, Any]) -> dict[str, Any]:
        self._credential(sub, body)
        cert = sub.cert
        return {"credentialId": sub.credential_id, "authMode": "EXPLICIT", "scal": "SCAL2", "multisign": MAX_HASHES,
                "key": {"status": "enabled", "alg": ["1.2.840.113549.1.1.11"], "len": 2048},
                "cert": {"status": "valid", "serialNumber": format(cert.serial_number, "x"),
                         "subjectDN": cert.subject.rfc4514_string(), "issuerDN": cert.issuer.rfc4514_string(),
                         "validFrom": cert.not_valid_before_utc.isoformat(),
                         "validTo": cert.not_valid_after_utc.isoformat(),
                         "certificates": self._chain(sub) if body.get("certificates") == "chain"
                         else self._chain(sub)[:1]}}

    def _chain(self, sub: Subscriber) -> list[str]:
        if not sub.chain:
            return self.ca.chain_b64(sub.cert)
        return [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in (sub.cert, *sub.chain)]

    def _signhash(self, sub: Subscriber, body: dict[str, Any]) -> dict[str, str]:
        self._credential(sub, body)
        datas = body.get("datas")
        if not isinstance(datas, list) or not datas:
            raise SmartCaFail(400, "INVALID_REQUEST", "datas is required")
        if len(datas) > MAX_HASHES:
            raise SmartCaFail(400, "MAX_SIGN_DATA_EXCEEDED", f"Tối đa {MAX_HASHES} hash cho một giao dịch")
        for data in datas:
            try:
                ok = isinstance(data, dict) and bool(data.get("name")) and len(base64.b64decode(data["hash"],
                                                                                               validate=True)) == 32
            except (KeyError, ValueError, TypeError):
                ok = False
            if not ok:
                raise SmartCaFail(400, "INVALID_HASH", "Mỗi tài liệu cần name và hash SHA-256 (base64)")
        tran = Transaction(secrets.token_hex(16), sub.user_id, sub.credential_id,
                           [{"name": d["name"], "hash": d["hash"]} for d in datas], str(body.get("description", "")),
                           str(body.get("notifyUrl", "")), str(body.get("refTranId", "")), self.clock.now())
        self.transactions[tran.id] = tran
        return {"tranId": tran.id}

    def _traninfo(self, sub: Subscriber, body: dict[str, Any]) -> dict[str, Any]:
        tran = self.transactions.get(str(body.get("tranId", "")))
        if tran is None or tran.user_id != sub.user_id:
            raise SmartCaFail(404, "TRANSACTION_NOT_FOUND", "Không tìm thấy giao dịch", status=404)
        if tran.status == WAITING and self._expired(tran):
            tran.status = EXPIRED
        documents = [{"name": d["name"], "hash": d["hash"], "sig": tran.signatures[i] if tran.signatures else None}
                     for i, d in enumerate(tran.datas)]
        return {"tranId": tran.id, "refTranId": tran.ref, "credentialId": tran.credential_id, "sub": tran.user_id,
                "tranType": 1, "tranTypeDesc": "SIGN_HASH", "tranStatus": tran.status,
                "tranStatusDesc": STATUS_DESC[tran.status], "reqTime": tran.created.isoformat(),
                "documents": documents}


@pytest.fixture(name="fake_smartca")
async def fake_smartca_fixture() -> AsyncIterator[FakeSmartCa]:
    """A started fake SmartCA gateway on the real clock, no subscribers yet."""
    fake = await FakeSmartCa().start()
    yield fake
    await fake.stop()
