"""PAdES baseline levels of the signatures edudesk makes (ETSI EN 319 142-1), on pyHanko's own machinery.

B-B is the signature alone; B-T adds an RFC 3161 timestamp from `[records] tsa_url` in the signature; B-LT
adds the validation data (certificates, OCSP answers, CRLs) of the signer's chain and of the TSA's to the
document security store (DSS), so the record can be checked offline; B-LTA adds a document timestamp over
all of it. Teachers' signatures stop at B-LT; with `ltv = "B-LTA"` the issuing signature is followed by
the document timestamp, which `refresh.py` renews before its TSA certificate expires.

Fetching is bounded per batch: a `PadesBatch` holds one TSA client and one validation context, whose
fetchers keep every OCSP answer and CRL they got, so a batch of 40 records by one teacher asks the OCSP
responder once for the teacher's certificate and once for the TSA's, not 40 times each.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edudesk.core.errors import ConfigError, EdudeskError
from edudesk.core.ports import SignItem
from edudesk.core.signing import spec

if TYPE_CHECKING:
    from pyhanko.sign.signers import PdfSignatureMetadata

    from edudesk.core.config import Settings

LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")


class SignerCertRefused(EdudeskError):
    """The signer's certificate failed the check B-LT makes before signing (revoked, expired, untrusted)."""

    code = "signer_cert"


class LtvUnavailable(OSError):
    """The TSA, OCSP responder or CRL could not be reached (or answered nonsense): the job tries again later."""


def rank(level: str) -> int:
    """0 for B-B up to 3 for B-LTA (an unknown level counts as B-B)."""
    return LEVELS.index(level) if level in LEVELS else 0


def configured_level(ltv: str, tsa_url: str) -> str:
    """The level signatures are made at: `[records] ltv`, else B-LT with a TSA and B-B without."""
    return ltv or ("B-LT" if tsa_url else "B-B")


def step_level(level: str, *, issuing: bool) -> str:
    """A teacher's signature stops at B-LT: the archival timestamp comes once, after the issuing signature."""
    return level if issuing or rank(level) < rank("B-LTA") else "B-LT"


@dataclass(frozen=True)
class PadesProfile:
    """What signatures above B-B need besides the key: the TSA and the trust anchors (plain data, sent to the
    pool's workers)."""

    tsa_url: str = ""
    tsa_username: str = ""
    tsa_password: str = field(default="", repr=False)
    trust_roots: tuple[bytes, ...] = ()
    timeout: float = 10.0


def pades_profile(settings: Settings) -> PadesProfile:
    """The profile of `[records]` (the TSA password from its environment variable); ConfigError for a level
    that needs a TSA without one."""
    from edudesk.core.signing.trust import trust_material

    records = settings.records
    if rank(configured_level(records.ltv, records.tsa_url)) >= rank("B-T") and not records.tsa_url:
        raise ConfigError(f"[records] ltv = \"{records.ltv}\" cần một dịch vụ cấp dấu thời gian: hãy đặt tsa_url.",
                          code="config_records")
    password = settings.secret(records.tsa_password_env) if records.tsa_username else ""
    return PadesProfile(records.tsa_url, records.tsa_username, password, trust_material(settings)[0],
                        records.tsa_timeout_seconds)


