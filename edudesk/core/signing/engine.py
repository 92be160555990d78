"""The fast local signing path: a software key parsed once and kept, signatures into pre-made fields with the
room reserved up front (no dry-run size estimate), and a process pool that signs batches on every core.

Where the time went (profiled, 33 ms a signature after the key cache, 6 ms now): pyHanko's
`SimpleSigner.sign_raw` loads the private key from DER on every signature (OpenSSL's RSA key checks), so
`CachedKeySigner` keeps the `cryptography` key object; asn1crypto re-encodes (and deep-copies, to retag) a
freshly built structure on every dump, so the signed attributes and the CMS are re-parsed from DER once
built, and the attributes that never change for a key (signing certificate, algorithm protection) are built
once; pyHanko reads every earlier signature's ~32 KB hex /Contents byte by byte, so `install_fast_pdf_parsing`
(speedups.py) swaps in a block-wise reader. Each worker process keeps its loaded signers by credential fingerprint, so a
batch costs one key load per worker, not one per signature.

Items of one record are chained by the caller (each signature is an incremental update of the previous
bytes); a batch holds items of different records, and those run in parallel.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import multiprocessing
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from io import BytesIO
from typing import TYPE_CHECKING, Any

from edudesk.core import logsetup
from edudesk.core.config import GeneralSettings
from edudesk.core.ports import SignItem
from edudesk.core.signing import spec
from edudesk.core.signing.pades import PadesBatch, PadesProfile, needs_batch, rank, translate
from edudesk.core.signing.speedups import install_fast_pdf_parsing

if TYPE_CHECKING:
    from edudesk.core.signing.increment import CheckItem

log = logging.getLogger(__name__)
CACHE_SIZE = 256  # loaded signers kept per process (a school has a few hundred teachers at most)
CONCURRENT_ITEMS = 8  # signatures of a chunk under way at once when they wait on the TSA or a responder
BATCH_SECONDS = 60.0  # how long a worker reuses the OCSP answers and CRLs it fetched


@dataclass(frozen=True)
class LocalCredential:
    """A software key as plain bytes (picklable, sent to the workers): PKCS#12 and its passphrase, or a
    PKCS#8 key with its certificate and CA chain (DER)."""

    pkcs12: bytes = field(default=b"", repr=False)
    passphrase: bytes = field(default=b"", repr=False)
    key_der: bytes = field(default=b"", repr=False)
    cert_der: bytes = b""
    chain_der: tuple[bytes, ...] = ()

    @property
    def fingerprint(self) -> str:
        """A digest naming this credential in the signer caches (never logged: it covers the passphrase)."""
        digest = hashlib.sha256()
        for part in (self.pkcs12, self.passphrase, self.key_der, self.cert_der, *self.chain_der):
            digest.update(len(part).to_bytes(8, "big") + part)
        return digest.hexdigest()


