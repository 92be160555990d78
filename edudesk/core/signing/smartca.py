"""VNPT SmartCA remote signing (not CSC, though its paths say /csc/): the `Signer` of kind "smartca".

The gateway API (VNPT's "Tài liệu tích hợp VNPT-SmartCA" v1.1; paths and fields as in integrations
stored in the search corpus): every call is a POST of JSON with a bearer token, every answer is wrapped as
{code, codeDesc, message, content}, code 0 meaning success.

- `/auth/token`: OAuth2 token, form encoded.
- `/csc/credentials/list` → [credentialId]; `/csc/credentials/info` {credentialId, certificates: "chain"}
  → content.cert.certificates (base64 DER, the signer's first).
- `/csc/signature/signhash` {credentialId, refTranId, notifyUrl, description, datas: [{name, hash}]}, at
  most 50 hashes (SHA-256, base64) → content.tranId; the person confirms on the SmartCA phone app.
- `/csc/credentials/gettraninfo` {tranId} → content.tranStatus: 4000 waiting, 1 signed (content.documents[i]
  .sig, base64 RSA PKCS#1 v1.5 over the hash, in `datas` order), 4001 expired, 4002 rejected, 4003/4004
  key authorisation or signing failed.

Assumptions (nothing stored says otherwise; check against VNPT's PDF before going live):
- Token: grant_type=client_credentials with the service provider's client_id/client_secret (the
  `[records.smartca]` sp_id / sp_password) plus the subscriber's `user_id` (CCCD), one token per teacher.
  The stored integrations show the password and refresh_token grants of the same endpoint and, for VNPT's
  other API (`/sca/sp769/v1/signatures/sign`, sp_id/sp_password/user_id, sign_files[{data_to_be_signed,
  doc_id, file_type, sign_type}]), the same service-provider-plus-user_id model; `_token_form` is the one
  place to change.
- The status may come in content.tranStatus (documented) or, on some gateways, as the envelope's code;
  both are read.
- A transaction waits about 5 minutes for the person (4001 after that); the token lasts `expires_in`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import aiohttp

from edudesk.core.errors import EdudeskError
from edudesk.core.ports import Clock, SignItem, SignOutcome, SystemClock
from edudesk.core.signing import remote
from edudesk.core.signing.pades import PadesBatch, PadesProfile

PROVIDER = "smartca"
MAX_HASHES = 50  # per signhash transaction, the gateway's limit
SIGNED, WAITING = 1, 4000
REFUSALS = {
    4001: "Yêu cầu ký trên ứng dụng VNPT SmartCA đã hết hạn trước khi được xác nhận; xin gửi lại yêu cầu ký.",
    4002: "Người ký đã từ chối yêu cầu ký trên ứng dụng VNPT SmartCA.",
    4003: "VNPT SmartCA không xác thực được khoá ký của người ký.",
    4004: "VNPT SmartCA ký không thành công.",
}


class SmartCaError(EdudeskError):
    """SmartCA answered with an error (bad credentials, unknown credential, malformed answer)."""

    code = "smartca"


class SmartCaSigner:
    """One teacher's SmartCA credential: sends the hashes for the phone and finishes once confirmed."""

    kind = PROVIDER

    def __init__(self, url: str, client_id: str, client_secret: str, user_id: str, *, credential_id: str = "",
                 notify_url: str = "", clock: Clock | None = None, timeout: float = 30.0,
                 pades: PadesProfile | None = None) -> None:
        self.url = url.rstrip("/")
        self._pades = pades
        self.client_id, self._secret, self.user_id = client_id, client_secret, user_id
        self.credential_id = credential_id
        self.notify_url = notify_url
        self.clock = clock or SystemClock()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[str, datetime] | None = None
        self._credential: remote.RemoteCredential | None = None

    async def certificate(self) -> bytes:
        """The subscriber's signing certificate (DER) from credentials/info."""
        return (await self.credential()).der

    async def chain(self) -> tuple[bytes, ...]:
        """The CA certificates above the signing certificate (DER), as the provider gives them."""
        return tuple(bytes(c.dump()) for c in (await self.credential()).chain)

    async def credential(self) -> remote.RemoteCredential:
        """The signing certificate and its chain (the first credential unless one is configured)."""
        if self._credential is None:
            if not self.credential_id:
                ids = await self._call("/csc/credentials/list", {})
                if not isinstance(ids, list) or not ids:
                    raise SmartCaError("Tài khoản VNPT SmartCA của người ký chưa có chứng thư số nào.")
                self.credential_id = str(ids[0])
            info = await self._call("/csc/credentials/info", {"credentialId": self.credential_id,
                                                              "certificates": "chain", "certInfo": True,
                                                              "authInfo": True})
            try:
                chain = [remote.base64.b64decode(c) for c in info["cert"]["certificates"]]
            except (KeyError, TypeError, ValueError) as e:
                raise SmartCaError("VNPT SmartCA không trả về chứng thư số của người ký.") from e
            self._credential = remote.RemoteCredential.from_der(chain)
        return self._credential

    async def sign(self, items: Sequence[SignItem]) -> SignOutcome:
        """Prepare every item and send its hash; one transaction (one confirmation) per 50 items."""
        if not items:
            return SignOutcome()
        credential = await self.credential()
        batch = PadesBatch(self._pades)
        try:  # at B-LT the chain is validated first: a revoked certificate never reaches the phone
            prepared = await remote.prepare(items, credential, self.clock.now(), batch)
        finally:
            await batch.aclose()
        parts = math.ceil(len(prepared) / MAX_HASHES)
        transactions: list[dict[str, object]] = []
        for part in range(parts):
            chunk = prepared[part * MAX_HASHES:(part + 1) * MAX_HASHES]
            what = f"Ký {len(chunk)} học bạ số" + (f" (phần {part + 1}/{parts})" if parts > 1 else "")
            body: dict[str, object] = {"credentialId": self.credential_id, "refTranId": str(uuid4()),
                                       "description": what,
                                       "datas": [{"name": p.key, "hash": p.hash_b64} for p in chunk]}
            if self.notify_url:
                body["notifyUrl"] = self.notify_url
            content = await self._call("/csc/signature/signhash", body)
            tran_id = content.get("tranId") if isinstance(content, dict) else None
            if not tran_id:
                raise SmartCaError("VNPT SmartCA không trả về mã giao dịch ký.")
            transactions.append({"id": str(tran_id), "first": part * MAX_HASHES, "count": len(chunk)})
        pending, pdfs = remote.dump_pending(PROVIDER, credential, prepared, user_id=self.user_id,
                                            credential_id=self.credential_id, transactions=transactions,
                                            sent_at=self.clock.now().isoformat())
        return SignOutcome(pending=pending, prepared=pdfs)

    async def resume(self, pending: Mapping[str, object], prepared: Sequence[bytes]) -> SignOutcome:
        """Ask once about every transaction: still waiting, refused, or signed (then finish all PDFs)."""
        credential, items = remote.load_pending(pending, prepared, PROVIDER)
        if pending.get("user_id") != self.user_id:
            raise remote.RemoteStateError("pending state of another SmartCA subscriber")
        transactions = pending.get("transactions")
        if not isinstance(transactions, list):
            raise remote.RemoteStateError("pending state without SmartCA transactions")
        signatures: dict[int, bytes] = {}
        waiting = False
        for tran in transactions:
            status, documents = await self._status(str(tran["id"]))
            if status == WAITING:
                waiting = True
                continue
            if status != SIGNED:
                return SignOutcome(refused=REFUSALS.get(status, f"VNPT SmartCA từ chối yêu cầu ký (mã {status})."))
            first, count = int(tran["first"]), int(tran["count"])
            if len(documents) != count:
                raise SmartCaError("VNPT SmartCA trả về số chữ ký không khớp với số hồ sơ đã gửi.")
            for offset, doc in enumerate(documents):
                item = items[first + offset]
                if doc.get("hash") not in (None, item.hash_b64) or not doc.get("sig"):
                    raise SmartCaError("VNPT SmartCA trả về chữ ký không khớp với hồ sơ đã gửi.")
                signatures[first + offset] = remote.base64.b64decode(str(doc["sig"]))
        if waiting:
            return SignOutcome(pending=pending, prepared=tuple(prepared))
        batch = PadesBatch(self._pades)
        try:  # a TSA out of reach raises LtvUnavailable: the poll is tried again, the transaction still signed
            signed = [await remote.finish(item, signatures[i], credential, batch) for i, item in enumerate(items)]
        finally:
            await batch.aclose()
        return SignOutcome(signed=tuple(signed))

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the wire --------------------------------------------------------------------------------------

    async def _status(self, tran_id: str) -> tuple[int, list[dict[str, Any]]]:
        try:
            content = await self._call("/csc/credentials/gettraninfo", {"tranId": tran_id})
        except _Envelope as e:
            if e.status in REFUSALS or e.status == WAITING:
                return e.status, []
            raise SmartCaError(f"VNPT SmartCA báo lỗi khi hỏi giao dịch ký: {e.text}") from e
        if not isinstance(content, dict):
            raise SmartCaError("VNPT SmartCA trả về thông tin giao dịch không đọc được.")
        documents = content.get("documents") or []
        return int(content.get("tranStatus", 0)), [d for d in documents if isinstance(d, dict)]

    def _token_form(self) -> dict[str, str]:
        return {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self._secret,
                "user_id": self.user_id}

    async def _bearer(self) -> str:
        if self._token is None or self._token[1] <= self.clock.now():
            async with self._http().post(self.url + "/auth/token", data=self._token_form()) as response:
                body = await response.json(content_type=None)
            if response.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
                error = body.get("error", response.status) if isinstance(body, dict) else response.status
                raise SmartCaError(f"Không lấy được phiên làm việc với VNPT SmartCA ({error}); kiểm tra sp_id, "
                                   "sp_password và mã người dùng SmartCA (CCCD) của người ký.")
            # A minute early, so a token does not expire between this check and the call.
            lifetime = max(int(body.get("expires_in", 3600)) - 60, 1)
            self._token = (str(body["access_token"]), self.clock.now() + timedelta(seconds=lifetime))
        return self._token[0]

    async def _call(self, path: str, body: Mapping[str, object]) -> Any:
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {await self._bearer()}"}
            async with self._http().post(self.url + path, json=body, headers=headers) as response:
                if response.status == 401 and attempt == 0:
                    self._token = None  # revoked or expired early: one fresh token, then give up
                    continue
                text = await response.text()
            try:
                envelope = json.loads(text)
            except ValueError:
                envelope = None
            if not isinstance(envelope, dict) or "code" not in envelope:
                raise SmartCaError(f"VNPT SmartCA trả lời không đúng định dạng (HTTP {response.status}).")
            if envelope["code"] != 0:
                raise _Envelope(int(envelope["code"]), str(envelope.get("message") or envelope.get("codeDesc")))
            return envelope.get("content")
        raise SmartCaError("VNPT SmartCA từ chối phiên làm việc (401).")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


class _Envelope(SmartCaError):
    """A non-zero code in SmartCA's envelope."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"VNPT SmartCA báo lỗi {code}: {text}")
        self.status, self.text = code, text
