"""The check after each signature reads only what the signer appended (issue 19): the stored file must be the
proven one (its SHA-256 and length), and the new revisions may only fill the step's own field. Real pyHanko
signatures with demo keys; the workflow case runs on the real database and jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from edudesk.core.ports import FakeClock, SignItem
from edudesk.core.signing.engine import LocalCredential, cached_signer, sign_items
from edudesk.core.signing.increment import proof
from edudesk.core.signing.models import SchoolRecord, SignatureStep, SignSession
from edudesk.core.signing.pdfs import RecordContent, SubjectScore, add_signature_fields, record_pdf
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import FieldSpec, Stage
from edudesk.core.signing.verify import check_new_signature, verify_record
from tests.records_kit import RecordsKit, records_settings, small_roster

FIELDS = [FieldSpec("gvbm_gv01", Stage.SUBJECT, "GV01"), FieldSpec("gvbm_gv02", Stage.SUBJECT, "GV02"),
          FieldSpec("gvcn", Stage.HOMEROOM, "CN"), FieldSpec("bgh_1", Stage.LEADERSHIP, "HT")]
START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world() -> tuple[DemoPki, bytes, list[Any]]:
    pki = DemoPki.create()
    scores = (SubjectScore("Toán", "Nguyễn Thị Bích", "7,5", "8,0", "7,8", "Chăm chỉ."),)
    pdf = add_signature_fields(record_pdf(RecordContent("Trường THPT Lê Quý Đôn", "2025-2026", "10A1", "HS001",
                                                        "Nguyễn Văn An", "01/01/2010", "Nam", "Trần Văn Cường",
                                                        scores, "Tốt", "Khá", "Ngoan.")), FIELDS)
    signers = [cached_signer(LocalCredential(pkcs12=c.pkcs12(b"pw"), passphrase=b"pw"))
               for c in (pki.issue("Nguyễn Thị Bích"), pki.issue("Trần Văn Cường"), pki.issue("Lê Thị Hoa"),
                         pki.issue("Phạm Quốc Hùng"))]
    return pki, pdf, signers


async def _sign(signer: Any, pdf: bytes, field: str, *, certify: bool = False) -> bytes:
    [signed] = await sign_items(signer, [SignItem(key=field, pdf=pdf, field=field, certify=certify,
                                                  reason="Ký học bạ số", location="Hà Nội")])
    return signed


def _changed(pdf: bytes, change: Any) -> bytes:
    """`pdf` with one more (unsigned) revision made by `change(writer)`."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    change(writer)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _rotate_first_page(writer: Any) -> None:
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page[generic.NameObject("/Rotate")] = generic.NumberObject(90)
    writer.update_container(page)


def _retitle(writer: Any) -> None:
    info = writer.trailer["/Info"].get_object()
    info[generic.NameObject("/Title")] = generic.TextStringObject("Học bạ đã sửa")
    writer.update_container(info)


async def test_an_honest_signature_passes_and_costs_only_its_own_revision(world: Any) -> None:
    pki, pdf, signers = world
    first = await _sign(signers[0], pdf, "gvbm_gv01", certify=True)
    report = await check_new_signature(first, proof(pdf), field="gvbm_gv01", trusted_roots=[pki.root_der])
    assert report.ok and [s.field for s in report.signatures] == ["gvbm_gv01"] and report.signatures[0].certified
    second = await _sign(signers[1], first, "gvbm_gv02")
    report = await check_new_signature(second, proof(first), field="gvbm_gv02", trusted_roots=[pki.root_der])
    assert report.ok and [s.field for s in report.signatures] == ["gvbm_gv02"]


@pytest.mark.parametrize("change", [_rotate_first_page, _retitle])
async def test_a_signature_over_any_other_change_is_refused_before_the_next_signer(world: Any, change: Any) -> None:
    pki, pdf, signers = world
    first = await _sign(signers[0], pdf, "gvbm_gv01", certify=True)
    second = await _sign(signers[1], _changed(first, change), "gvbm_gv02")  # the signature itself is good
    report = await check_new_signature(second, proof(first), field="gvbm_gv02", trusted_roots=[pki.root_der])
    assert not report.ok
    assert any("ngoài phạm vi cho phép" in p for p in report.problems), report.problems
    assert "bị ghi đè" in report.problems[0] or "ngoài phần được phép" in report.problems[0]


