"""Signatures that stay provable (issue #18): every signature timestamped by a real RFC 3161 TSA and its
revocation data (OCSP answers, CRLs) in the file (PAdES B-LT), a document timestamp after the issuing signature
(B-LTA), checked years ahead from the file alone. The TSA, OCSP responder and CRL are certomancer's, served on
127.0.0.1 by `LocalPkiService` from the demo CA; signing runs through the real workflow, database and jobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from edudesk.cli.localpki import LocalPkiService
from edudesk.core.models import Job
from edudesk.core.ports import FakeClock, SignItem
from edudesk.core.signing.engine import load_signer, sign_items
from edudesk.core.signing.models import SignatureStep, SignSession
from edudesk.core.signing.pades import PadesProfile
from edudesk.core.signing.pdfs import add_signature_fields
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.refresh import expiry, refresh_records
from edudesk.core.signing.spec import FieldSpec, Stage
from edudesk.core.signing.verify import verify_record
from tests.records_kit import RecordsKit, records_settings, small_roster

pytestmark = pytest.mark.db

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)
TEN_YEARS = dt.datetime.now(UTC) + timedelta(days=3652)


@pytest.fixture
def service() -> Any:
    pki = DemoPki.create()
    with LocalPkiService(pki) as running:  # binds first: every certificate after this names its URLs
        yield running


async def _kit(app_factory: Any, settings_factory: Any, tmp_path: Path, service: LocalPkiService,
               ltv: str) -> RecordsKit:
    records = records_settings(tmp_path, service.pki, tsa_url=service.tsa_url, ltv=ltv)
    settings = settings_factory(records=records, web={"enabled": False})
    app = await app_factory(settings, clock=FakeClock(START), inline_analysis=True)
    return RecordsKit(app, service.pki, app.clock, small_roster(students=2))


@pytest.fixture
async def kit(app_factory: Any, settings_factory: Any, tmp_path: Path, service: LocalPkiService,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RecordsKit]:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    yield await _kit(app_factory, settings_factory, tmp_path, service, "B-LTA")


async def _sign_subjects(kit: RecordsKit) -> None:
    for code in ("GV01", "GV02", "GV03"):
        await kit.sign(code, Stage.SUBJECT)


async def _sign_all(kit: RecordsKit) -> None:
    await _sign_subjects(kit)
    await kit.sign("GV02", Stage.HOMEROOM)
    await kit.sign("BGH01", Stage.LEADERSHIP)
    await kit.settle()  # the issuing signature, by the server


async def _verify(kit: RecordsKit, pdf: bytes, **kwargs: Any) -> Any:
    return await verify_record(pdf, trusted_roots=[kit.pki.root_der], ltv=True, **kwargs)


async def test_teachers_signatures_reach_b_lt_with_timestamp_and_revocation_data(kit: RecordsKit,
                                                                                 service: LocalPkiService) -> None:
    await kit.load()
    await kit.start()
    await _sign_subjects(kit)
    record = (await kit.records())[0]
    report = await _verify(kit, bytes(record.pdf))
    assert report.ok, (report.problems, [s.problems for s in report.signatures])
    assert [s.ltv.level for s in report.signatures if s.ltv] == ["B-LT"] * 3
    for s in report.signatures:
        assert s.ltv is not None and s.ltv.revocation_checked and s.ltv.tsa.startswith("edudesk — dịch vụ dấu thời")
        assert s.ltv.timestamp_at is not None and abs(s.ltv.timestamp_at - dt.datetime.now(UTC)) < timedelta(hours=1)
    assert service.requests["tsa"] >= 6 and service.requests["ocsp"] >= 1 and service.requests["crl"] >= 1
    # a teacher's OCSP answer is fetched once per batch on each worker that signs part of it
    assert service.requests["ocsp"] <= 3 * kit.app.signers.pool().workers


async def test_issued_record_is_b_lta_and_still_validates_ten_years_ahead(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    await _sign_all(kit)
    for record in await kit.records():
        assert record.state == "signed"
        reader = PdfFileReader(BytesIO(bytes(record.pdf)))
        assert [e.sig_object_type for e in reader.embedded_signatures][-1] == "/DocTimeStamp"
        report = await _verify(kit, bytes(record.pdf), at=TEN_YEARS)
        assert report.ok, (report.problems, [s.problems for s in report.signatures])
        assert [s.field for s in report.signatures][-1] == "phat_hanh"
        assert {s.ltv.level for s in report.signatures if s.ltv} == {"B-LTA"}
        assert all(s.ltv and s.ltv.valid_at for s in report.signatures)
        assert report.archive is not None and report.archive.count == 1


async def test_b_b_record_does_not_validate_ten_years_ahead(app_factory: Any, settings_factory: Any,
                                                            tmp_path: Path, service: LocalPkiService,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    kit = await _kit(app_factory, settings_factory, tmp_path, service, "B-B")
    await kit.load()
    await kit.start()
    await _sign_all(kit)
    before = dict(service.requests)
    record = (await kit.records())[0]
    report = await _verify(kit, bytes(record.pdf), at=TEN_YEARS)
    assert report.ok  # valid today
    assert {s.ltv.level for s in report.signatures if s.ltv} == {"B-B"}
    assert not any(s.ltv and s.ltv.valid_at for s in report.signatures)
    assert service.requests == before, "verification fetches nothing"


async def test_teacher_revoked_before_signing_is_refused_and_nothing_is_stored(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    teacher = kit.pki.find("Lê Thị Hoa")  # GV03
    assert teacher is not None
    kit.pki.revoke(teacher, dt.datetime.now(UTC) - timedelta(hours=1))
    session = await kit.sign("GV03", Stage.SUBJECT)
    assert session.state == "refused" and "thu hồi" in session.detail
    assert not await SignatureStep.filter(field="gvbm_gv03", state="signed").exists()


async def test_revocation_dated_before_the_signature_is_caught_by_verify(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    await _sign_subjects(kit)
    record = (await kit.records())[0]
    teacher = kit.pki.find("Trần Văn Cường")  # GV02, signed a moment ago
    assert teacher is not None
    good = await _verify(kit, bytes(record.pdf))
    assert good.ok
    kit.pki.revoke(teacher, dt.datetime.now(UTC) - timedelta(days=2))  # key compromised before it signed
    signed_at = max(s.ltv.timestamp_at for s in good.signatures if s.ltv and s.ltv.timestamp_at)
    published = signed_at + timedelta(minutes=5, milliseconds=500)  # this_update: just after, newer than the OCSP
    report = await _verify(kit, bytes(record.pdf), crls=[kit.pki.crl(now=published)])
    assert not report.ok
    bad = next(s for s in report.signatures if s.field == "gvbm_gv02")
    assert any("thu hồi" in p for p in bad.problems) and bad.ltv is not None and bad.ltv.revoked
    others = [s for s in report.signatures if s.field != "gvbm_gv02"]
    assert all(not s.problems for s in others)


async def test_revocation_after_the_timestamp_does_not_spoil_a_b_lt_signature(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    await _sign_subjects(kit)
    record = (await kit.records())[0]
    teacher = kit.pki.find("Trần Văn Cường")
    assert teacher is not None
    kit.pki.revoke(teacher, dt.datetime.now(UTC) + timedelta(seconds=1))  # left the school after signing
    report = await _verify(kit, bytes(record.pdf), crls=[kit.pki.crl(now=dt.datetime.now(UTC) + timedelta(seconds=2))])
    assert report.ok, [s.problems for s in report.signatures]


async def test_refresh_ltv_adds_an_archival_timestamp_and_the_record_stays_b_lta(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    await _sign_all(kit)
    records = await kit.records()
    expires = expiry(bytes(records[0].pdf))
    assert expires is not None and expires > dt.datetime.now(UTC) + timedelta(days=5 * 365)
    nothing = await refresh_records(kit.app.settings, kit.clock)  # 180 days before: not due yet
    assert (nothing.checked, nothing.refreshed) == (2, 0)
    from edudesk.core.signing.sending import unsent_ids
    from edudesk.core.signing.sendmodels import RecordSend, SendState

    for record in records:  # the portal accepted them before the renewal
        await RecordSend.create(record_id=record.id, klass_id=record.klass_id, state=SendState.SENT, receipt="BN-1",
                                sent_at=kit.clock.now(), updated_at=kit.clock.now())
    kit.clock.advance(expires - timedelta(days=30) - kit.clock.now())  # a month before the TSA certificate expires
    done = await refresh_records(kit.app.settings, kit.clock)
    assert await unsent_ids(kit.class_id) == [], "an archival timestamp is not a new version for the portal"
    assert (done.refreshed, done.failed) == (2, 0)
    for before, after in zip(records, await kit.records(), strict=True):
        assert bytes(after.pdf).startswith(bytes(before.pdf)) and after.version == before.version + 1
        report = await _verify(kit, bytes(after.pdf), at=TEN_YEARS)
        assert report.ok and report.archive is not None and report.archive.count == 2
        assert {s.ltv.level for s in report.signatures if s.ltv} == {"B-LTA"}
        assert all(s.ltv and s.ltv.valid_at for s in report.signatures)
    assert [e.detail["record"] for e in await kit.audit("record_ltv_refreshed")] == [r.id for r in records]


async def test_tsa_down_the_sign_job_retries_and_no_broken_record(kit: RecordsKit,
                                                                 service: LocalPkiService) -> None:
    await kit.load()
    await kit.start()
    original = [bytes(r.pdf) for r in await kit.records()]
    service.tsa_down = True
    session = await kit.sign("GV01", Stage.SUBJECT)
    assert session.state == "queued", session.detail  # not refused: the teacher is not told it failed
    assert [bytes(r.pdf) for r in await kit.records()] == original and all(r.held_by is None
                                                                           for r in await kit.records())
    job = await Job.get(kind="sign_batch")
    assert job.state == "pending" and job.attempts >= 1 and "TSA" in job.last_error
    service.tsa_down = False
    kit.clock.advance(timedelta(minutes=10))
    await kit.settle()
    assert (await SignSession.get(id=session.id)).state == "done"
    assert await SignatureStep.filter(field="gvbm_gv01", state="signed").count() == 2
    report = await _verify(kit, bytes((await kit.records())[0].pdf))
    assert report.ok and [s.ltv.level for s in report.signatures if s.ltv] == ["B-LT"]


async def test_pool_signs_a_batch_at_b_lt_fetching_each_chain_once_per_worker(service: LocalPkiService) -> None:
    from edudesk.core.signing.demo import demo_pdf, demo_roster
    from edudesk.core.signing.engine import LocalCredential, SigningPool

    pki = service.pki
    teacher = pki.issue("Nguyễn Thị Bích")
    spec = [FieldSpec("gvbm_gv01", Stage.SUBJECT, "GVBM Toán — Nguyễn Thị Bích")]
    roster = demo_roster(students=3)
    klass = next(iter(roster.classes.values()))
    pdfs = [add_signature_fields(demo_pdf(klass, s, roster), spec) for s in klass.students[:3]]
    items = [SignItem(key=f"k{n}", pdf=p, field="gvbm_gv01", certify=True, level="B-LT") for n, p in enumerate(pdfs)]
    profile = PadesProfile(service.tsa_url, trust_roots=(pki.root_der,))
    pool = SigningPool(1, pades=profile)
    try:
        signed = await pool.sign(LocalCredential(pkcs12=teacher.pkcs12(b"p"), passphrase=b"p"), items * 4)
    finally:
        pool.close()
    assert len(signed) == 12 and service.requests["ocsp"] == 1 and service.requests["crl"] == 1
    signer = load_signer(LocalCredential(pkcs12=teacher.pkcs12(b"p"), passphrase=b"p"))
    in_process = await sign_items(signer, items[:1], profile)  # no pool: its own batch, closed after
    for pdf in (signed[0], in_process[0]):
        report = await verify_record(pdf, trusted_roots=[pki.root_der], ltv=True)
        assert report.ok and report.signatures[0].ltv is not None and report.signatures[0].ltv.level == "B-LT"
