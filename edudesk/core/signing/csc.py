"""Remote signing over the Cloud Signature Consortium API v1 (1.0.4.0): the `Signer` of kind "csc".

The hash-out flow of `core.signing.remote` prepares every record; pyHanko's CSC client makes the provider
calls: `fetch_certs_in_csc_credential` (credentials/info: chain, key algorithms, `multisign`, SCAL),
`CSCAuthorizationManager.format_csc_auth_request` / `parse_csc_auth_response` (credentials/authorize with
numSignatures and, when SCAL 2 asks for it, the hashes the SAD is bound to) and `CSCSigner` (one
signatures/signHash per batch: `batch_size` hashes collected, then one explicit `commit`). A batch is as
large as the credential allows (`multisign`, or a smaller configured `batch_size`): one authorisation, so one
confirmation by the person, covers the whole batch.

Waiting, honestly. CSC v1 has no transaction to poll: credentials/authorize either answers a SAD or fails.
With authMode "implicit" the provider asks the person itself (a push to a phone) while the HTTP call is
held, and gives up after a while (a gateway timeout, 504 or 408: assumed, no provider's document stored
says which status a given provider answers). So a batch whose
authorisation times out (our `authorize_timeout`, HTTP 504 or 408) is *pending*: `sign` returns
`SignOutcome(pending, prepared)` from `remote.dump_pending` with the signatures of the batches already done
(not secret) and `None` for the rest. `resume` — in a new process after a restart too — asks
credentials/authorize again for the remaining batches over the same prepared hashes, which means a new
prompt on the phone: an approval given after our call gave up is lost on the provider's side, as CSC v1 has
no way to fetch it. No SAD is ever stored (short-lived, secret); the bearer token is never stored either.
"access_denied" from authorize is the person's no (`refused`). Explicit PIN/OTP credentials are not
supported: edudesk has no place to ask the person for them, so a credential whose authMode is not
"implicit" is refused when it is read (at registration), not at the first signature.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.csc_signer import (
    CSCAuthorizationInfo,
    CSCAuthorizationManager,
    CSCCredentialInfo,
    CSCServiceSessionInfo,
    CSCSigner,
    fetch_certs_in_csc_credential,
)

from edudesk.core.errors import EdudeskError
from edudesk.core.ports import Clock, SignItem, SignOutcome, SystemClock
from edudesk.core.signing import remote, spec
from edudesk.core.signing.pades import LtvUnavailable, PadesBatch, PadesProfile

__all__ = ["CscError", "CscRefused", "CscSigner", "CscWaiting"]

PROVIDER = "csc"
WAIT_STATUSES = (408, 504)  # authorize held until the provider (or its gateway) gave up on the person


class CscError(EdudeskError):
    """The CSC provider refused a call or answered nonsense (token, credential, SAD, limits)."""

    code = "csc"


class CscWaiting(CscError):
    """credentials/authorize did not complete in time: the person has not confirmed yet."""

    code = "csc_waiting"


class CscRefused(CscError):
    """The person (or the provider on their behalf) declined the authorisation."""

    code = "csc_refused"


def translate(endpoint: str, status: int, body: object) -> CscError:
    """The CscError (Vietnamese) for a CSC error answer: {error, error_description} with an HTTP status."""
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    detail = str(body.get("error_description", "")) if isinstance(body, dict) else ""
    if status == 401 or error == "invalid_token":
        return CscError("Mã truy cập (token) của dịch vụ ký số từ xa (CSC) đã hết hạn hoặc bị thu hồi; "
                        "xin cấp lại token cho edudesk.", code="csc_token")
    if endpoint == "credentials/authorize" and status in WAIT_STATUSES:
        return CscWaiting("Người ký chưa xác nhận yêu cầu ký trên ứng dụng của nhà cung cấp.")
    if error == "access_denied":
        return CscRefused("Người ký đã từ chối yêu cầu ký số từ xa.")
    if "sad" in detail.lower() and "expired" in detail.lower():
        return CscError("Xác nhận ký (SAD) đã hết hạn trước khi ký xong; xin gửi lại yêu cầu ký.", code="csc_sad")
    if "sad" in detail.lower():  # "Invalid parameter SAD", "Hash is not authorized by the SAD"
        return CscError(f"Dịch vụ ký số từ xa (CSC) không chấp nhận xác nhận ký (SAD) cho các hồ sơ này ({detail}); "
                        "xin gửi lại yêu cầu ký.", code="csc_sad")
    if status >= 500:
        return CscError(f"Dịch vụ ký số từ xa (CSC) đang gặp lỗi (HTTP {status}); xin thử lại sau.")
    return CscError(f"Dịch vụ ký số từ xa (CSC) từ chối yêu cầu {endpoint} (HTTP {status}, {error or 'lỗi'}: "
                    f"{detail or 'không có mô tả'}).")


class _Answer:
    """A successful answer, read already (what pyHanko awaits `.json()` on)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    async def json(self) -> Any:
        """The JSON body."""
        return self.data


