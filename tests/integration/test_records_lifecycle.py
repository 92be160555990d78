"""The life of a record after signing, on a real database with real signatures: the correction after Báo sai sót
(the corrected PDF replaces the record, the old revision stays archived and verifiable, stage 1 reopens for that
record only), the principal signing after the vice principals, withdrawal and adjustment with minutes the
leadership signs, the export's chain of revisions, and nothing else changing a signed record."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.errors import EdudeskError
from edudesk.core.models import Job
from edudesk.core.ports import FakeClock
from edudesk.core.signing.changes import start_change
from edudesk.core.signing.complete import export_class
from edudesk.core.signing.correction import pdf_text, replace_record
from edudesk.core.signing.demo import demo_pdf
from edudesk.core.signing.importer import import_roster
from edudesk.core.signing.lifemodels import ChangeKind, RecordChange, RecordRevision
from edudesk.core.signing.models import SchoolClass, SchoolRecord, SignatureStep, Teacher
from edudesk.core.signing.pdfs import RecordContent, SubjectScore, record_pdf
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.roster import Roster, TeacherRow
from edudesk.core.signing.spec import Stage
from edudesk.core.signing.trust import trust_material
from edudesk.core.signing.verify import verify_record
from tests.records_kit import ADMIN, PIN, RecordsKit, records_settings, small_roster

pytestmark = pytest.mark.db

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
VICE = ("BGH02", "BGH03")


def leadership_roster() -> Roster:
    """The small class with three in the leadership: two vice principals and the principal (BGH01)."""
    roster = small_roster()
    roster.teachers["BGH02"] = TeacherRow("BGH02", "Đỗ Thị Lan", "bgh02@thpt.edu.vn")
    roster.teachers["BGH03"] = TeacherRow("BGH03", "Vũ Minh Tâm", "bgh03@thpt.edu.vn")
    row = roster.classes["10A1"]
    row.leaders = ["BGH01", "BGH02", "BGH03"]  # the principal's box first: the order of signing is not the boxes'
    row.principal = "BGH01"
    return roster


def make_kit(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             **records: Any) -> Any:
    async def make(roster: Roster) -> RecordsKit:
        monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
        pki = DemoPki.create()
        clock = FakeClock(START)
        settings = settings_factory(records=records_settings(tmp_path, pki, **records), web={"enabled": False})
        app = await app_factory(settings, clock=clock, inline_analysis=True)
        kit = RecordsKit(app, pki, clock, roster)
        await kit.load()
        await kit.start()
        return kit
    return make


@pytest.fixture
def school(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return make_kit(app_factory, settings_factory, tmp_path, monkeypatch)


async def trust(kit: RecordsKit) -> dict[str, Any]:
    roots, crls = trust_material(kit.app.settings)
    return {"trusted_roots": roots, "crls": crls}


async def sign_to_leadership(kit: RecordsKit) -> None:
    for code in ("GV01", "GV02", "GV03"):
        await kit.sign(code, Stage.SUBJECT)
    await kit.sign("GV02", Stage.HOMEROOM)


async def sign_all(kit: RecordsKit) -> None:
    """Every stage, the leadership in its order (vice principals, then the principal), then the issuing seal."""
    await sign_to_leadership(kit)
    leaders = [c for c in kit.roster.classes["10A1"].leaders if c != "BGH01"] + ["BGH01"]
    for code in leaders:
        await kit.sign(code, Stage.LEADERSHIP)
    await kit.settle()


def exported(kit: RecordsKit, index: int) -> bytes:
    """Student `index`'s record as the records software exports it."""
    row = kit.roster.classes["10A1"]
    return demo_pdf(row, row.students[index], kit.roster)


def corrected(kit: RecordsKit, index: int, note: str = "Điểm Toán học kì II đã được sửa.") -> bytes:
    """A corrected export of student `index`'s record (another mark, another comment)."""
    row = kit.roster.classes["10A1"]
    code, name, born = row.students[index]
    return record_pdf(RecordContent(row.school, row.year, row.name, code, name, born, "Nam", "Trần Văn Cường",
                                    (SubjectScore("Toán", "Nguyễn Thị Bích", "8,0", "9,0", "8,7", note),),
                                    "Tốt", "Tốt", note))


