"""Remote signatures (CSC API, VNPT SmartCA) reach the same PAdES levels as local ones (issue #18): the
provider's raw signature gets its RFC 3161 timestamp (B-T), the validation data of the teacher's chain and the
TSA's goes into the DSS (B-LT), the issuing signature a document timestamp (B-LTA). The TSA, OCSP responder and
CRL are certomancer's on 127.0.0.1 (`LocalPkiService`); the providers are the fakes in tests/fakes, holding keys
of certificates of that CA. A revoked teacher is refused before the phone rings; a TSA that fails after the
person said yes keeps the signatures and finishing is tried again without a second prompt."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edudesk.cli.localpki import LocalPkiService
from edudesk.core.ports import FakeClock, SignItem
from edudesk.core.signing.csc import CscSigner
from edudesk.core.signing.demo import demo_pdf, demo_roster
from edudesk.core.signing.importer import class_fields, field_code
from edudesk.core.signing.models import SignatureStep, Teacher
from edudesk.core.signing.pades import PadesProfile, SignerCertRefused
from edudesk.core.signing.pdfs import add_signature_fields
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.smartca import SmartCaSigner
from edudesk.core.signing.spec import Stage, field_name
from edudesk.core.signing.verify import verify_record
from tests.fakes.csc import FakeCsc, Subscriber
from tests.fakes.smartca import FakeSmartCa, fake_smartca_fixture  # noqa: F401
from tests.records_kit import ADMIN, RecordsKit, records_settings, small_roster

TEACHER = "GV01"
FIELD = field_name(Stage.SUBJECT, field_code(TEACHER))


@pytest.fixture
def service() -> Iterator[LocalPkiService]:
    """The demo CA's TSA, OCSP responder and CRL on 127.0.0.1 (certificates issued after it name them)."""
    with LocalPkiService(DemoPki.create()) as running:
        yield running


@pytest.fixture
def profile(service: LocalPkiService) -> PadesProfile:
    return PadesProfile(service.tsa_url, trust_roots=(service.pki.root_der,))


@pytest.fixture
async def csc(service: LocalPkiService) -> AsyncIterator[FakeCsc]:
    fake = await FakeCsc(service.pki, clock=FakeClock(datetime.now(UTC)), multisign=20).start()
    yield fake
    await fake.stop()


def records(count: int, level: str) -> list[SignItem]:
    """The first teacher's (certifying) signature on `count` demo records, at `level`."""
    roster = demo_roster(students=count)
    row = roster.classes["10A1"]
    fields = [spec for spec, _ in class_fields(row, roster.teachers)]
    return [SignItem(key=f"step:{n}", pdf=add_signature_fields(demo_pdf(row, s, roster), fields), field=FIELD,
                     certify=True, reason="Ký học bạ", signer_name=roster.teachers[TEACHER].name, level=level)
            for n, s in enumerate(row.students[:count])]


async def levels(pdf: bytes, pki: DemoPki) -> list[str]:
    report = await verify_record(pdf, trusted_roots=[pki.root_der], ltv=True)
    assert report.ok, report
    for sig in report.signatures:
        assert sig.ltv is not None and sig.ltv.timestamp_at is not None and sig.ltv.tsa, sig
    return [s.ltv.level for s in report.signatures if s.ltv]


def csc_signer(fake: FakeCsc, sub: Subscriber, profile: PadesProfile | None) -> CscSigner:
    return CscSigner(fake.url + "/csc/v1", fake.token_for(sub), sub.credential_id, clock=fake.clock, pades=profile)


async def csc_sign(fake: FakeCsc, sub: Subscriber, profile: PadesProfile | None, items: list[SignItem]) -> Any:
    """One signer (a process of its own) signs `items`, the person's phone answering yes; closed after."""
    fake.phone = "confirm"
    signer = csc_signer(fake, sub, profile)
    try:
        return await signer.sign(items)
    finally:
        await signer.close()


async def test_csc_signatures_are_timestamped_with_revocation_data_b_lt(csc: FakeCsc, service: LocalPkiService,
                                                                         profile: PadesProfile) -> None:
    sub = csc.add_subscriber("Nguyễn Thị Bích")
    outcome = await csc_sign(csc, sub, profile, records(3, "B-LT"))
    assert outcome.pending is None and len(outcome.signed) == 3
    for pdf in outcome.signed:
        assert await levels(pdf, service.pki) == ["B-LT"]
    # one batch: the teacher's chain and the TSA's validated once, not once per record
    assert service.requests["ocsp"] == 1 and service.requests["crl"] == 1
    assert service.requests["tsa"] >= 3, "one signature timestamp per record"
    assert len(csc.prompts) == 1


async def test_csc_issuing_signature_gets_the_document_timestamp_b_lta(csc: FakeCsc, service: LocalPkiService,
                                                                        profile: PadesProfile) -> None:
    sub = csc.add_subscriber("Trường THPT Lê Quý Đôn")
    outcome = await csc_sign(csc, sub, profile, records(1, "B-LTA"))
    report = await verify_record(outcome.signed[0], trusted_roots=[service.pki.root_der], ltv=True,
                                 at=dt.datetime.now(UTC) + timedelta(days=3652))
    assert report.ok and report.archive is not None and report.archive.count == 1
    assert [s.ltv.level for s in report.signatures if s.ltv] == ["B-LTA"]
    assert report.signatures[0].ltv is not None and report.signatures[0].ltv.valid_at is True


