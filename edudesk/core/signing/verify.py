"""Proving a record's signatures: every signature validated with pyHanko (intact, valid, trusted, what
changed after it by diff analysis against the certification's DocMDP and each field lock), in stage order.

`check_new_signature` is the check run after EVERY signature of the workflow, at a cost that does not grow
with the record: the new file must begin with the exact bytes of the proven one (its stored SHA-256 and
length), only the revisions the signer appended are analysed (increment.py: nothing but filling the step's
own field, in stage order) and only the new signature is validated (intact, valid, trusted). Any other change
is caught before the next signer. `verify_record`, the full validation with pyHanko's difference analysis of
every signature, runs once at issue (the issuing signature's check) and at export, in the signing pool.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

from edudesk.core.signing.levels import ArchiveFacts, LtvFacts
from edudesk.core.signing.spec import STAGE_LABELS, Stage
from edudesk.core.text import local_time
from edudesk.core.words import t

PREFIX_STAGE = {"gvbm": Stage.SUBJECT, "gvcn": Stage.HOMEROOM, "bgh": Stage.LEADERSHIP, "phat": Stage.ISSUER}
CHANGES = {"NONE": ("không có thay đổi", "no changes"), "LTA_UPDATES": ("chỉ thêm dữ liệu kiểm tra (LTV)",
                                                                        "validation data only"),
           "FORM_FILLING": ("chỉ thêm chữ ký / điền biểu mẫu", "signatures and form filling only"),
           "ANNOTATIONS": ("có thêm chú thích", "annotations added"), "OTHER": ("CÓ THAY ĐỔI NỘI DUNG",
                                                                            "CONTENT CHANGED")}


@dataclass(frozen=True)
class SignatureReport:
    """One signature of a record as validation sees it."""

    field: str
    role: str
    signer: str
    signed_at: datetime | None
    intact: bool
    valid: bool
    trusted: bool
    certified: bool
    modification: str
    changes_after: str
    problems: tuple[str, ...] = ()
    ltv: LtvFacts | None = None  # PAdES level, timestamp, revocation data (verify_record(ltv=True))


@dataclass(frozen=True)
class RecordReport:
    """Every signature of a record and the record's own problems."""

    signatures: tuple[SignatureReport, ...]
    problems: tuple[str, ...] = ()
    archive: ArchiveFacts | None = None  # the document timestamps (verify_record(ltv=True))

    @property
    def ok(self) -> bool:
        """No problem anywhere, and at least one signature."""
        return bool(self.signatures) and not self.problems and not any(s.problems for s in self.signatures)


def stage_of(field: str) -> Stage | None:
    """The stage a field name belongs to (spec.field_name's prefixes)."""
    return PREFIX_STAGE.get(field.split("_", 1)[0])


@functools.cache
def diff_policy() -> Any:
    """pyHanko's default diff policy, except that an appearance stream rewritten in place no longer counts as
    form filling: pyHanko 0.38 reports every *unchanged* appearance of a field as such an update whenever a
    later revision adds a field (a document timestamp), which on a field the issuing signature locked (the
    date line) reads as tampering. Stricter, not looser: a real in-place rewrite is now an unexplained change."""
    from pyhanko.sign.diff_analysis import (
        DEFAULT_DIFF_POLICY,
        FormUpdatingRule,
        GenericFieldModificationRule,
        SigFieldCreationRule,
        SigFieldModificationRule,
        StandardDiffPolicy,
    )

    return StandardDiffPolicy(global_rules=DEFAULT_DIFF_POLICY.global_rules, form_rule=FormUpdatingRule(field_rules=[
        SigFieldCreationRule(), SigFieldModificationRule(),
        GenericFieldModificationRule(allow_in_place_appearance_stream_changes=False)]))