async def minutes_of(change: RecordChange) -> SchoolRecord:
    return await SchoolRecord.get(id=change.minutes_id)


async def sign_minutes(kit: RecordsKit, change: RecordChange, codes: tuple[str, ...]) -> None:
    """The leadership signs the minutes (Ký ngay on the class's minutes book, as for their records)."""
    book = (await minutes_of(change)).klass_id
    for code in codes:
        await kit.app.records.start_signing(await kit.actor(code), book, Stage.LEADERSHIP, pin=PIN)
        await kit.settle()


async def test_a_corrected_pdf_must_be_that_students_unsigned_record(school: Any) -> None:
    kit = await school(small_roster())
    await kit.sign("GV01", Stage.SUBJECT)
    first, second, _ = await kit.records()
    with pytest.raises(EdudeskError, match="duyệt huỷ"):  # no approved cancellation: nothing to replace
        await replace_record(kit.app.records, ADMIN, first.id, exported(kit, 0))
    ret = await kit.app.records.return_record(await kit.actor("GV02"), first.id, "Sai họ tên")
    await kit.app.records.decide_return(ADMIN, ret.id, True)
    waiting = await SchoolRecord.get(id=first.id)
    assert waiting.state == "correcting" and bytes(waiting.pdf) == bytes(first.pdf), "the old file is not re-signed"
    assert not await SignatureStep.filter(record_id=first.id, state="open").exists()
    with pytest.raises(EdudeskError, match="HS001") as mismatch:
        await replace_record(kit.app.records, ADMIN, first.id, exported(kit, 1))  # another student's record
    assert mismatch.value.code == "identity_mismatch"
    with pytest.raises(EdudeskError) as signed:
        await replace_record(kit.app.records, ADMIN, first.id, bytes(first.pdf))  # its own, already signed
    assert signed.value.code == "pdf_signed"
    with pytest.raises(EdudeskError) as not_pdf:
        await replace_record(kit.app.records, ADMIN, first.id, b"Ho va ten: Hoc Sinh So 1, HS001")
    assert not_pdf.value.code == "not_pdf"
    with pytest.raises(EdudeskError, match="quản trị viên"):
        await replace_record(kit.app.records, await kit.actor("BGH01"), first.id, exported(kit, 0))
    refusals = [e.detail["reason"] for e in await kit.audit("records_refused") if e.detail["action"] == "rec_replace"]
    assert refusals == ["not_correcting", "identity_mismatch", "pdf_signed", "not_pdf", "not_allowed"]
    after = await SchoolRecord.get(id=first.id)
    assert (after.state, after.revision, bytes(after.pdf)) == ("correcting", 0, bytes(first.pdf))
    assert not await RecordRevision.exists() and (await SchoolRecord.get(id=second.id)).signatures == 1


