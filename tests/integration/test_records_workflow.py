"""The signing workflow on a real database with real signatures: order, refusals, warnings, returns,
a restart while a remote confirmation is pending, reminders and quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.errors import EdudeskError
from edudesk.core.models import Job
from edudesk.core.ports import FakeClock
from edudesk.core.signing.models import (
    RecordReturn,
    SchoolClass,
    SchoolRecord,
    SignatureStep,
    SignerCredential,
    Teacher,
)
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.reminders import blocking, remind_pending, send_sign_reminders
from edudesk.core.signing.spec import Stage
from edudesk.core.signing.verify import verify_record
from tests.fakes.smartca import FakeSmartCa, fake_smartca_fixture  # noqa: F401
from tests.records_kit import ADMIN, PIN, RecordsKit, records_settings, small_roster

pytestmark = pytest.mark.db

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội


@pytest.fixture
async def kit(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RecordsKit:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    clock = FakeClock(START)
    settings = settings_factory(records=records_settings(tmp_path, pki), web={"enabled": False})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    return RecordsKit(app, pki, clock, small_roster())


async def trust(kit: RecordsKit) -> dict[str, Any]:
    from edudesk.core.signing.trust import trust_material

    roots, crls = trust_material(kit.app.settings)
    return {"trusted_roots": roots, "crls": crls}


async def sign_all(kit: RecordsKit) -> None:
    for code in ("GV01", "GV02", "GV03"):
        await kit.sign(code, Stage.SUBJECT)
    await kit.sign("GV02", Stage.HOMEROOM)
    await kit.sign("BGH01", Stage.LEADERSHIP)
    await kit.settle()  # the issuing signature, by the server


async def test_class_is_signed_in_order_then_confirmed_and_exported(kit: RecordsKit, tmp_path: Path) -> None:
    await kit.load()
    await kit.start()
    notices = [t for t in await kit.notices("GV01") if "Mời Thầy/Cô ký" in t]
    assert len(notices) == 1, "one aggregated sign-now message, not one per record"
    assert "10A1" in notices[0] and "Toán, Tin học" in notices[0] and "<b>3</b>" in notices[0]
    assert any("Ngữ văn" in t for t in await kit.notices("GV02"))
    assert not [t for t in await kit.notices("BGH01") if "Mời Thầy/Cô ký" in t], "leadership waits for its turn"
    await sign_all(kit)
    records = await kit.records()
    assert all(r.state == "signed" and r.signatures == 6 for r in records)
    assert (await SchoolClass.get(id=kit.class_id)).state == "complete"
    for record in records:
        report = await verify_record(bytes(record.pdf), **await trust(kit))
        assert report.ok, report.problems
        fields = [s.field for s in report.signatures]
        assert fields[:3] and set(fields[:3]) == {"gvbm_gv01", "gvbm_gv02", "gvbm_gv03"}
        assert fields[3:] == ["gvcn", "bgh_bgh01", "phat_hanh"]
        assert report.signatures[0].certified
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    from edudesk.core.signing.complete import export_class

    manifest = await export_class(kit.class_id, tmp_path / "out")
    assert len(manifest["records"]) == 3 and (tmp_path / "out" / "manifest.json").exists()


async def test_homeroom_before_the_subject_teachers_are_done_is_refused(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    await kit.sign("GV01", Stage.SUBJECT)
    with pytest.raises(EdudeskError, match="Chưa đến lượt"):
        await kit.app.records.start_signing(await kit.actor("GV02"), kit.class_id, Stage.HOMEROOM)
    assert [e.detail["reason"] for e in await kit.audit("records_refused")] == ["sign_out_of_order"]
    assert all(s.state == "waiting" for s in await SignatureStep.filter(stage=Stage.HOMEROOM))


async def test_unapproved_or_rejected_signer_cannot_sign(kit: RecordsKit) -> None:
    await kit.load(skip=("GV03",))
    await kit.start()
    pending = await kit.pkcs12("GV03", approve=False)
    with pytest.raises(EdudeskError, match="chờ quản trị viên duyệt"):
        await kit.app.records.start_signing(await kit.actor("GV03"), kit.class_id, Stage.SUBJECT)
    await kit.app.records.credentials.decide(ADMIN, pending.id, False)
    with pytest.raises(EdudeskError, match="chưa có chứng thư số được duyệt"):
        await kit.app.records.start_signing(await kit.actor("GV03"), kit.class_id, Stage.SUBJECT)
    with pytest.raises(EdudeskError, match="quản trị viên"):
        await kit.app.records.credentials.decide(await kit.actor("GV01"), pending.id, True)
    assert len(await kit.audit("records_refused")) == 3
    assert not await SignatureStep.filter(stage=Stage.SUBJECT, state="signed").exists()


async def test_expired_certificate_is_warned_to_teacher_and_admin(kit: RecordsKit) -> None:
    from edudesk.core.people.models import Staff

    admin = await Staff.create(name="Quản trị", email="admin@thpt.edu.vn", roles=["admin"], telegram_id=99,
                               created_at=kit.clock.now())
    await kit.load(skip=("GV03",))
    row = await kit.pkcs12("GV03", expired=True)
    assert row.state == "approved"
    await kit.start()
    [text] = [t for t in await kit.notices("GV03") if "Mời Thầy/Cô ký" in t]
    assert "Kiểm tra chứng thư số" in text and "hết hạn" in text
    admin_texts = [j.payload["text"] for j in await Job.filter(kind="chat_notice")
                   if j.payload["audience"] == f"staff:{admin.id}"]
    assert any("Lê Thị Hoa" in t and "hết hạn" in t for t in admin_texts)


async def test_return_approved_remakes_only_that_record_refused_goes_on(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    await kit.sign("GV01", Stage.SUBJECT)
    first, second, third = await kit.records()
    ret = await kit.app.records.return_record(await kit.actor("GV02"), first.id, "Sai điểm môn Ngữ văn học kì II")
    assert (await SchoolRecord.get(id=first.id)).state == "returned"
    session = await kit.sign("GV02", Stage.SUBJECT)
    assert len(session.steps) == 2, "the returned record is not offered"
    assert (await SchoolRecord.get(id=first.id)).signatures == 1, "a returned record is not signed further"
    assert (await SchoolRecord.get(id=second.id)).signatures == 2
    with pytest.raises(EdudeskError):
        await kit.app.records.decide_return(await kit.actor("BGH01"), ret.id, True)
    await kit.app.records.decide_return(ADMIN, ret.id, True)
    assert (await SchoolRecord.get(id=first.id)).state == "correcting", "it waits for the corrected PDF"
    from edudesk.core.signing.correction import replace_record
    from edudesk.core.signing.demo import demo_pdf

    row = kit.roster.classes["10A1"]
    await replace_record(kit.app.records, ADMIN, first.id, demo_pdf(row, row.students[0], kit.roster))
    remade = await SchoolRecord.get(id=first.id)
    assert (remade.state, remade.revision, remade.signatures, remade.stage) == ("signing", 1, 0, 1)
    assert bytes(remade.pdf) != bytes(first.pdf) and b"/ByteRange" not in bytes(remade.pdf)
    assert (await SchoolRecord.get(id=second.id)).signatures == 2, "the others go on"
    ret2 = await kit.app.records.return_record(await kit.actor("GV03"), third.id, "Kiểm tra lại hạnh kiểm")
    await kit.app.records.decide_return(ADMIN, ret2.id, False)
    assert (await RecordReturn.get(id=ret2.id)).state == "refused"
    assert (await SchoolRecord.get(id=third.id)).state == "signing"
    for code in ("GV01", "GV02", "GV03"):
        await kit.sign(code, Stage.SUBJECT)
    await kit.sign("GV02", Stage.HOMEROOM)
    await kit.sign("BGH01", Stage.LEADERSHIP)
    await kit.settle()
    for record in await kit.records():
        assert record.state == "signed"
        assert (await verify_record(bytes(record.pdf), **await trust(kit))).ok


async def test_restart_while_smartca_confirmation_is_pending(app_factory: Any, settings_factory: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             fake_smartca: FakeSmartCa) -> None:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    monkeypatch.setenv("EDUDESK_SMARTCA_SP_PASSWORD", fake_smartca.client_secret)
    pki = DemoPki.create()
    clock = FakeClock(START)
    records = records_settings(tmp_path, pki, (fake_smartca.ca.root_der,),
                               smartca={"url": fake_smartca.url, "sp_id": fake_smartca.client_id, "poll_seconds": 2})
    settings = settings_factory(records=records, web={"enabled": False})
    kit = RecordsKit(await app_factory(settings, clock=clock, inline_analysis=True), pki, clock, small_roster())
    await kit.load(skip=("GV03",))
    teacher = await Teacher.get(code="GV03")
    sub = fake_smartca.add_subscriber("079085001234", teacher.name)
    row = await kit.app.records.credentials.register(teacher, "smartca", actor=ADMIN, user_id=sub.user_id)
    await kit.app.records.credentials.decide(ADMIN, row.id, True)
    await kit.start()
    session = await kit.sign("GV03", Stage.SUBJECT)
    assert session.state == "pending" and len(fake_smartca.waiting()) == 1, "one confirmation for 3 records"
    await kit.app.close()  # the process stops while the phone is in the teacher's pocket

    app2 = await app_factory(settings, clock=clock, inline_analysis=True)
    kit2 = RecordsKit(app2, pki, clock, kit.roster, kit.result, kit.telegram_ids)
    await kit2.settle()
    assert not await SignatureStep.filter(field="gvbm_gv03", state="signed").exists()
    fake_smartca.confirm(fake_smartca.waiting()[0].id)
    await kit2.settle()
    assert await SignatureStep.filter(field="gvbm_gv03", state="signed").count() == 3
    for record in await kit2.records():
        assert record.held_by is None and record.signatures == 1


async def test_reminders_wait_for_the_morning_and_escalate_after_the_deadline(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    kit.clock.advance(timedelta(days=6, hours=14))  # 22:00 local, deadline tomorrow 08:00: in quiet hours
    assert await send_sign_reminders(kit.app.settings, kit.clock, kit.app.queue) == (0, 0)
    kit.clock.advance(timedelta(hours=9, minutes=30))  # 07:30, before the deadline at 08:00
    reminded, escalated = await send_sign_reminders(kit.app.settings, kit.clock, kit.app.queue)
    assert (reminded, escalated) == (3, 0)
    assert any("Nhắc ký" in t for t in await kit.notices("GV01"))
    assert await send_sign_reminders(kit.app.settings, kit.clock, kit.app.queue) == (0, 0), "once only"
    kit.clock.advance(timedelta(hours=1))
    assert (await send_sign_reminders(kit.app.settings, kit.clock, kit.app.queue))[1] == 3
    assert "Hoá học" in (await blocking(kit.class_id))[0].text()
    # The vice principal's one tap at night: queued for 07:00, not sent at once.
    kit.clock.advance(timedelta(hours=13))  # 22:00
    sent, when = await remind_pending(kit.app.settings, kit.clock, kit.app.queue, await kit.actor("BGH01"))
    assert sent == 3 and when.astimezone(UTC).hour == 0  # 07:00 in Hà Nội
    nudges = await Job.filter(key__startswith="notice:signnudge")
    assert len(nudges) == 3 and all(j.run_after >= when for j in nudges)


async def test_progress_names_who_is_blocking(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    await kit.sign("GV01", Stage.SUBJECT)
    [row] = await blocking(kit.class_id)
    assert row.done == 1 and row.total == 3
    assert row.text().startswith("10A1: Giáo viên bộ môn 1/3 — chờ Trần Văn Cường (Ngữ văn, 3 HB)")
    assert await SignerCredential.filter(state="approved").count() >= 4


async def test_issuing_steps_opened_after_the_issue_job_ran_are_still_issued(kit: RecordsKit) -> None:
    """Records reach the issuing stage one after another; the server's issue job of the first has already run
    (as `records demo` runs due jobs at once) when the next reach it in the same minute: they are issued too."""
    await kit.load()
    await kit.start()
    for code in ("GV01", "GV02", "GV03"):
        await kit.sign(code, Stage.SUBJECT)
    await kit.sign("GV02", Stage.HOMEROOM)
    leadership = sorted(await kit.open_steps(Stage.LEADERSHIP), key=lambda s: s.record_id)
    held = [s.id for s in leadership[1:]]
    await SignatureStep.filter(id__in=held).update(state="waiting")  # the leader signs one record first
    leader = await kit.actor("BGH01")
    await kit.app.records.start_signing(leader, kit.class_id, Stage.LEADERSHIP, pin=PIN)
    await kit.app.worker.drain()
    await Job.filter(kind="sign_issue", state="pending").update(run_after=kit.clock.now())
    await kit.app.worker.drain()  # the issue job runs at once and issues that record
    assert [r.state for r in await kit.records()].count("signed") == 1
    await SignatureStep.filter(id__in=held).update(state="open")
    await kit.app.records.start_signing(leader, kit.class_id, Stage.LEADERSHIP, pin=PIN)  # same minute
    await kit.settle()
    assert [r.state for r in await kit.records()] == ["signed"] * 3