class PadesBatch:
    """One batch's TSA client and fetching validation context; `aclose` releases their HTTP sessions."""

    def __init__(self, profile: PadesProfile | None) -> None:
        self.profile = profile
        self._timestamper: Any = None
        self._context: Any = None
        self._backend: Any = None  # the fetchers' HTTP session, ours to close
        self._presigned: dict[bytes, Any] = {}
        self._presign_lock = asyncio.Lock()

    def timestamper(self) -> Any:
        """pyHanko's HTTP timestamp client for the profile's TSA (one session for the batch)."""
        from pyhanko.sign.timestamps import HTTPTimeStamper
        from pyhanko_certvalidator.fetchers.aiohttp_fetchers import LazySession

        if self._timestamper is None:
            assert self.profile is not None and self.profile.tsa_url
            auth = (self.profile.tsa_username, self.profile.tsa_password) if self.profile.tsa_username else None
            self._timestamper = HTTPTimeStamper(self.profile.tsa_url, timeout=self.profile.timeout, auth=auth,
                                                session=LazySession())
        return self._timestamper

    def context(self) -> Any:
        """A validation context that fetches OCSP answers and CRLs (kept for the batch) and requires them."""
        from asn1crypto import x509
        from pyhanko_certvalidator import ValidationContext
        from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

        if self._context is None:
            assert self.profile is not None
            self._backend = AIOHttpFetcherBackend(per_request_timeout=self.profile.timeout)
            self._context = ValidationContext(
                trust_roots=[x509.Certificate.load(d) for d in self.profile.trust_roots], allow_fetching=True,
                revocation_mode="hard-fail", fetcher_backend=self._backend)
        return self._context

    def metadata(self, item: SignItem) -> PdfSignatureMetadata:
        """The spec's metadata, with the validation data embedded (B-LT) and the document timestamp (B-LTA)."""
        from pyhanko.sign.signers.pdf_signer import DSSContentSettings

        meta = spec.signature_metadata(item)
        if rank(item.level) < rank("B-LT"):
            return meta
        # DSS in its own revision after the signature (pyHanko's default; in the signature's revision it trips
        # the diff analysis of locked fields and an existing DSS), without VRI, a relic PAdES no longer uses.
        return dataclasses.replace(meta, embed_validation_info=True, validation_context=self.context(),
                                   use_pades_lta=rank(item.level) >= rank("B-LTA"),
                                   dss_settings=DSSContentSettings(include_vri=False))

    async def presign(self, session: Any, writer: Any, signer: Any) -> Any:
        """pyHanko's pre-signing validation (signer's chain and the TSA's, with revocation), once per signing
        certificate in the batch: every record a teacher signs gets the same validation data."""
        if writer.prev.embedded_timestamp_signatures:  # an archival chain to continue: not the same for all
            return await session.perform_presign_validation(writer)
        key = bytes(signer.signing_cert.dump())
        async with self._presign_lock:  # the batch's first items arrive together: one validation, not eight
            if key not in self._presigned:
                self._presigned[key] = await session.perform_presign_validation(writer)
        # pyHanko appends the document timestamp's paths to this list: each signature gets its own copy
        status = self._presigned[key]
        return dataclasses.replace(status, validation_paths=list(status.validation_paths))

    def signer_options(self, item: SignItem) -> dict[str, Any]:
        """PdfSigner's keyword arguments for the item's level (the TSA client from B-T on)."""
        if rank(item.level) < rank("B-T"):
            return {}
        if self.profile is None or not self.profile.tsa_url:
            raise ConfigError("Chữ ký cần dấu thời gian nhưng chưa cấu hình [records] tsa_url.", code="config_records")
        return {"timestamper": self.timestamper()}

    async def aclose(self) -> None:
        """Close the HTTP sessions of the TSA client and the fetchers (on the loop that opened them)."""
        if self._context is not None:
            await self._context.aclose()
        if self._backend is not None:
            await self._backend.close()
        if self._timestamper is not None and self._timestamper._session is not None:
            await self._timestamper._session.close()
        self._context = self._timestamper = self._backend = None


def needs_batch(items: Sequence[SignItem]) -> bool:
    """Whether any item asks for more than B-B."""
    return any(rank(i.level) > 0 for i in items)


def translate(exc: BaseException, field_name: str) -> BaseException | None:
    """What a failed signature at B-T and above becomes: SignerCertRefused (told, not retried) for a revoked,
    expired or untrusted certificate, LtvUnavailable (retried) for a TSA or revocation service out of reach;
    None when it is neither."""
    from pyhanko.sign.timestamps import TimestampRequestError
    from pyhanko_certvalidator.errors import (
        CertificateFetchError,
        ExpiredError,
        InsufficientRevinfoError,
        NotYetValidError,
        PathBuildingError,
        RevokedError,
    )

    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(isinstance(e, TimestampRequestError) for e in chain):
        return LtvUnavailable(f"TSA unreachable while signing {field_name}: {exc}")
    if any(isinstance(e, RevokedError) for e in chain):
        return SignerCertRefused(f"Chứng thư số đã bị thu hồi (ô chữ ký «{field_name}»): không ký được.")
    if any(isinstance(e, ExpiredError | NotYetValidError) for e in chain):
        return SignerCertRefused(f"Chứng thư số đã hết hạn hoặc chưa có hiệu lực (ô chữ ký «{field_name}»).")
    if any(isinstance(e, InsufficientRevinfoError | CertificateFetchError) for e in chain):
        return LtvUnavailable(f"revocation information unavailable while signing {field_name}: {exc}")
    if any(isinstance(e, PathBuildingError) for e in chain):
        return SignerCertRefused("Chứng thư số không chuỗi được tới CA mà nhà trường tin cậy ([records] "
                                 f"trusted_roots), ô chữ ký «{field_name}».")
    return None