async def test_replace_archives_the_old_revision_and_reopens_stage_one_for_that_record_only(
        school: Any, tmp_path: Path) -> None:
    kit = await school(small_roster())
    await sign_to_leadership(kit)
    first, second, third = await kit.records()
    ret = await kit.app.records.return_record(await kit.actor("BGH01"), first.id, "Sai điểm môn Toán học kì II")
    await kit.app.records.decide_return(ADMIN, ret.id, True)
    before = len([t for t in await kit.notices("GV01") if "Mời Thầy/Cô ký" in t])
    fixed = corrected(kit, 0)
    await replace_record(kit.app.records, ADMIN, first.id, fixed)
    remade = await SchoolRecord.get(id=first.id)
    assert (remade.state, remade.stage, remade.revision, remade.signatures) == ("signing", 1, 1, 0)
    assert bytes(remade.original) == fixed and b"/ByteRange" not in bytes(remade.pdf)
    steps = await SignatureStep.filter(record_id=first.id).order_by("id")
    assert [(s.stage, s.state) for s in steps] == [(1, "open")] * 3 + [(2, "waiting"), (3, "waiting"),
                                                                         (4, "waiting")]
    for other in (second, third):  # untouched: still at the leadership's turn
        now = await SchoolRecord.get(id=other.id)
        assert (now.stage, now.signatures, bytes(now.pdf)) == (3, 4, bytes(other.pdf))
        assert await SignatureStep.filter(record_id=other.id, stage=Stage.LEADERSHIP, state="open").count() == 1
    [old] = await RecordRevision.filter(record_id=first.id)
    assert (old.number, old.kind, old.reason, old.signatures) == (0, "correction", "Sai điểm môn Toán học kì II", 4)
    assert old.sha256 == hashlib.sha256(bytes(first.pdf)).hexdigest() and old.record_return_id == ret.id
    report = await verify_record(bytes(old.pdf), **await trust(kit))
    assert report.ok and len(report.signatures) == 4, "the archived revision still verifies"
    [event] = await kit.audit("record_replaced")
    assert event.detail["archived"] == old.sha256 and event.actor == ADMIN.label
    await kit.settle()
    news = [t for t in await kit.notices("GV01") if "Mời Thầy/Cô ký" in t]
    assert len(news) == before + 1 and "<b>1</b>" in news[-1], "the notice of a new turn, for that record"
    # The leadership signs the two others meanwhile; the corrected one goes through every stage again.
    await kit.sign("BGH01", Stage.LEADERSHIP)
    await sign_all(kit)
    records = await kit.records()
    assert [r.state for r in records] == ["signed"] * 3
    for record in records:
        assert (await verify_record(bytes(record.pdf), **await trust(kit))).ok
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    manifest = await export_class(kit.class_id, tmp_path / "out")
    entry = manifest["records"][0]
    assert entry["revision"] == 1 and entry["file"] and (tmp_path / "out" / entry["file"]).exists()
    [chain] = entry["revisions"]
    assert (chain["revision"], chain["kind"], chain["sha256"]) == (0, "correction", old.sha256)
    assert (chain["by"], chain["reported_by"]) == (ADMIN.label, (await kit.actor("BGH01")).label)
    assert (tmp_path / "out" / chain["file"]).read_bytes() == bytes(old.pdf)
    assert [e["revisions"] for e in manifest["records"][1:]] == [[], []]


@pytest.mark.parametrize("order", ["principal_last", "parallel"])
async def test_the_principal_signs_after_the_vice_principals(app_factory: Any, settings_factory: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, order: str) -> None:
    kit = await make_kit(app_factory, settings_factory, tmp_path, monkeypatch, leadership_order=order)(
        leadership_roster())
    await sign_to_leadership(kit)
    await kit.settle()
    principal = await Teacher.get(code="BGH01")
    open_ids = {s.teacher_id for s in await kit.open_steps(Stage.LEADERSHIP)}
    vice = {(await Teacher.get(code=c)).id for c in VICE}
    invited = [c for c in ("BGH01", *VICE) if any("Mời Thầy/Cô ký" in t for t in await kit.notices(c))]
    if order == "parallel":
        assert open_ids == vice | {principal.id} and invited == ["BGH01", *VICE]
        return
    assert open_ids == vice and invited == list(VICE), "the principal's turn waits"
    with pytest.raises(EdudeskError, match="Chưa đến lượt"):
        await kit.app.records.start_signing(await kit.actor("BGH01"), kit.class_id, Stage.LEADERSHIP, pin=PIN)
    await kit.sign("BGH02", Stage.LEADERSHIP)
    assert not await SignatureStep.filter(teacher_id=principal.id, state="open").exists(), "one vice principal left"
    await kit.sign("BGH03", Stage.LEADERSHIP)
    assert await SignatureStep.filter(teacher_id=principal.id, state="open").count() == 3
    assert any("Mời Thầy/Cô ký" in t for t in await kit.notices("BGH01"))
    await kit.sign("BGH01", Stage.LEADERSHIP)
    await kit.settle()
    for record in await kit.records():
        report = await verify_record(bytes(record.pdf), **await trust(kit))
        assert report.ok
        fields = [s.field for s in report.signatures]
        assert set(fields[4:6]) == {"bgh_bgh02", "bgh_bgh03"} and fields[6:] == ["bgh_bgh01", "phat_hanh"]