@functools.cache
def _cached_key_signer_class() -> type:
    from asn1crypto import cms
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from pyhanko.sign import attributes
    from pyhanko.sign.general import get_pyca_cryptography_hash
    from pyhanko.sign.signers import SimpleSigner

    class CachedKeySigner(SimpleSigner):  # type: ignore[misc]
        """SimpleSigner with the parsed `cryptography` key kept (RSA PKCS#1 v1.5 and ECDSA; others as pyHanko)."""

        pyca_key: Any = None
        static_attrs: dict[object, Any]

        def _signed_attr_providers(self, *args: Any, **kwargs: Any) -> list[Any]:
            # The signing-certificate and algorithm-protection attributes are the same in every signature
            # of this key: built once, kept parsed (asn1crypto takes milliseconds to encode the issuer name).
            cache = self.__dict__.setdefault("static_attrs", {})
            out = []
            for prov in super()._signed_attr_providers(*args, **kwargs):
                if isinstance(prov, attributes.SigningCertificateV2Provider):
                    out.append(_KeptAttribute(prov, cache, ("scv2", prov.signing_cert.dump())))
                elif isinstance(prov, attributes.CMSAlgorithmProtectionProvider):
                    out.append(_KeptAttribute(prov, cache, ("cap", prov.digest_algo, prov.signature_algo.dump())))
                else:
                    out.append(prov)
            return out

        async def signed_attrs(self, *args: Any, **kwargs: Any) -> Any:
            # Re-parsed from DER: asn1crypto re-encodes (and deep-copies, to retag) a built structure on
            # every dump, and pyHanko dumps these several times per signature.
            attrs = await super().signed_attrs(*args, **kwargs)
            return attrs if attrs is None else cms.CMSAttributes.load(attrs.dump())

        async def async_sign_prescribed_attributes(self, *args: Any, **kwargs: Any) -> Any:
            info = await super().async_sign_prescribed_attributes(*args, **kwargs)
            return cms.ContentInfo.load(info.dump())

        def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
            mechanism = self.get_signature_mechanism_for_digest(digest_algorithm)["algorithm"].native
            hash_algo = get_pyca_cryptography_hash(digest_algorithm)
            key = self.pyca_key
            if mechanism.endswith("_rsa") or mechanism == "rsassa_pkcs1v15":
                if isinstance(key, rsa.RSAPrivateKey):
                    return key.sign(data, padding.PKCS1v15(), hash_algo)
            elif mechanism.endswith("_ecdsa") or mechanism == "ecdsa":
                if isinstance(key, ec.EllipticCurvePrivateKey):
                    return key.sign(data, ec.ECDSA(hash_algo))
            return bytes(super().sign_raw(data, digest_algorithm))

    class _KeptAttribute(attributes.CMSAttributeProvider):  # type: ignore[misc]
        def __init__(self, inner: Any, cache: dict[object, Any], key: object) -> None:
            self.inner, self.cache, self.key = inner, cache, key
            self.attribute_type = inner.attribute_type

        async def get_attribute(self, dry_run: bool = False) -> Any:
            if self.key not in self.cache:
                attr = await self.inner.get_attribute(dry_run=dry_run)
                self.cache[self.key] = None if attr is None else cms.CMSAttribute.load(attr.dump())
            return self.cache[self.key]

    return CachedKeySigner


def load_signer(credential: LocalCredential) -> Any:
    """A pyHanko signer holding the parsed key; ValueError for a wrong passphrase or broken key material."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    if credential.pkcs12:
        key, cert, extra = pkcs12.load_key_and_certificates(credential.pkcs12, credential.passphrase or None)
        if key is None or cert is None:
            raise ValueError("PKCS#12 without a private key or certificate")
        chain = [c.public_bytes(serialization.Encoding.DER) for c in extra]
        cert_der = cert.public_bytes(serialization.Encoding.DER)
    else:
        key = serialization.load_der_private_key(credential.key_der, password=None)
        cert_der, chain = credential.cert_der, list(credential.chain_der)
        x509.load_der_x509_certificate(cert_der)  # a broken certificate fails here, with a ValueError
    key_info = asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    signer = _cached_key_signer_class()(
        signing_cert=asn1_x509.Certificate.load(cert_der), signing_key=key_info,
        cert_registry=SimpleCertificateStore.from_certs([asn1_x509.Certificate.load(c) for c in chain]))
    signer.pyca_key = key
    return signer


_SIGNERS: OrderedDict[str, Any] = OrderedDict()


def cached_signer(credential: LocalCredential) -> Any:
    """The loaded signer of a credential in this process (loaded on first use, least recently used evicted)."""
    key = credential.fingerprint
    signer = _SIGNERS.get(key)
    if signer is None:
        signer = _SIGNERS[key] = load_signer(credential)
        while len(_SIGNERS) > CACHE_SIZE:
            _SIGNERS.popitem(last=False)
    _SIGNERS.move_to_end(key)
    return signer


def forget_signer(credential: LocalCredential) -> None:
    """Drop a credential's loaded signer from this process's cache."""
    _SIGNERS.pop(credential.fingerprint, None)


async def sign_items(signer: Any, items: Sequence[SignItem], profile: PadesProfile | None = None,
                     batch: PadesBatch | None = None) -> list[bytes]:
    """Sign every item in its existing field with the spec's metadata and the shared stamp (async pyHanko); items
    above B-B get their timestamp and validation data from `batch` (made from `profile` and closed when none is
    given), several at once so the TSA's and the responders' round trips overlap."""
    install_fast_pdf_parsing()
    if not needs_batch(items):
        return [await sign_one(signer, item, PadesBatch(None)) for item in items]
    own = batch is None
    batch = batch or PadesBatch(profile)
    limit = asyncio.Semaphore(CONCURRENT_ITEMS)

    async def one(item: SignItem) -> bytes:
        async with limit:
            return await sign_one(signer, item, batch)

    try:
        return list(await asyncio.gather(*(one(item) for item in items)))
    finally:
        if own:
            await batch.aclose()


async def sign_one(signer: Any, item: SignItem, batch: PadesBatch, style: Any = None) -> bytes:
    """One item signed in its field at its PAdES level (`style`: the stamp, the shared one by default)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers import PdfSigner

    from edudesk.core.signing.stamp import stamp_style

    pdf_signer = PdfSigner(batch.metadata(item), signer=signer,
                           stamp_style=style or stamp_style(item.timezone, item.at),
                           **batch.signer_options(item))
    writer = IncrementalPdfFileWriter(BytesIO(item.pdf))
    try:
        if rank(item.level) < rank("B-LT"):
            signed = await pdf_signer.async_sign_pdf(writer, existing_fields_only=True,
                                                     bytes_reserved=spec.BYTES_RESERVED)
            return bytes(signed.getvalue())
        return await _sign_lt(pdf_signer, writer, batch)
    except Exception as exc:
        mapped = translate(exc, item.field) if rank(item.level) > 0 else None
        if mapped is not None:
            raise mapped from None  # made here: the cause does not survive the way back from a worker process
        raise


