"""Which PAdES baseline level a signature reaches, read back from the file alone (nothing is fetched), and
whether it still validates at a later date: pyHanko's AdES validation (ETSI EN 319 102-1).

- B-B: a PAdES signature; B-T: its signature timestamp validates;
- B-LT: the validation data the file carries (DSS, revocation archival attribute) is enough to validate the
  signer's chain with revocation information required (`ades_lta_validation`, local knowledge only);
- B-LTA: that, and a document timestamp after the signature proves when the data existed.

"Valid at" a future date is pyHanko's `simulate_future_ades_lta_validation`: the signature validated at
that date from the file's own data, the signers' certificates long expired, assuming the archival
timestamp chain is renewed in time (what `records refresh-ltv` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edudesk.core.signing.pades import LEVELS

REVOKED = ("REVOKED", "REVOKED_NO_POE", "REVOKED_CA_NO_POE")


@dataclass(frozen=True)
class LtvFacts:
    """One signature's long-term facts."""

    level: str  # B-B, B-T, B-LT, B-LTA
    timestamp_at: datetime | None  # the signature timestamp's time (the TSA's clock)
    tsa: str  # the TSA's name (CN of its certificate)
    revocation_checked: bool  # revocation status established from the data the file carries
    revoked: bool
    indication: str  # pyHanko's AdES sub-indication at the current time ("OK", "REVOKED_NO_POE", ...)
    valid_at: bool | None = None  # at the date asked for; None when none was


@dataclass(frozen=True)
class ArchiveFacts:
    """A record's document (archival) timestamps: how many, the last one's time and its TSA's expiry."""

    count: int
    last_at: datetime | None
    tsa: str
    expires: datetime | None  # the last one's TSA certificate's notAfter: renew before it


def validation_spec(trust_roots: Sequence[bytes], crls: Sequence[bytes] = ()) -> Any:
    """Revocation information required, taken only from the file and the CRLs `[records] crls` names (nothing
    fetched: no CRL, OCSP answer or certificate)."""
    from asn1crypto import crl, x509
    from pyhanko.sign.validation.policy_decl import (
        CertificateFetchingRule,
        LocalKnowledge,
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager
    from pyhanko_certvalidator.revinfo.archival import CRLContainer

    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[x509.Certificate.load(d) for d in trust_roots]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))
    return PdfSignatureValidationSpec(SignatureValidationSpec(
        cert_validation_policy=policy, revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY,
            certificate_fetching_rule=CertificateFetchingRule.NEVER_FETCH),
        local_knowledge=LocalKnowledge(known_crls=[CRLContainer(crl.CertificateList.load(c)) for c in crls])),
        diff_policy=None)  # what changed after each signature is verify.py's check, once (not per timestamp)


def _common_name(cert: Any) -> str:
    return str(cert.subject.native.get("common_name", "")) if cert is not None else ""


def _signature_timestamp(emb: Any) -> tuple[datetime | None, str]:
    from pyhanko.sign.general import extract_certificate_info
    from pyhanko.sign.validation.generic_cms import extract_tst_data_iter

    for tst in extract_tst_data_iter(emb.signer_info, signed=False):
        info = tst["encap_content_info"]["content"].parsed
        return info["gen_time"].native, _common_name(extract_certificate_info(tst).signer_cert)
    return None, ""


def _file_knowledge(emb: Any, spec: Any) -> Any:
    """The signature validation spec with what the file carries added: the DSS's certificates, OCSP answers
    and CRLs (as pyHanko's LTA validation reads them)."""
    import dataclasses

    from asn1crypto import crl, ocsp
    from pyhanko.pdf_utils.decode_limits import DecodePurpose
    from pyhanko.sign.validation import DocumentSecurityStore
    from pyhanko.sign.validation.errors import NoDSSFoundError
    from pyhanko.sign.validation.policy_decl import LocalKnowledge
    from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

    known = spec.signature_validation_spec.local_knowledge
    try:
        dss = DocumentSecurityStore.read_dss(emb.reader)
    except NoDSSFoundError:
        return spec.signature_validation_spec
    ocsps = [c for r in dss.ocsps for c in OCSPContainer.load_multi(
        ocsp.OCSPResponse.load(r.get_object().read_data(DecodePurpose.OCSP_RESPONSE)))]
    crls = [CRLContainer(crl.CertificateList.load(c.get_object().read_data(DecodePurpose.CRL))) for c in dss.crls]
    return dataclasses.replace(spec.signature_validation_spec, local_knowledge=LocalKnowledge(
        known_ocsps=ocsps, known_crls=known.known_crls + crls, known_certs=list(dss.load_certs())))