async def test_without_a_tsa_a_remote_signature_stays_b_b(csc: FakeCsc, service: LocalPkiService) -> None:
    sub = csc.add_subscriber("Nguyễn Thị Bích")
    outcome = await csc_sign(csc, sub, None, records(1, "B-B"))
    report = await verify_record(outcome.signed[0], trusted_roots=[service.pki.root_der], ltv=True)
    assert report.ok and [s.ltv.level for s in report.signatures if s.ltv] == ["B-B"]
    assert service.requests["tsa"] == 0


async def test_revoked_teacher_is_refused_before_the_phone_rings(csc: FakeCsc, service: LocalPkiService,
                                                                 profile: PadesProfile) -> None:
    sub = csc.add_subscriber("Lê Thị Hoa")
    service.pki.revoke(sub.credential, dt.datetime.now(UTC) - timedelta(hours=1))
    csc.phone = "confirm"
    signer = csc_signer(csc, sub, profile)
    try:
        with pytest.raises(SignerCertRefused, match="thu hồi"):
            await signer.sign(records(2, "B-LT"))
    finally:
        await signer.close()
    assert csc.prompts == [] and csc.endpoint_calls("signatures/signHash") == []


async def test_tsa_down_after_yes_keeps_the_signatures_and_finishes_without_a_second_prompt(
        csc: FakeCsc, service: LocalPkiService, profile: PadesProfile) -> None:
    sub = csc.add_subscriber("Nguyễn Thị Bích")
    csc.phone = "confirm"

    def tsa_falls(*_: Any) -> None:  # the person said yes; the TSA goes down before finishing
        service.tsa_down = True

    csc.after_authorize = tsa_falls
    signer = csc_signer(csc, sub, profile)
    try:
        outcome = await signer.sign(records(2, "B-LT"))
    finally:
        await signer.close()
    assert outcome.pending is not None and not outcome.signed
    assert all(outcome.pending["signatures"]), "every signature the provider made is kept"
    service.tsa_down, csc.after_authorize = False, None
    again = csc_signer(csc, sub, profile)  # a fresh process resumes from the stored state
    try:
        done = await again.resume(outcome.pending, outcome.prepared)
    finally:
        await again.close()
    assert len(done.signed) == 2 and len(csc.prompts) == 1, "no second prompt on the phone"
    assert len(csc.endpoint_calls("signatures/signHash")) == 1
    for pdf in done.signed:
        assert await levels(pdf, service.pki) == ["B-LT"]


async def test_smartca_signature_reaches_b_lt_after_the_phone_confirms(fake_smartca: FakeSmartCa,
                                                                       service: LocalPkiService,
                                                                       profile: PadesProfile) -> None:
    sub = fake_smartca.add_subscriber("079085001234", "Nguyễn Thị Bích", issued=service.pki.issue("Nguyễn Thị Bích"))
    signer = SmartCaSigner(fake_smartca.url, fake_smartca.client_id, fake_smartca.client_secret, sub.user_id,
                           pades=profile)
    try:
        pending = await signer.sign(records(2, "B-LT"))
        assert pending.pending is not None and [i["level"] for i in pending.pending["items"]] == ["B-LT", "B-LT"]
        fake_smartca.confirm(fake_smartca.waiting()[0].id)
        outcome = await signer.resume(pending.pending, pending.prepared)
    finally:
        await signer.close()
    assert len(outcome.signed) == 2
    for pdf in outcome.signed:
        assert await levels(pdf, service.pki) == ["B-LT"]


async def test_workflow_signs_with_smartca_at_the_configured_level(app_factory: Any, settings_factory: Any,
                                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   service: LocalPkiService,
                                                                   fake_smartca: FakeSmartCa) -> None:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    monkeypatch.setenv("EDUDESK_SMARTCA_SP_PASSWORD", fake_smartca.client_secret)
    clock = FakeClock(datetime.now(UTC))
    settings_records = records_settings(tmp_path, service.pki, tsa_url=service.tsa_url, ltv="B-LT",
                                        smartca={"url": fake_smartca.url, "sp_id": fake_smartca.client_id,
                                                 "poll_seconds": 1})
    settings = settings_factory(records=settings_records, web={"enabled": False})
    kit = RecordsKit(await app_factory(settings, clock=clock, inline_analysis=True), service.pki, clock,
                     small_roster(students=2))
    await kit.load(skip=("GV03",))
    teacher = await Teacher.get(code="GV03")
    sub = fake_smartca.add_subscriber("079085001234", teacher.name, issued=service.pki.issue(teacher.name))
    row = await kit.app.records.credentials.register(teacher, "smartca", actor=ADMIN, user_id=sub.user_id)
    await kit.app.records.credentials.decide(ADMIN, row.id, True)
    await kit.start()
    session = await kit.sign("GV03", Stage.SUBJECT)
    assert session.state == "pending"
    fake_smartca.confirm(fake_smartca.waiting()[0].id)
    clock.advance(timedelta(seconds=5))
    await kit.settle()
    assert await SignatureStep.filter(field="gvbm_gv03", state="signed").count() == 2
    for record in await kit.records():
        report = await verify_record(bytes(record.pdf), trusted_roots=[service.pki.root_der], ltv=True)
        assert report.ok, report
        assert [s.ltv.level for s in report.signatures if s.ltv] == ["B-LT"]