async def _sign_lt(pdf_signer: Any, writer: Any, batch: PadesBatch) -> bytes:
    """pyHanko's `async_sign_pdf`, step by step, with the pre-signing validation taken from the batch."""
    from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes

    session = pdf_signer.init_signing_session(writer, existing_fields_only=True)
    validation = await batch.presign(session, writer, pdf_signer.signer)
    tbs = session.prepare_tbs_document(validation_info=validation, bytes_reserved=spec.BYTES_RESERVED)
    digest, output = tbs.digest_tbs_document()
    attrs = PdfCMSSignedAttributes(signing_time=session.system_time, adobe_revinfo_attr=validation.adobe_revinfo_attr,
                                   cades_signed_attrs=pdf_signer.signature_meta.cades_signed_attr_spec)
    done = await tbs.perform_signature(document_digest=digest.document_digest, pdf_cms_signed_attrs=attrs)
    await done.post_signature_processing(output)
    output.seek(0)
    return bytes(output.read())


_LOOP: asyncio.AbstractEventLoop | None = None


def _worker_loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    return _LOOP


_BATCH: list[tuple[float, PadesProfile, PadesBatch]] = []  # this worker's (made at, profile, batch)


def _worker_batch(profile: PadesProfile | None) -> PadesBatch | None:
    """The worker's PadesBatch for `profile`, kept BATCH_SECONDS: the chunks of one signing batch that land on
    this worker share its OCSP answers and CRLs (a new one after that, so a revocation is seen soon)."""
    if profile is None:
        return None
    now = time.monotonic()
    if _BATCH and (_BATCH[0][1] != profile or now - _BATCH[0][0] > BATCH_SECONDS):
        _worker_loop().run_until_complete(_BATCH.pop()[2].aclose())
    if not _BATCH:
        _BATCH.append((now, profile, PadesBatch(profile)))
    return _BATCH[0][2]


def _worker_sign(credential: LocalCredential, profile: PadesProfile | None, items: list[SignItem]) -> list[bytes]:
    """In a worker process (no running loop there): sign a chunk on the worker's own event loop."""
    batch = _worker_batch(profile) if needs_batch(items) else None
    return _worker_loop().run_until_complete(sign_items(cached_signer(credential), items, profile, batch))