async def test_withdrawal_needs_the_leaderships_minutes_and_leaves_the_chain_in_the_export(
        school: Any, tmp_path: Path) -> None:
    kit = await school(leadership_roster())
    await sign_all(kit)
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    first = (await kit.records())[0]
    issued = bytes(first.pdf)
    with pytest.raises(EdudeskError, match="quản trị viên"):
        await start_change(kit.app.records, await kit.actor("BGH01"), first.id, ChangeKind.WITHDRAWAL, "Sai")
    with pytest.raises(EdudeskError, match="lý do"):
        await start_change(kit.app.records, ADMIN, first.id, ChangeKind.WITHDRAWAL, "  ")
    change = await start_change(kit.app.records, ADMIN, first.id, ChangeKind.WITHDRAWAL,
                                "Học sinh chuyển trường trước khi kết thúc năm học")
    assert change.number == "01/2025-2026/BB-THHB"
    minutes = await minutes_of(change)
    book = await SchoolClass.get(id=minutes.klass_id)
    assert (book.name, book.state) == ("10A1 · biên bản", "minutes")
    assert (await SchoolRecord.get(id=first.id)).state == "signed", "nothing changes before the minutes are signed"
    with pytest.raises(EdudeskError, match="đang có một biên bản"):
        await start_change(kit.app.records, ADMIN, first.id, ChangeKind.ADJUSTMENT, "Sửa", corrected(kit, 0))
    await kit.settle()
    for code in VICE:
        [notice] = [t for t in await kit.notices(code) if "10A1 · biên bản" in t]
        assert "Ban giám hiệu" in notice
    assert not [t for t in await kit.notices("BGH01") if "10A1 · biên bản" in t], "the principal signs last"
    await sign_minutes(kit, change, VICE)
    assert (await RecordChange.get(id=change.id)).state == "minutes"
    assert any("10A1 · biên bản" in t for t in await kit.notices("BGH01"))
    await sign_minutes(kit, change, ("BGH01",))
    withdrawn = await SchoolRecord.get(id=first.id)
    assert withdrawn.state == "withdrawn" and bytes(withdrawn.pdf) == issued
    assert (await RecordChange.get(id=change.id)).state == "done"
    signed_minutes = bytes((await minutes_of(change)).pdf)
    report = await verify_record(signed_minutes, **await trust(kit))
    assert report.ok and [s.field for s in report.signatures][2] == "bgh_bgh01"
    text = " ".join(pdf_text(signed_minutes).split())
    for said in ("BIÊN BẢN THU HỒI HỌC BẠ SỐ", "Số: 01/2025-2026/BB-THHB", "…, ngày 20 tháng 5 năm 2026",
                 "Họ và tên học sinh: Học Sinh Số 1", "Mã học sinh: HS001", "Lớp: 10A1 — Năm học: 2025-2026",
                 "Lý do thu hồi: Học sinh chuyển trường trước khi kết thúc năm học", hashlib.sha256(issued).hexdigest(),
                 "Hiệu trưởng — Phạm Quốc Hùng", "Ban giám hiệu — Đỗ Thị Lan"):
        assert said in text, said
    [archived] = await RecordRevision.filter(record_id=first.id)
    assert (archived.kind, archived.change_id, archived.sha256) == ("withdrawal", change.id,
                                                                     hashlib.sha256(issued).hexdigest())
    assert len(await kit.audit("record_withdrawn")) == 1
    assert any("thu hồi" in j.payload["text"] for j in await Job.filter(kind="chat_notice")
               if j.payload["audience"] == "head")
    assert (await SchoolClass.get(id=kit.class_id)).state == "confirmed", "the class stays issued"
    out = tmp_path / "out"
    manifest = await export_class(kit.class_id, out)
    entry = next(e for e in manifest["records"] if e["student_code"] == "HS001")
    assert entry["state"] == "withdrawn" and entry["file"] is None
    assert not list(out.glob("HS001*.pdf")) and len(list(out.glob("HS00*.pdf"))) == 2
    [chain] = entry["revisions"]
    assert chain["kind"] == "withdrawal" and chain["reason"] == "Học sinh chuyển trường trước khi kết thúc năm học"
    assert chain["minutes"]["number"] == change.number and chain["minutes"]["signatures"] == 3
    assert chain["minutes"]["signed_at"] == (await RecordChange.get(id=change.id)).done_at.isoformat()
    assert (out / chain["file"]).read_bytes() == issued
    assert (out / chain["minutes"]["file"]).read_bytes() == signed_minutes
    assert (await verify_record((out / chain["file"]).read_bytes(), **await trust(kit))).ok
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["records"][0]["revisions"] == [chain]
    with pytest.raises(EdudeskError, match="ký đủ"):  # withdrawn: no further change
        await start_change(kit.app.records, ADMIN, first.id, ChangeKind.WITHDRAWAL, "Lần nữa")