def _context(trusted_roots: Sequence[bytes], crls: Sequence[bytes], now: datetime | None) -> Any:
    from asn1crypto import crl, x509
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(trust_roots=[x509.Certificate.load(d) for d in trusted_roots],
                             crls=[crl.CertificateList.load(c) for c in crls], allow_fetching=False,
                             revocation_mode="soft-fail", moment=now)


async def _one(emb: Any, context: Any, *, is_last: bool, skip_diff: bool = False) -> SignatureReport:
    from pyhanko.sign.validation import async_validate_pdf_signature

    field = str(emb.field_name)
    stage = stage_of(field)
    status = await async_validate_pdf_signature(emb, signer_validation_context=context, diff_policy=diff_policy(),
                                                skip_diff=skip_diff)
    cn = status.signing_cert.subject.native.get("common_name", "") if status.signing_cert else ""
    level = status.modification_level.name if status.modification_level is not None else "NONE"
    problems = []
    if not status.intact:
        problems.append("nội dung đã bị sửa sau khi ký (chữ ký không còn nguyên vẹn)")
    elif not status.valid:
        problems.append("chữ ký không hợp lệ")
    if status.intact and status.valid and not status.trusted:
        problems.append("chứng thư số không chuỗi được tới CA tin cậy" if not status.revoked
                        else "chứng thư số đã bị thu hồi")
    if status.docmdp_ok is False or level in ("ANNOTATIONS", "OTHER"):
        problems.append(f"sau chữ ký này tài liệu bị thay đổi ngoài phạm vi cho phép ({CHANGES[level][0]})")
    if stage is None:
        problems.append(f"trường chữ ký lạ: {field}")
    changes = CHANGES.get(level, (level, level))[0] if not is_last else CHANGES["NONE"][0]
    return SignatureReport(field, STAGE_LABELS[stage] if stage else "?", str(cn), status.signer_reported_dt,
                           status.intact, status.valid, status.trusted, emb.docmdp_level is not None, level, changes,
                           tuple(problems))


def _reader(pdf: bytes) -> Any:
    from pyhanko.pdf_utils.reader import PdfFileReader

    from edudesk.core.signing.speedups import install_fast_pdf_parsing

    install_fast_pdf_parsing()  # every earlier signature's ~32 KB of hex, read a block at a time
    return PdfFileReader(BytesIO(pdf), strict=False)


def _split(reader: Any) -> tuple[list[Any], list[Any], Any]:
    """(signatures, document timestamps, the last of either) in signing order."""
    everything = sorted(reader.embedded_signatures, key=lambda e: e.signed_revision)
    signatures = [e for e in everything if e.sig_object_type == "/Sig"]
    return signatures, [e for e in everything if e.sig_object_type != "/Sig"], everything[-1] if everything else None


async def verify_record(pdf: bytes, *, trusted_roots: Sequence[bytes], crls: Sequence[bytes] = (),
                        expected_fields: Sequence[str] | None = None, now: datetime | None = None,
                        ltv: bool = False, at: datetime | None = None) -> RecordReport:
    """Validate every signature; never raises for a bad file (it becomes a problem of the report). `ltv`: also
    each signature's PAdES level and long-term facts (levels.py), with `at` whether it validates at that date."""
    try:
        reader = _reader(pdf)
        embedded, stamps, last = _split(reader)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear problem
        return RecordReport((), (f"không đọc được tệp PDF: {exc}",))
    context = _context(trusted_roots, crls, now)
    reports = []
    for emb in embedded:
        try:
            report = await _one(emb, context, is_last=emb is last)
            if ltv and report.intact and report.valid:
                report = await _with_ltv(report, emb, trusted_roots, crls, at)
            reports.append(report)
        except Exception as exc:  # noqa: BLE001 - a broken signature dictionary is a problem, not a crash
            reports.append(SignatureReport(str(emb.field_name), "?", "", None, False, False, False, False, "OTHER",
                                           "", (f"không kiểm tra được chữ ký: {exc}",)))
    problems = _order_problems(reports, expected_fields)
    for stamp in stamps:
        problems += await _stamp_problems(stamp, context)
    archive = None
    if ltv:
        from edudesk.core.signing.levels import archive_facts

        archive = archive_facts(reader)
    return RecordReport(tuple(reports), tuple(problems), archive)