def _worker_check(items: list[CheckItem], roots: tuple[bytes, ...], crls: tuple[bytes, ...]) -> list[Any]:
    """In a worker process: `verify.check_new_signature` for each item."""
    from edudesk.core.signing.verify import check_new_signature

    loop = _worker_loop()
    return [loop.run_until_complete(check_new_signature(item.signed, item.proven, field=item.sig_field,
                                                        trusted_roots=roots, crls=crls, full=item.full))
            for item in items]


def _worker_validate(items: list[tuple[bytes, tuple[str, ...] | None]], roots: tuple[bytes, ...],
                     crls: tuple[bytes, ...]) -> list[Any]:
    """In a worker process: `verify.verify_record` (the full validation) of each (PDF, expected fields)."""
    from edudesk.core.signing.verify import verify_record

    loop = _worker_loop()
    return [loop.run_until_complete(verify_record(pdf, trusted_roots=roots, crls=crls, expected_fields=expected))
            for pdf, expected in items]


def _worker_start(general: GeneralSettings | None = None) -> None:
    if general is not None:
        logsetup.install(general)  # the service's log format (JSON lines too) and quiet libraries in the worker
    # Import pyHanko and subset the stamp font once per worker, before the first batch arrives.
    from edudesk.core.signing.stamp import _font, stamp_style

    _font()
    stamp_style()


class SigningPool:
    """Worker processes that sign batches of items for any local credential, records in parallel."""

    def __init__(self, workers: int | None = None, *, chunk: int = 32, general: GeneralSettings | None = None,
                 pades: PadesProfile | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.general = general
        self.pades = pades  # the TSA and trust anchors of signatures above B-B
        self.chunk = chunk  # items per task: small enough to balance, large enough to amortise the pickling
        self._executor = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn: the service's process has threads (event loop helpers, DB drivers) that fork would copy
        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_worker_start, initargs=(self.general,))

    def __repr__(self) -> str:
        return f"SigningPool(workers={self.workers})"

    async def sign(self, credential: LocalCredential, items: Sequence[SignItem]) -> list[bytes]:
        """Sign the items (of different records) across the workers; the signed PDFs in item order."""
        return await self._map(functools.partial(_worker_sign, credential, self.pades), list(items), self.chunk)

    async def check(self, items: Sequence[CheckItem], *, trusted_roots: Sequence[bytes],
                    crls: Sequence[bytes] = ()) -> list[Any]:
        """`verify.check_new_signature` of each item across the workers, off the service's event loop: a few
        milliseconds for a new signature, the full validation (~0.3 s at 15 signatures) at issue."""
        # A full validation (~0.3 s) goes to the workers one at a time, so that 40 of them at issue are shared
        # evenly; new-signature checks (~10 ms) go eight to a task.
        chunk = 1 if any(item.full is not None for item in items) else 8
        return await self._map(functools.partial(_worker_check, roots=tuple(trusted_roots), crls=tuple(crls)),
                               list(items), chunk)

    async def validate(self, items: Sequence[tuple[bytes, tuple[str, ...] | None]], *, trusted_roots: Sequence[bytes],
                       crls: Sequence[bytes] = ()) -> list[Any]:
        """`verify.verify_record` of each (PDF, expected fields) across the workers (the validation at export)."""
        return await self._map(functools.partial(_worker_validate, roots=tuple(trusted_roots), crls=tuple(crls)),
                               list(items), 2)

    async def _map(self, work: Any, items: list[Any], chunk: int) -> list[Any]:
        if not items:
            return []
        try:
            return await self._run(work, items, chunk)
        except BrokenProcessPool:
            # A worker died (killed, out of memory): nothing was stored, so start new workers and go again once.
            log.warning("signing pool broken, starting %d new workers", self.workers)
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._start()
            return await self._run(work, items, chunk)

    async def _run(self, work: Any, items: list[Any], chunk: int) -> list[Any]:
        size = max(1, min(chunk, -(-len(items) // self.workers)))
        loop = asyncio.get_running_loop()
        futures = [loop.run_in_executor(self._executor, work, items[i:i + size]) for i in range(0, len(items), size)]
        chunks = await asyncio.gather(*futures)
        return [result for part in chunks for result in part]

    def close(self) -> None:
        """Stop the workers (waits for the batches under way)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