class CscWire:
    """The HTTP side, shaped like the part of aiohttp's session pyHanko uses: errors read and translated."""

    def __init__(self, session: aiohttp.ClientSession | None, timeout: float) -> None:
        self._session, self._own = session, session is None
        self._timeout = timeout

    def post(self, url: str, *, headers: Mapping[str, str], json: object, raise_for_status: bool = True,
             timeout: aiohttp.ClientTimeout | None = None) -> _Post:
        """An `async with` POST of JSON (what pyHanko's CSC client calls)."""
        return _Post(self, url, headers, json, timeout)

    async def call(self, url: str, body: object, *, headers: Mapping[str, str], timeout: float | None = None) -> Any:
        """POST JSON, the decoded answer (a dict) or the translated CscError."""
        async with self.post(url, headers=headers, json=body,
                             timeout=aiohttp.ClientTimeout(total=timeout or self._timeout)) as answer:
            data = await answer.json()
        if not isinstance(data, dict):
            raise CscError("Dịch vụ ký số từ xa (CSC) trả lời không đúng định dạng.")
        return data

    async def request(self, url: str, headers: Mapping[str, str], body: object,
                      timeout: aiohttp.ClientTimeout | None) -> _Answer:
        """One POST; CscWaiting when an authorize call times out, CscError for the rest."""
        endpoint = url.split("/csc/v1/", 1)[-1]
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(url, headers=dict(headers), json=body,
                                          timeout=timeout or aiohttp.ClientTimeout(total=self._timeout)) as response:
                text = await response.text()
        except TimeoutError as e:
            if endpoint == "credentials/authorize":
                raise CscWaiting("Người ký chưa xác nhận yêu cầu ký trên ứng dụng của nhà cung cấp.") from e
            raise CscError(f"Dịch vụ ký số từ xa (CSC) không trả lời kịp ({endpoint}).") from e
        except aiohttp.ClientError as e:
            raise CscError(f"Không kết nối được dịch vụ ký số từ xa (CSC) ({endpoint}).") from e
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if response.status >= 400:
            raise translate(endpoint, response.status, data)
        return _Answer(data)

    async def close(self) -> None:
        """Close the session if it was made here."""
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None


class _Post:
    def __init__(self, wire: CscWire, url: str, headers: Mapping[str, str], body: object,
                 timeout: aiohttp.ClientTimeout | None) -> None:
        self.wire, self.url, self.headers, self.body, self.timeout = wire, url, headers, body, timeout

    async def __aenter__(self) -> _Answer:
        return await self.wire.request(self.url, self.headers, self.body, self.timeout)

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass(frozen=True)
class _SessionInfo(CSCServiceSessionInfo):
    """pyHanko's session info with the bearer token kept out of its repr."""

    oauth_token: str | None = field(default=None, repr=False)


class _Authorization(CSCAuthorizationManager):
    """credentials/authorize for one batch: numSignatures, the hashes when the SAD must be bound to them."""

    def __init__(self, session_info: CSCServiceSessionInfo, credential_info: CSCCredentialInfo, wire: CscWire,
                 description: str, timeout: float) -> None:
        super().__init__(session_info, credential_info)
        self.wire, self.description, self.timeout = wire, description, timeout

    async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
        """Ask the provider (and through it the person) for a SAD covering these hashes."""
        pinned = hash_b64s if self.credential_info.hash_pinning_required else None
        body = self.format_csc_auth_request(num_signatures=len(hash_b64s), hash_b64s=pinned,
                                            description=self.description)
        answer = await self.wire.call(self.csc_session_info.endpoint_url("credentials/authorize"), body,
                                      headers=self.auth_headers, timeout=self.timeout)
        try:
            return self.parse_csc_auth_response(answer)
        except SigningError as e:
            raise CscError("Dịch vụ ký số từ xa (CSC) không trả về dữ liệu xác nhận ký (SAD).") from e


