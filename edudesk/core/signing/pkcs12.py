"""`Pkcs12Signer`: signatures with a software key from a PKCS#12 file (a teacher's .p12/.pfx, the demo
credentials, the school's key when it has no token). The key is parsed once; batches go to the shared
`SigningPool` when there is one, else they are signed in a thread of this process.

The passphrase is kept only to hand the credential to the pool's workers; it is never logged nor shown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from edudesk.core.errors import EdudeskError
from edudesk.core.ports import SignItem, SignOutcome
from edudesk.core.signing.engine import LocalCredential, SigningPool, cached_signer, sign_items
from edudesk.core.signing.pades import PadesProfile

log = logging.getLogger(__name__)


class Pkcs12Error(EdudeskError):
    """The PKCS#12 file cannot be opened (wrong passphrase, broken file) or refused to sign."""

    code = "pkcs12"


def _well_formed(data: bytes) -> bool:
    """Whether `data` parses as a PKCS#12 PFX (then a refusal to open it is the passphrase's fault)."""
    from asn1crypto import pkcs12

    try:
        pfx = pkcs12.Pfx.load(data, strict=True)
        return pfx["auth_safe"]["content_type"].native == "data" and bool(pfx["auth_safe"]["content"].native)
    except (ValueError, TypeError, KeyError):
        return False


def _open(credential: LocalCredential) -> Any:
    """The loaded signer, or a Vietnamese Pkcs12Error (nothing of the passphrase in it)."""
    try:
        return cached_signer(credential)
    except (ValueError, TypeError, KeyError):
        pass  # cryptography says "Invalid password or PKCS12 data" for both: tell them apart below
    if _well_formed(credential.pkcs12):
        raise Pkcs12Error("Mật khẩu của tệp chứng thư số (PKCS#12) không đúng.", code="pkcs12_passphrase")
    raise Pkcs12Error("Tệp chứng thư số (PKCS#12) bị hỏng hoặc không có khoá ký và chứng thư.", code="pkcs12_file")


def _refused(exc: Exception, items: Sequence[SignItem]) -> Pkcs12Error:
    """pyHanko's refusal (field already signed or absent) in Vietnamese, naming the field."""
    text = str(exc)
    field = next((i.field for i in items if i.field in text), ", ".join(sorted({i.field for i in items})))
    log.warning("PKCS#12 signing refused for field %s: %s", field, text)
    if "filled already" in text:
        return Pkcs12Error(f"Ô chữ ký «{field}» của học bạ đã được ký.", code="field_signed")
    if "No empty signature field" in text or "does not contain a form" in text:
        return Pkcs12Error(f"Học bạ không có ô chữ ký «{field}» còn trống.", code="field_missing")
    return Pkcs12Error(f"Không ký được vào ô chữ ký «{field}» ({type(exc).__name__}).", code="pkcs12_sign")


class Pkcs12Signer:
    """A `Signer` on a PKCS#12 credential; the pool (shared by every local signer) signs the batches."""

    kind = "pkcs12"

    def __init__(self, data: bytes, passphrase: bytes, *, pool: SigningPool | None = None,
                 pades: PadesProfile | None = None) -> None:
        self._credential = LocalCredential(pkcs12=data, passphrase=passphrase)
        self._pool = pool
        self._pades = pades or (pool.pades if pool is not None else None)  # TSA and trust above B-B
        self._signer = _open(self._credential)
        self._name = self._signer.signing_cert.subject.native.get("common_name", "")

    def __repr__(self) -> str:  # no passphrase, no key material
        return f"Pkcs12Signer(subject={self._name!r}, pool={self._pool is not None})"

    async def certificate(self) -> bytes:
        """The signing certificate (DER)."""
        return bytes(self._signer.signing_cert.dump())

    async def chain(self) -> tuple[bytes, ...]:
        """The CA certificates the PKCS#12 file carries beside the signing certificate (DER)."""
        return tuple(bytes(c.dump()) for c in self._signer.cert_registry)

    async def sign(self, items: Sequence[SignItem]) -> SignOutcome:
        """Sign each item in its own pre-made field (on the pool's workers when there is a pool)."""
        from pyhanko.sign.general import SigningError

        try:
            if self._pool is not None:
                signed = await self._pool.sign(self._credential, items)
            else:  # on a thread with its own loop, so a batch does not stall the service's loop
                signed = await asyncio.to_thread(lambda: asyncio.run(sign_items(self._signer, items, self._pades)))
        except SigningError as exc:
            raise _refused(exc, items) from None
        return SignOutcome(signed=tuple(signed))

    async def resume(self, pending: Mapping[str, object], prepared: Sequence[bytes]) -> SignOutcome:
        """A file key signs at once: nothing pending (an empty state answers empty, any other is refused)."""
        if not pending and not prepared:
            return SignOutcome()
        raise Pkcs12Error("Chứng thư số dạng tệp (PKCS#12) không có giao dịch ký đang chờ.", code="no_pending")

    async def close(self) -> None:
        """Drop this process's cached copy of the parsed key (a key a PIN opened lives no longer than its session);
        the pool belongs to the factory, which closes it."""
        from edudesk.core.signing.engine import forget_signer

        forget_signer(self._credential)