async def test_a_file_not_beginning_with_the_proven_bytes_is_refused(world: Any) -> None:
    pki, pdf, signers = world
    first = await _sign(signers[0], pdf, "gvbm_gv01", certify=True)
    flipped = bytearray(first)
    at = flipped.find(b"/Producer")
    flipped[at + 12] ^= 0x01
    second = await _sign(signers[1], bytes(flipped), "gvbm_gv02")
    report = await check_new_signature(second, proof(first), field="gvbm_gv02", trusted_roots=[pki.root_der])
    assert report.problems == ("tệp sau khi ký không giữ nguyên các phiên bản trước (bị viết lại)",)


async def test_a_field_signed_out_of_stage_order_or_a_first_signature_not_certifying_is_refused(world: Any) -> None:
    pki, pdf, signers = world
    first = await _sign(signers[0], pdf, "gvbm_gv01", certify=True)
    leader = await _sign(signers[3], first, "bgh_1")
    late = await _sign(signers[1], leader, "gvbm_gv02")
    report = await check_new_signature(late, proof(leader), field="gvbm_gv02", trusted_roots=[pki.root_der])
    assert "sai thứ tự ký" in report.problems
    uncertified = await _sign(signers[0], pdf, "gvbm_gv01")
    report = await check_new_signature(uncertified, proof(pdf), field="gvbm_gv01", trusted_roots=[pki.root_der])
    assert "chữ ký đầu tiên không phải chữ ký chứng nhận (DocMDP)" in report.problems


async def test_the_full_validation_still_sees_what_the_increments_allowed(world: Any) -> None:
    pki, pdf, signers = world
    first = await _sign(signers[0], pdf, "gvbm_gv01", certify=True)
    second = await _sign(signers[1], first, "gvbm_gv02")
    report = await check_new_signature(second, proof(first), field="gvbm_gv02", trusted_roots=[pki.root_der],
                                       full=[f.name for f in FIELDS])
    assert [s.field for s in report.signatures] == ["gvbm_gv01", "gvbm_gv02"]
    assert report.problems == ("còn thiếu chữ ký: gvcn, bgh_1",)
    assert (await verify_record(second, trusted_roots=[pki.root_der])).ok


@pytest.mark.db
async def test_a_stored_record_altered_between_two_signatures_is_not_signed_again(
        app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki, clock = DemoPki.create(), FakeClock(START)
    app = await app_factory(settings_factory(records=records_settings(tmp_path, pki), web={"enabled": False}),
                            clock=clock, inline_analysis=True)
    kit = RecordsKit(app, pki, clock, small_roster())
    await kit.load()
    await kit.start()
    assert (await kit.sign("GV01", Stage.SUBJECT)).state == "done"
    records = await kit.records()
    assert all(r.pdf_sha256 and r.pdf_length == len(r.pdf) for r in records), "each save keeps the proof"
    victim = records[0]
    altered = _changed(bytes(victim.pdf), _retitle)  # a plausible file, changed outside the workflow
    await SchoolRecord.filter(id=victim.id).update(pdf=altered)
    session = await kit.sign("GV03", Stage.SUBJECT)
    assert session.state == "refused" and "bị sửa ngoài quy trình ký" in session.detail
    assert not await SignatureStep.filter(record_id=victim.id, field="gvbm_gv03", state="signed").exists()
    assert await SignatureStep.filter(field="gvbm_gv03", state="signed").count() == len(records) - 1
    assert bytes((await SchoolRecord.get(id=victim.id)).pdf) == altered, "nothing was signed over it"
    [event] = await kit.audit("record_signature_rejected")
    assert event.detail["record"] == victim.id and "mã băm" in event.detail["problems"][0]
    assert await SignSession.filter(state="refused").count() == 1
