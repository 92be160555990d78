"""The hash-out (interrupted) signing flow shared by the remote signers (VNPT SmartCA, CSC API).

`prepare` makes each record PDF ready on pyHanko's async API — the signature placeholder in the item's
pre-made field, the /ByteRange digest, the CMS signed attributes — and says which hash the provider must
sign: SHA-256 over the DER of the signed attributes. `finish` later puts the provider's raw signature (or
a whole CMS) into the placeholder. Between the two nothing lives in memory: `dump_pending` writes what
finishing needs as a small JSON-able dict (the `SignOutcome.pending` contract: per item the prepared
digest, the signed attributes, the hash; once the certificate chain) and the PDFs with the placeholder go
in `SignOutcome.prepared`, so a new process finishes after a restart with `load_pending`.

Above B-B (`SignItem.level`, `[records] tsa_url`) a remote signature reaches the same PAdES level as a local
one, on pyHanko's own machinery through a `PadesBatch`: before the hash goes to the provider (so before the
person's phone rings) the signer's chain is validated with revocation data, once per certificate in the batch
(a revoked or expired certificate is refused, not signed); on finishing, the provider's signature gets its
RFC 3161 signature timestamp (B-T), the validation data of the signer's chain and the TSA's goes into the DSS
(B-LT), and the issuing signature is followed by a document timestamp (B-LTA). Finishing needs nothing kept
in memory: the pending state names each item's level, field and the length of the PDF it was prepared from,
and the validation is made again when finishing (fresh revocation data, at the time the signature was made).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

from asn1crypto import cms, x509
from cryptography import x509 as pyca_x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign.signers import ExternalSigner, PdfSigner
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, PdfTBSDocument, PostSignInstructions
from pyhanko_certvalidator.registry import SimpleCertificateStore

from edudesk.core.errors import ConfigError
from edudesk.core.ports import SignItem
from edudesk.core.signing import spec
from edudesk.core.signing.pades import PadesBatch, rank, translate

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
    level: str = "B-B"  # the PAdES level finishing reaches (SignItem.level)
    field: str = ""  # the signature field (for the validation made again when finishing)
    base_length: int = 0  # the length of the PDF before the placeholder's revision (its first bytes)

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
                "signed_attrs": _b64(self.tbs), "hash": self.hash_b64, "level": self.level, "field": self.field,
                "base_length": self.base_length}

    @classmethod
    def from_state(cls, state: Mapping[str, object], pdf: bytes) -> Prepared:
        """Back from `state()` and the stored PDF with the placeholder."""
        start, end = state.get("reserved_region_start"), state.get("reserved_region_end")
        if not isinstance(start, int) or not isinstance(end, int) or not 0 < start < end <= len(pdf):
            raise RemoteStateError("reserved region does not fit the stored PDF")
        digest = PreparedByteRangeDigest(_unb64(state.get("document_digest")), start, end)
        attrs = cms.CMSAttributes.load(_unb64(state.get("signed_attrs")))
        level, field, base = state.get("level", "B-B"), state.get("field", ""), state.get("base_length", 0)
        if not isinstance(level, str) or not isinstance(field, str) or not isinstance(base, int) or \
                not 0 <= base <= start:
            raise RemoteStateError("level, field or base length of a pending item unreadable")
        if rank(level) >= rank("B-LT") and (not field or not base):
            raise RemoteStateError("a pending item at B-LT without its field or base length")
        return cls(str(state.get("key", "")), pdf, digest, attrs, level, field, base)

    def base_item(self) -> SignItem:
        """The item as it was before the placeholder: what the validation when finishing is made on."""
        return SignItem(key=self.key, pdf=self.pdf[:self.base_length], field=self.field, level=self.level)


def _batch_for(level: str, batch: PadesBatch | None) -> PadesBatch | None:
    """The batch a level needs (None at B-B); ConfigError when a level above B-B has no TSA configured."""
    if rank(level) == 0:
        return None
    if batch is None or batch.profile is None or not batch.profile.tsa_url:
        raise ConfigError("Chữ ký cần dấu thời gian nhưng chưa cấu hình [records] tsa_url.", code="config_records")
    return batch


async def _validation(item: SignItem, credential: RemoteCredential, batch: PadesBatch) -> Any:
    """pyHanko's pre-signing validation of the signer's chain and the TSA's (revocation data fetched), made on
    the item's PDF before the placeholder; once per certificate in the batch."""
    signer = ExternalSigner(credential.cert, credential.registry(), signature_value=credential.signature_size())
    pdf_signer = PdfSigner(batch.metadata(item), signer=signer, **batch.signer_options(item))
    writer = IncrementalPdfFileWriter(BytesIO(item.pdf))
    session = pdf_signer.init_signing_session(writer, existing_fields_only=True)
    try:
        return await batch.presign(session, writer, signer)
    except Exception as exc:
        mapped = translate(exc, item.field)
        if mapped is not None:
            raise mapped from None
        raise


