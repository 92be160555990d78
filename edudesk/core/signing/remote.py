"""The hash-out (interrupted) signing flow shared by the remote signers (VNPT SmartCA, CSC API).

`prepare` makes each record PDF ready on pyHanko's async API — the signature placeholder in the item's
pre-made field, the /ByteRange digest, the CMS signed attributes — and says which hash the provider must
sign: SHA-256 over the DER of the signed attributes. `finish` later puts the provider's raw signature (or
a whole CMS) into the placeholder. Between the two nothing lives in memory: `dump_pending` writes what
finishing needs as a small JSON-able dict (the `SignOutcome.pending` contract: per item the prepared
digest, the signed attributes, the hash; once the certificate chain) and the PDFs with the placeholder go
in `SignOutcome.prepared`, so a new process finishes after a restart with `load_pending`.

No post-signing step (DSS, document timestamp) is asked for by `spec.signature_metadata`, so none is
kept; a signer wanting one must add it to the pending state first.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO

from asn1crypto import cms, x509
from cryptography import x509 as pyca_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.signers import ExternalSigner, PdfSigner
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko_certvalidator.registry import SimpleCertificateStore

from edudesk.core.ports import SignItem
from edudesk.core.signing import spec

STATE_VERSION = 1


class RemoteStateError(ValueError):
    """A pending state that cannot be finished (other version, items and PDFs out of step)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise RemoteStateError("expected base64 text in the pending state")
    return base64.b64decode(text, validate=True)


@dataclass(frozen=True)
class RemoteCredential:
    """The signing certificate a provider holds the key of, and the CA certificates above it."""

    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_der(cls, certificates: Sequence[bytes]) -> RemoteCredential:
        """From DER certificates, the signer's first (the order CSC and SmartCA answer in)."""
        if not certificates:
            raise RemoteStateError("the provider gave no certificate")
        loaded = [x509.Certificate.load(der) for der in certificates]
        return cls(loaded[0], tuple(loaded[1:]))

    @property
    def der(self) -> bytes:
        """The signing certificate, DER."""
        return bytes(self.cert.dump())

    def registry(self) -> SimpleCertificateStore:
        """The chain as pyHanko's certificate store (embedded in the CMS)."""
        store = SimpleCertificateStore()
        store.register(self.cert)
        store.register_multiple(list(self.chain))
        return store

    def signature_size(self) -> int:
        """Length of a raw signature of this key (the placeholder value while preparing)."""
        key = pyca_x509.load_der_x509_certificate(self.der).public_key()
        return (key.key_size + 7) // 8 if isinstance(key, rsa.RSAPublicKey) else 72 * 2

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """Whether `signature` is this key's SHA-256 signature of `data` (a provider's answer, checked)."""
        key = pyca_x509.load_der_x509_certificate(self.der).public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            else:
                return False
        except InvalidSignature:
            return False
        return True

    def state(self) -> list[str]:
        """The chain as base64 DER (signer first), for the pending state."""
        return [_b64(bytes(c.dump())) for c in (self.cert, *self.chain)]


@dataclass(frozen=True)
class Prepared:
    """One item made ready: the PDF with its placeholder, the /ByteRange digest, the signed attributes."""

    key: str
    pdf: bytes
    digest: PreparedByteRangeDigest
    signed_attrs: cms.CMSAttributes

    @property
    def tbs(self) -> bytes:
        """What the provider's key signs: the DER of the signed attributes."""
        return bytes(self.signed_attrs.dump())

    @property
    def hash(self) -> bytes:
        """SHA-256 of `tbs`: the hash sent to SmartCA's signhash or CSC's signHash."""
        return hashlib.sha256(self.tbs).digest()

    @property
    def hash_b64(self) -> str:
        """`hash` in base64, as both APIs carry it."""
        return _b64(self.hash)

    def state(self) -> dict[str, object]:
        """What finishing needs besides the PDF, JSON-able."""
        return {"key": self.key, "document_digest": _b64(self.digest.document_digest),
                "reserved_region_start": self.digest.reserved_region_start,
                "reserved_region_end": self.digest.reserved_region_end,
                "signed_attrs": _b64(self.tbs), "hash": self.hash_b64}

    @classmethod
    def from_state(cls, state: Mapping[str, object], pdf: bytes) -> Prepared:
        """Back from `state()` and the stored PDF with the placeholder."""
        start, end = state.get("reserved_region_start"), state.get("reserved_region_end")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 < start < end <= len(pdf):
            raise RemoteStateError("reserved region does not fit the stored PDF")
        digest = PreparedByteRangeDigest(_unb64(state.get("document_digest")), start, end)
        attrs = cms.CMSAttributes.load(_unb64(state.get("signed_attrs")))
        return cls(str(state.get("key", "")), pdf, digest, attrs)


