"""Subject teachers who tap Ký ngay at the same moment share the class's records (one writer per record): the
session that holds them signs, the others wait, and they are woken as soon as the records are let go, not
after their round's wait (ROUND_WAIT, 3 s). The clock here does not move, so a session left waiting for its
round would never sign."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import FakeClock
from edudesk.core.signing.models import SchoolRecord, SignatureStep, SignSession, Teacher
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import Stage
from edudesk.core.signing.verify import verify_record
from tests.records_kit import PIN, RecordsKit, records_settings, small_roster

pytestmark = pytest.mark.db

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)


@pytest.fixture
async def kit(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RecordsKit:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    settings = settings_factory(records=records_settings(tmp_path, pki), web={"enabled": False})
    app = await app_factory(settings, clock=FakeClock(START), inline_analysis=True)
    return RecordsKit(app, pki, app.clock, small_roster(students=4))


async def test_teachers_tapping_together_are_woken_when_the_records_are_let_go(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    sessions = [await kit.app.records.start_signing(await kit.actor(code), kit.class_id, Stage.SUBJECT, pin=PIN)
                for code in ("GV01", "GV02", "GV03")]
    await kit.app.worker.drain()  # no clock advance: only jobs due now run
    assert not await SignatureStep.filter(stage=Stage.SUBJECT, state="open").exists()
    assert [s.state for s in await SignSession.filter(id__in=[s.id for s in sessions]).order_by("id")] == ["done"] * 3
    assert not await SchoolRecord.filter(held_by__isnull=False).exists()
    assert not await Job.filter(kind="sign_batch", state="pending").exists()
    records = await kit.records()
    assert {r.signatures for r in records} == {3}
    from edudesk.core.signing.trust import trust_material

    roots, crls = trust_material(kit.app.settings)
    for record in records:  # three signatures, one after the other, each checked before the next
        report = await verify_record(bytes(record.pdf), trusted_roots=roots, crls=crls)
        assert report.ok, (report.problems, [s.problems for s in report.signatures])
        assert len(report.signatures) == 3


async def test_a_step_out_of_turn_in_a_held_session_is_refused_and_its_record_let_go(kit: RecordsKit) -> None:
    await kit.load()
    await kit.start()
    session = await kit.app.records.start_signing(await kit.actor("GV01"), kit.class_id, Stage.SUBJECT, pin=PIN)
    first = (await kit.records())[0]
    await SchoolRecord.filter(id=first.id).update(state="returned")  # a return under review meanwhile
    await kit.app.worker.drain()
    gv01 = await Teacher.get(code="GV01")
    assert await SignatureStep.filter(session_id__isnull=True, record_id=first.id, stage=Stage.SUBJECT,
                                      teacher_id=gv01.id, state="open").exists()
    refused = [e.detail for e in await AuditEvent.filter(action="records_refused")]
    assert [d["record"] for d in refused if d.get("action") == "sign"] == [first.id]
    assert (await SignSession.get(id=session.id)).state == "done"
    assert {r.signatures for r in await kit.records() if r.id != first.id} == {1}
    assert not await SchoolRecord.filter(held_by__isnull=False).exists()


async def test_a_local_key_signs_its_records_a_part_at_a_time_and_lets_go_of_each(
        kit: RecordsKit, monkeypatch: pytest.MonkeyPatch) -> None:
    from edudesk.core.signing import runner
    from edudesk.core.signing.holds import Holds

    monkeypatch.setattr(runner, "HOLD_PER_WORKER", 1)  # parts of one record per pool worker
    parts: list[int] = []
    hold = Holds.hold

    async def counted(self: Holds, session: SignSession, limit: int | None = None) -> Any:
        work, left = await hold(self, session, limit)
        parts.append(len(work))
        return work, left

    monkeypatch.setattr(Holds, "hold", counted)
    await kit.load()
    await kit.start()
    for code in ("GV01", "GV02", "GV03"):
        await kit.app.records.start_signing(await kit.actor(code), kit.class_id, Stage.SUBJECT, pin=PIN)
    await kit.app.worker.drain()
    signed = [e.detail for e in await AuditEvent.filter(action="record_signed").order_by("id")]
    assert len(signed) == 3 * 4
    assert max(parts) == kit.app.signers.pool().workers < 4  # never more than a part held at once
    assert sum(parts) == 3 * 4
    assert {r.signatures for r in await kit.records()} == {3}
    assert not await SchoolRecord.filter(held_by__isnull=False).exists()