class CscSigner:
    """One CSC credential: prepares the records, has each batch authorised and signed, finishes the PDFs."""

    kind = PROVIDER

    def __init__(self, url: str, token: str, credential_id: str = "", *, batch_size: int | None = None,
                 session: aiohttp.ClientSession | None = None, clock: Clock | None = None,
                 authorize_timeout: float = 120.0, timeout: float = 30.0, pades: PadesProfile | None = None) -> None:
        self.url = url.rstrip("/").removesuffix("/csc/v1")
        self._pades = pades
        self._token = token
        self.credential_id = credential_id
        self.batch_size = batch_size
        self.clock = clock or SystemClock()
        self.authorize_timeout, self.timeout = authorize_timeout, timeout
        self._wire = CscWire(session, timeout)
        self._info: CSCCredentialInfo | None = None

    def __repr__(self) -> str:
        return f"CscSigner(url={self.url!r}, credential_id={self.credential_id!r})"

    async def certificate(self) -> bytes:
        """The signing certificate (DER) from credentials/info."""
        return (await self._credential())[1].der

    async def chain(self) -> tuple[bytes, ...]:
        """The CA certificates above the signing certificate (DER), as the provider gives them."""
        return tuple(bytes(c.dump()) for c in (await self._credential())[1].chain)

    async def credential_info(self) -> CSCCredentialInfo:
        """pyHanko's view of the credential (chain, algorithms, multisign, SCAL), fetched once."""
        if self._info is None:
            if not self.credential_id:
                answer = await self._wire.call(self._session_info().endpoint_url("credentials/list"),
                                               {"maxResults": 10}, headers=self._session_info().auth_headers)
                ids = answer.get("credentialIDs")
                if not isinstance(ids, list) or not ids:
                    raise CscError("Tài khoản ký số từ xa (CSC) của người ký chưa có chứng thư số nào.")
                self.credential_id = str(ids[0])
            try:
                info = await fetch_certs_in_csc_credential(cast(aiohttp.ClientSession, self._wire),
                                                           self._session_info(), timeout=int(self.timeout))
            except (SigningError, KeyError, TypeError, ValueError) as e:  # pyHanko reads the answer unguarded
                raise CscError("Dịch vụ ký số từ xa (CSC) không trả về đủ thông tin chứng thư số "
                               "(chứng thư, thuật toán, số chữ ký mỗi lần).") from e
            mode = str(info.response_data.get("authMode", "implicit"))
            if mode != "implicit":
                raise CscError(f"Chứng thư số từ xa (CSC) này cần xác thực kiểu \"{mode}\" (PIN/OTP hoặc OAuth2 "
                               "cho từng lần ký); edudesk chỉ hỗ trợ kiểu \"implicit\" (xác nhận trên điện thoại).",
                               code="csc_auth_mode")
            self._info = info
        return self._info

    async def sign(self, items: Sequence[SignItem]) -> SignOutcome:
        """Prepare every item, then one authorisation and one signHash per batch (pending if one waits)."""
        if not items:
            return SignOutcome()
        info, credential = await self._credential()
        batch = PadesBatch(self._pades)
        try:
            prepared = await remote.prepare(items, credential, self.clock.now(), batch)
            return await self._run(info, credential, prepared, [None] * len(prepared), 1,
                                   self.clock.now().isoformat(), batch)
        finally:
            await batch.aclose()

    async def resume(self, pending: Mapping[str, object], prepared: Sequence[bytes]) -> SignOutcome:
        """Authorise and sign the batches still unsigned (a new prompt for the person), then finish."""
        credential, items = remote.load_pending(pending, prepared, PROVIDER)
        if pending.get("credential_id") != self.credential_id and self.credential_id:
            raise remote.RemoteStateError("pending state of another CSC credential")
        self.credential_id = str(pending.get("credential_id"))
        info, current = await self._credential()
        if current.der != credential.der:
            raise remote.RemoteStateError("the CSC credential's certificate changed since the items were prepared")
        stored = pending.get("signatures")
        if not isinstance(stored, list) or len(stored) != len(items):
            raise remote.RemoteStateError("pending state without one signature slot per item")
        signatures = [base64.b64decode(s, validate=True) if isinstance(s, str) else None for s in stored]
        attempts = pending.get("attempts")
        batch = PadesBatch(self._pades)
        try:
            return await self._run(info, credential, items, signatures,
                                   (attempts if isinstance(attempts, int) else 1) + 1, str(pending.get("sent_at", "")),
                                   batch)
        finally:
            await batch.aclose()

    async def close(self) -> None:
        """Close the HTTP session if this signer opened it."""
        await self._wire.close()

    # -- batches ---------------------------------------------------------------------------------------

    async def _credential(self) -> tuple[CSCCredentialInfo, remote.RemoteCredential]:
        info = await self.credential_info()
        return info, remote.RemoteCredential(info.signing_cert, tuple(info.chain))

    def _batch(self, info: CSCCredentialInfo) -> int:
        allowed = max(info.max_batch_size, 1)
        return min(self.batch_size, allowed) if self.batch_size else allowed

    async def _run(self, info: CSCCredentialInfo, credential: remote.RemoteCredential, prepared: list[remote.Prepared],
                   signatures: list[bytes | None], attempts: int, sent_at: str, batch: PadesBatch) -> SignOutcome:
        remaining = [i for i, s in enumerate(signatures) if s is None]
        size = self._batch(info)
        parts = [remaining[n:n + size] for n in range(0, len(remaining), size)]
        for number, part in enumerate(parts, 1):
            what = f"Ký {len(part)} học bạ số" + (f" (phần {number}/{len(parts)})" if len(parts) > 1 else "")
            try:
                done = await self._sign_batch(info, [prepared[i] for i in part], what)
            except CscWaiting:
                return self._pending(credential, prepared, signatures, size, attempts, sent_at)
            except CscRefused as e:
                return SignOutcome(refused=e.message)
            for i, signature in zip(part, done, strict=True):
                signatures[i] = signature
        try:
            signed = [await remote.finish(p, cast(bytes, s), credential, batch)
                      for p, s in zip(prepared, signatures, strict=True)]
        except LtvUnavailable:
            # The person said yes and every signature is here: kept, so finishing is tried again when the TSA or
            # the revocation service answers, without asking the phone again.
            return self._pending(credential, prepared, signatures, size, attempts, sent_at)
        return SignOutcome(signed=tuple(signed))

    def _pending(self, credential: remote.RemoteCredential, prepared: list[remote.Prepared],
                 signatures: list[bytes | None], size: int, attempts: int, sent_at: str) -> SignOutcome:
        state = [base64.b64encode(s).decode("ascii") if s is not None else None for s in signatures]
        pending, pdfs = remote.dump_pending(PROVIDER, credential, prepared, credential_id=self.credential_id,
                                            batch=size, signatures=state, attempts=attempts, sent_at=sent_at)
        return SignOutcome(pending=pending, prepared=pdfs)

    async def _sign_batch(self, info: CSCCredentialInfo, batch: list[remote.Prepared], what: str) -> list[bytes]:
        """pyHanko's CSCSigner with one batch of exactly these hashes, committed once (one signHash)."""
        manager = _Authorization(self._session_info(), info, self._wire, what, self.authorize_timeout)
        signer = CSCSigner(cast(aiohttp.ClientSession, self._wire), manager, sign_timeout=int(self.timeout),
                           batch_size=len(batch), batch_autocommit=False)

        async def commit() -> None:
            await asyncio.sleep(0)  # every async_sign_raw below has put its hash into the batch by now
            await signer.commit()

        results: list[Any] = await asyncio.gather(
            *(signer.async_sign_raw(p.tbs, spec.MD_ALGORITHM) for p in batch), commit(), return_exceptions=True)
        failure = results[-1]
        if isinstance(failure, CscError):
            raise failure
        if isinstance(failure, BaseException):
            raise CscError("Dịch vụ ký số từ xa (CSC) trả về chữ ký không đọc được.") from failure
        for result in results[:-1]:
            if not isinstance(result, bytes):
                raise CscError("Dịch vụ ký số từ xa (CSC) không trả về đủ chữ ký cho các hồ sơ đã gửi.") from result
        return cast(list[bytes], results[:-1])

    def _session_info(self) -> CSCServiceSessionInfo:
        return _SessionInfo(service_url=self.url, credential_id=self.credential_id, oauth_token=self._token)