async def test_adjustment_signs_the_corrected_revision_through_every_stage(school: Any, tmp_path: Path) -> None:
    kit = await school(leadership_roster())
    await sign_all(kit)
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    _, second, third = await kit.records()
    with pytest.raises(EdudeskError, match="PDF"):
        await start_change(kit.app.records, ADMIN, second.id, ChangeKind.ADJUSTMENT, "Sửa điểm")
    with pytest.raises(EdudeskError, match="không phải học bạ của học sinh này"):
        await start_change(kit.app.records, ADMIN, second.id, ChangeKind.ADJUSTMENT, "Sửa điểm", corrected(kit, 2))
    fixed = corrected(kit, 1)
    change = await start_change(kit.app.records, ADMIN, second.id, ChangeKind.ADJUSTMENT,
                                "Điểm Toán học kì II nhập nhầm", fixed)
    assert change.number == "01/2025-2026/BB-ĐCHB"
    await kit.settle()
    await sign_minutes(kit, change, (*VICE, "BGH01"))
    remade = await SchoolRecord.get(id=second.id)
    assert (remade.state, remade.stage, remade.revision, remade.signatures) == ("signing", 1, 1, 0)
    assert bytes(remade.original) == fixed
    assert (await SchoolClass.get(id=kit.class_id)).state == "signing", "confirmed again once it is issued"
    assert (await SchoolRecord.get(id=third.id)).state == "signed"
    [archived] = await RecordRevision.filter(record_id=second.id)
    assert (archived.kind, archived.signatures, bytes(archived.pdf)) == ("adjustment", 8, bytes(second.pdf))
    await sign_all(kit)
    again = await SchoolRecord.get(id=second.id)
    assert again.state == "signed" and again.signatures == 8
    report = await verify_record(bytes(again.pdf), **await trust(kit))
    assert report.ok and report.signatures[-1].field == "phat_hanh"
    assert (await SchoolClass.get(id=kit.class_id)).state == "complete"
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    manifest = await export_class(kit.class_id, tmp_path / "out")
    entry = manifest["records"][1]
    assert entry["revision"] == 1 and entry["sha256"] == hashlib.sha256(bytes(again.pdf)).hexdigest()
    [chain] = entry["revisions"]
    assert (chain["revision"], chain["kind"], chain["minutes"]["number"]) == (0, "adjustment", change.number)
    assert len(await kit.audit("record_adjusted")) == 1


async def test_a_signed_record_cannot_be_replaced_by_import_or_replace(school: Any) -> None:
    kit = await school(small_roster())
    await sign_all(kit)
    first = (await kit.records())[0]
    result = await import_roster(kit.roster, {"HS001": corrected(kit, 0), "HS002": exported(kit, 1),
                                              "HS003": exported(kit, 2)}, actor=ADMIN,
                                 clock=kit.clock)
    assert (result.records, result.kept, result.refused) == (0, 3, ("HS001",)), "the same export is no change"
    assert bytes((await SchoolRecord.get(id=first.id)).pdf) == bytes(first.pdf)
    assert (await kit.audit("records_imported"))[-1].detail["refused"] == ["HS001"]
    with pytest.raises(EdudeskError, match="thu hồi hoặc điều chỉnh"):
        await replace_record(kit.app.records, ADMIN, first.id, corrected(kit, 0))
    assert bytes((await SchoolRecord.get(id=first.id)).pdf) == bytes(first.pdf) and not await RecordRevision.exists()