async def prepare_item(item: SignItem, credential: RemoteCredential, when: datetime | None = None) -> Prepared:
    """Placeholder into the item's existing field, digest, signed attributes (PAdES, spec metadata)."""
    signer = ExternalSigner(credential.cert, credential.registry(), signature_value=credential.signature_size())
    from edudesk.core.signing.stamp import stamp_style

    # The same visible stamp as a local signature (Vietnamese, local time), not pyHanko's English default.
    pdf_signer = PdfSigner(spec.signature_metadata(item), signer=signer,
                           stamp_style=stamp_style(item.timezone, item.at or when))
    writer = IncrementalPdfFileWriter(BytesIO(item.pdf))
    digest, tbs_document, output = await pdf_signer.async_digest_doc_for_signing(
        writer, existing_fields_only=True, bytes_reserved=spec.BYTES_RESERVED)
    # The same attribute settings PdfSigner.async_sign_pdf uses, so remote signatures match local ones.
    attrs = await signer.signed_attrs(digest.document_digest, spec.MD_ALGORITHM,
                                      attr_settings=PdfCMSSignedAttributes(signing_time=when),
                                      use_pades=tbs_document.use_pades)
    output.seek(0)
    return Prepared(item.key, output.read(), digest, attrs)


async def prepare(items: Sequence[SignItem], credential: RemoteCredential,
                  when: datetime | None = None) -> list[Prepared]:
    """`prepare_item` for every item, in order."""
    return [await prepare_item(item, credential, when) for item in items]


async def finish_cms(prepared: Prepared, signature_cms: cms.ContentInfo) -> bytes:
    """The signed PDF: the CMS written into the placeholder of the prepared PDF."""
    output = BytesIO(prepared.pdf)
    await PdfTBSDocument.async_finish_signing(output, prepared.digest, signature_cms)
    return output.getvalue()


async def finish(prepared: Prepared, signature: bytes, credential: RemoteCredential) -> bytes:
    """The signed PDF from the provider's raw signature of `prepared.tbs` (checked before it is embedded)."""
    if not credential.verifies(signature, prepared.tbs):
        raise RemoteStateError(f"the provider's signature for {prepared.key} does not verify")
    signer = ExternalSigner(credential.cert, credential.registry(), signature_value=signature)
    signature_cms = await signer.async_sign_prescribed_attributes(spec.MD_ALGORITHM, prepared.signed_attrs)
    return await finish_cms(prepared, signature_cms)


def dump_pending(provider: str, credential: RemoteCredential, prepared: Sequence[Prepared],
                 **extra: object) -> tuple[dict[str, object], tuple[bytes, ...]]:
    """(`SignOutcome.pending`, `SignOutcome.prepared`) for prepared items and the provider's own state."""
    pending: dict[str, object] = {"provider": provider, "version": STATE_VERSION,
                                  "chain": credential.state(), "items": [p.state() for p in prepared]}
    pending.update(extra)
    return pending, tuple(p.pdf for p in prepared)


def load_pending(pending: Mapping[str, object], pdfs: Sequence[bytes],
                 provider: str) -> tuple[RemoteCredential, list[Prepared]]:
    """The credential and prepared items back from a stored pending state and its PDFs."""
    if pending.get("provider") != provider or pending.get("version") != STATE_VERSION:
        raise RemoteStateError(f"not a {provider} pending state of version {STATE_VERSION}")
    chain, items = pending.get("chain"), pending.get("items")
    if not isinstance(chain, list) or not isinstance(items, list) or len(items) != len(pdfs):
        raise RemoteStateError("pending items and prepared PDFs are out of step")
    credential = RemoteCredential.from_der([_unb64(c) for c in chain])
    return credential, [Prepared.from_state(state, pdf) for state, pdf in zip(items, pdfs, strict=True)]