async def _with_ltv(report: SignatureReport, emb: Any, roots: Sequence[bytes], crls: Sequence[bytes],
                    at: datetime | None) -> SignatureReport:
    """The report with its long-term facts. A certificate revoked only after its timestamp proved the signature
    existed does not spoil it (the AdES validation passed): that present-day finding is dropped. One revoked
    from before the timestamp (a CRL of `[records] crls` says so) is, whatever the file's OCSP answer said."""
    from edudesk.core.signing.levels import ltv_facts, revoked_since

    facts = await ltv_facts(emb, roots, crls=crls, at=at)
    problems = report.problems
    since = revoked_since(emb.signer_cert, crls)
    if since is not None and facts.timestamp_at is not None and since <= facts.timestamp_at:
        facts = dataclasses.replace(facts, revoked=True)
    if facts.indication == "OK" and not facts.revoked:
        problems = tuple(p for p in problems if "thu hồi" not in p)
    elif facts.revoked and not any("thu hồi" in p for p in problems):
        problems += ("chứng thư số đã bị thu hồi trước thời điểm ký",)
    trusted = (report.trusted or facts.indication == "OK") and not facts.revoked
    return dataclasses.replace(report, ltv=facts, problems=problems, trusted=trusted)


async def _stamp_problems(stamp: Any, context: Any) -> list[str]:
    """A document timestamp that is not intact, valid and from a trusted TSA."""
    from pyhanko.sign.validation import async_validate_pdf_timestamp

    try:
        status = await async_validate_pdf_timestamp(stamp, validation_context=context, diff_policy=diff_policy())
    except Exception as exc:  # noqa: BLE001
        return [f"không kiểm tra được dấu thời gian tài liệu: {exc}"]
    if not (status.intact and status.valid):
        return ["dấu thời gian tài liệu (lưu trữ) không còn nguyên vẹn"]
    return [] if status.trusted else ["dấu thời gian tài liệu do một TSA không được tin cậy cấp"]


def _order_problems(reports: list[SignatureReport], expected: Sequence[str] | None) -> list[str]:
    problems = []
    if not reports:
        problems.append("tệp không có chữ ký số nào")
        return problems
    if not reports[0].certified:
        problems.append("chữ ký đầu tiên không phải chữ ký chứng nhận (DocMDP)")
    stages = [stage_of(r.field) or 0 for r in reports]
    for before, after, report in zip(stages, stages[1:], reports[1:], strict=False):
        if after < before:
            problems.append(f"chữ ký {report.field} ({report.role}) đứng sau một bước ký muộn hơn: sai thứ tự ký")
    if expected is not None:
        missing = [f for f in expected if f not in {r.field for r in reports}]
        if missing:
            problems.append(f"còn thiếu chữ ký: {', '.join(missing)}")
    return problems