async def ltv_facts(emb: Any, trust_roots: Sequence[bytes], *, crls: Sequence[bytes] = (),
                    at: datetime | None = None) -> LtvFacts:
    """The level `emb` (a regular signature) reaches and, with `at`, whether it validates then.

    B-LT is AdES-with-time validation (ETSI EN 319 102-1 5.5) passing on the file's own revocation data; B-LTA
    is pyHanko's LTA validation passing with a document timestamp after the signature."""
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko.sign.validation.ades import (
        ades_lta_validation,
        ades_with_time_validation,
        simulate_future_ades_lta_validation,
    )
    from pyhanko.sign.validation.status import PdfSignatureStatus

    spec = validation_spec(trust_roots, crls)
    ts_at, tsa = _signature_timestamp(emb)
    with_time = await ades_with_time_validation(emb.signed_data, _file_knowledge(emb, spec),
                                                raw_digest=emb.compute_digest(), status_cls=PdfSignatureStatus)
    passed = with_time.ades_subindic == AdESPassed.OK
    level = 0 if ts_at is None else 2 if passed else 1
    indication = with_time.ades_subindic
    if level == 2 and any(t.signed_revision > emb.signed_revision for t in emb.reader.embedded_timestamp_signatures):
        archived = await ades_lta_validation(emb, spec)
        if archived.ades_subindic == AdESPassed.OK and archived.oldest_evidence_record_timestamp is not None:
            level = 3
    valid_at = None
    if at is not None:
        future = await simulate_future_ades_lta_validation(emb, spec, future_validation_time=at)
        valid_at = future.ades_subindic == AdESPassed.OK
    name = str(getattr(indication, "name", indication))
    return LtvFacts(LEVELS[level], ts_at, tsa, passed, name in REVOKED, name, valid_at)


def revoked_since(cert: Any, crls: Sequence[bytes]) -> datetime | None:
    """When a CRL of its issuer says the certificate was revoked (the earliest), or None."""
    from asn1crypto import crl

    found = []
    for data in crls:
        listing = crl.CertificateList.load(data)
        if listing.issuer != cert.issuer:
            continue
        found += [entry["revocation_date"].native for entry in listing["tbs_cert_list"]["revoked_certificates"]
                  if entry["user_certificate"].native == cert.serial_number]
    return min(found, default=None)


def archive_facts(reader: Any) -> ArchiveFacts:
    """The document timestamps of a record (read from the file, not validated here)."""
    stamps = list(reader.embedded_timestamp_signatures)
    if not stamps:
        return ArchiveFacts(0, None, "", None)
    last = stamps[-1]
    info = last.signed_data["encap_content_info"]["content"].parsed
    cert = last.signer_cert
    return ArchiveFacts(len(stamps), info["gen_time"].native, _common_name(cert), cert["tbs_certificate"]
                        ["validity"]["not_after"].native)


def describe(facts: LtvFacts, *, lang: str, timezone: str, at: datetime | None) -> str:
    """One line of a signature's long-term facts, Vietnamese or English."""
    from edudesk.core.text import local_time

    en = lang == "en"
    yes, no = ("yes", "NO") if en else ("có", "KHÔNG")
    stamp = (f"{local_time(facts.timestamp_at, timezone)} ({facts.tsa})" if facts.timestamp_at
             else ("none" if en else "không có"))
    line = (f"PAdES {facts.level}; timestamp {stamp}; revocation checked: {yes if facts.revocation_checked else no}"
            if en else f"PAdES {facts.level}; dấu thời gian {stamp}; đã kiểm tra thu hồi: "
                       f"{yes if facts.revocation_checked else no}")
    if at is not None and facts.valid_at is not None:
        day = at.astimezone(ZoneInfo(timezone)).strftime("%d/%m/%Y")
        line += (f"; still validates on {day}: {yes if facts.valid_at else no}" if en
                 else f"; vẫn kiểm chứng được vào ngày {day}: {yes if facts.valid_at else no}")
    return line


def describe_archive(archive: ArchiveFacts, *, lang: str, timezone: str) -> str:
    """One line about a record's document timestamps and when the last one must be renewed."""
    from edudesk.core.text import local_time

    if not archive.count:
        return "no document (archival) timestamp" if lang == "en" else "không có dấu thời gian lưu trữ (B-LTA)"
    last = local_time(archive.last_at, timezone) if archive.last_at else "?"
    until = archive.expires.astimezone(ZoneInfo(timezone)).strftime("%d/%m/%Y") if archive.expires else "?"
    if lang == "en":
        return (f"document timestamps: {archive.count}, the last {last} ({archive.tsa}); its TSA certificate "
                f"expires {until}: renew before then (edudesk records refresh-ltv)")
    return (f"dấu thời gian lưu trữ: {archive.count}, gần nhất lúc {last} ({archive.tsa}); chứng thư của TSA hết "
            f"hạn ngày {until}: cần gia hạn trước ngày đó (edudesk records refresh-ltv)")