async def prepare_item(item: SignItem, credential: RemoteCredential, when: datetime | None = None,
                       batch: PadesBatch | None = None) -> Prepared:
    """Placeholder into the item's existing field, digest, signed attributes (PAdES, spec metadata); at B-LT
    and above the signer's chain is validated first (a revoked certificate never reaches the provider)."""
    pades = _batch_for(item.level, batch)
    if pades is not None and rank(item.level) >= rank("B-LT"):
        await _validation(item, credential, pades)
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
    return Prepared(item.key, output.read(), digest, attrs, item.level, item.field, len(item.pdf))


async def prepare(items: Sequence[SignItem], credential: RemoteCredential,
                  when: datetime | None = None, batch: PadesBatch | None = None) -> list[Prepared]:
    """`prepare_item` for every item, in order."""
    return [await prepare_item(item, credential, when, batch) for item in items]


async def finish_cms(prepared: Prepared, signature_cms: cms.ContentInfo, credential: RemoteCredential,
                     batch: PadesBatch | None = None) -> bytes:
    """The signed PDF: the CMS written into the placeholder of the prepared PDF, then at B-LT and above the
    validation data in the DSS and at B-LTA the document timestamp (pyHanko's post-signing step)."""
    output = BytesIO(prepared.pdf)
    pades = _batch_for(prepared.level, batch)
    post = None
    if pades is not None and rank(prepared.level) >= rank("B-LT"):
        item = prepared.base_item()
        lta = rank(prepared.level) >= rank("B-LTA")
        post = PostSignInstructions(validation_info=await _validation(item, credential, pades),
                                    timestamper=pades.timestamper() if lta else None,
                                    timestamp_md_algorithm=spec.MD_ALGORITHM,
                                    dss_settings=DSSContentSettings(include_vri=False))
    try:
        await PdfTBSDocument.async_finish_signing(output, prepared.digest, signature_cms, post_sign_instr=post,
                                                  validation_context=pades.context() if post and pades else None)
    except Exception as exc:
        mapped = translate(exc, prepared.field) if pades is not None else None
        if mapped is not None:
            raise mapped from None
        raise
    return output.getvalue()


async def finish(prepared: Prepared, signature: bytes, credential: RemoteCredential,
                 batch: PadesBatch | None = None) -> bytes:
    """The signed PDF from the provider's raw signature of `prepared.tbs` (checked before it is embedded),
    with its signature timestamp from B-T on."""
    if not credential.verifies(signature, prepared.tbs):
        raise RemoteStateError(f"the provider's signature for {prepared.key} does not verify")
    pades = _batch_for(prepared.level, batch)
    signer = ExternalSigner(credential.cert, credential.registry(), signature_value=signature)
    try:
        signature_cms = await signer.async_sign_prescribed_attributes(
            spec.MD_ALGORITHM, prepared.signed_attrs, timestamper=pades.timestamper() if pades else None)
    except Exception as exc:
        mapped = translate(exc, prepared.field) if pades is not None else None
        if mapped is not None:
            raise mapped from None
        raise
    return await finish_cms(prepared, signature_cms, credential, batch)


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