async def check_new_signature(signed: bytes, proven: tuple[int, str], *, field: str, trusted_roots: Sequence[bytes],
                              crls: Sequence[bytes] = (), full: Sequence[str] | None = None) -> RecordReport:
    """The check after one new signature in `field` on a proven file of `proven` = (length, SHA-256): the signed
    file must begin with exactly those bytes; then only the new revisions are analysed and only the new signature
    validated (increment.py), at a cost that does not grow with the record. `full` (the record's fields): the
    full validation of every signature instead, as at issue."""
    from edudesk.core.signing.increment import Unexplained, review

    length, digest = proven
    if len(signed) <= length or hashlib.sha256(memoryview(signed)[:length]).hexdigest() != digest:
        return RecordReport((), ("tệp sau khi ký không giữ nguyên các phiên bản trước (bị viết lại)",))
    if full is not None:
        return await verify_record(signed, trusted_roots=trusted_roots, crls=crls, expected_fields=full)
    try:
        reader = _reader(signed)
        increment = review(reader, length, field)
        from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature

        emb = EmbeddedPdfSignature(reader, increment.field, field)
    except Unexplained as exc:
        return RecordReport((), (f"sau chữ ký mới tài liệu bị thay đổi ngoài phạm vi cho phép: {exc}",))
    except Exception as exc:  # noqa: BLE001
        return RecordReport((), (f"không đọc được tệp PDF sau khi ký: {exc}",))
    report = await _one(emb, _kept_context(tuple(trusted_roots), tuple(crls)), is_last=True, skip_diff=True)
    problems = []
    from pyhanko.sign.validation import SignatureCoverageLevel

    if emb.signed_revision != increment.base_revision + 1 or emb.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        problems.append("chữ ký mới không phủ đúng phiên bản nó thêm vào tệp")
    if not increment.signed_before and not report.certified:
        problems.append("chữ ký đầu tiên không phải chữ ký chứng nhận (DocMDP)")
    if max((stage_of(f) or 0 for f in increment.signed_before), default=0) > (stage_of(field) or 0):
        problems.append("sai thứ tự ký")
    return RecordReport((report,), tuple(problems))


_CONTEXTS: dict[tuple[tuple[bytes, ...], tuple[bytes, ...]], tuple[float, Any]] = {}
CONTEXT_SECONDS = 60.0  # how long a worker reuses one validation context (its validated paths) for new signatures


def _kept_context(roots: tuple[bytes, ...], crls: tuple[bytes, ...]) -> Any:
    """A validation context kept CONTEXT_SECONDS: the paths it validated (a teacher's certificate, 40 records in a
    row) are not built again for every signature; a new one after that, so a changed CRL is seen soon."""
    now = time.monotonic()
    kept = _CONTEXTS.get((roots, crls))
    if kept is None or now - kept[0] > CONTEXT_SECONDS:
        _CONTEXTS.clear()
        kept = _CONTEXTS[(roots, crls)] = (now, _context(roots, crls, None))
    return kept[1]


def format_report(report: RecordReport, *, lang: str = "vi", timezone: str = "Asia/Ho_Chi_Minh",
                  at: datetime | None = None) -> str:
    """One line per signature (signer, role, local time, intact, trusted, changes after it; with long-term
    facts their own line), then the document timestamps and the problems."""
    from edudesk.core.signing.levels import describe, describe_archive

    en = lang == "en"
    yes, no = ("yes", "NO") if en else ("có", "KHÔNG")
    lines = []
    for n, s in enumerate(report.signatures, start=1):
        when = local_time(s.signed_at, timezone) if s.signed_at else "?"
        changes = CHANGES.get(s.modification, (s.changes_after, s.changes_after))[1] if en else s.changes_after
        if en:
            lines.append(f"{n}. {s.field} [{s.role}] {s.signer} at {when}: intact {yes if s.intact else no}, "
                         f"trusted {yes if s.trusted else no}{', certification' if s.certified else ''}; "
                         f"after it: {changes}")
        else:
            lines.append(f"{n}. {s.field} [{s.role}] {s.signer} lúc {when}: nguyên vẹn {yes if s.intact else no}, "
                         f"tin cậy {yes if s.trusted else no}{', chữ ký chứng nhận' if s.certified else ''}; "
                         f"sau đó: {changes}")
        if s.ltv is not None:
            lines.append("   " + describe(s.ltv, lang=lang, timezone=timezone, at=at))
        lines += [f"   ⚠ {p}" for p in s.problems]
    if report.archive is not None:
        lines.append(describe_archive(report.archive, lang=lang, timezone=timezone))
    lines += [f"⚠ {p}" for p in report.problems]
    lines.append(t("cli.verify_ok" if report.ok else "cli.verify_failed", lang))
    return "\n".join(lines)
