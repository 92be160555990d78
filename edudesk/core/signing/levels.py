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
        local_knowledge=LocalKnowledge(known_crls=[CRLContainer(crl.CertificateList.load(c)) for c in crls])))


def _common_name(cert: Any) -> str:
    return str(cert.subject.native.get("common_name", "")) if cert is not None else ""


def _signature_timestamp(emb: Any) -> tuple[datetime | None, str]:
    from pyhanko.sign.general import extract_certificate_info
    from pyhanko.sign.validation.generic_cms import extract_tst_data_iter

    for tst in extract_tst_data_iter(emb.signer_info, signed=False):
        info = tst["encap_content_info"]["content"].parsed
        return info["gen_time"].native, _common_name(extract_certificate_info(tst).signer_cert)
    return None, ""


async def ltv_facts(emb: Any, trust_roots: Sequence[bytes], *, crls: Sequence[bytes] = (),
                    at: datetime | None = None) -> LtvFacts:
    """The level `emb` (a regular signature) reaches and, with `at`, whether it validates then."""
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko.sign.validation.ades import ades_lta_validation, simulate_future_ades_lta_validation

    spec = validation_spec(trust_roots, crls)
    ts_at, tsa = _signature_timestamp(emb)
    result = await ades_lta_validation(emb, spec)
    passed = result.ades_subindic == AdESPassed.OK
    ts_status = result.signature_timestamp_status  # None when validation stopped before the timestamp
    level = int(ts_at is not None and (ts_status is None or ts_status.ades_subindic == AdESPassed.OK))
    if level and passed:
        level = 3 if result.oldest_evidence_record_timestamp is not None else 2
    valid_at = None
    if at is not None:
        future = await simulate_future_ades_lta_validation(emb, spec, future_validation_time=at)
        valid_at = future.ades_subindic == AdESPassed.OK
    name = str(getattr(result.ades_subindic, "name", result.ades_subindic))
    return LtvFacts(LEVELS[level], ts_at, tsa, passed, name in REVOKED, name, valid_at)


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
