"""The vice principal's signing progress on a real database with real signatures at known times: records done,
waiting and overdue per class and stage, who is blocking and since when, the signatures per day, and the .xlsx
read back with openpyxl (its native line chart included)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from openpyxl.chart import LineChart

from edudesk.core.errors import NotAllowed
from edudesk.core.models import AuditEvent
from edudesk.core.ports import FakeClock
from edudesk.core.signing.models import SchoolClass, SchoolRecord, SignatureStep
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.progress import Progress, follow_progress, signing_progress
from edudesk.core.signing.progress_xlsx import export_progress, progress_filename
from edudesk.core.signing.reminders import blocking
from edudesk.core.signing.spec import Stage
from tests.records_kit import ADMIN, RecordsKit, records_settings, small_roster

pytestmark = pytest.mark.db

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
TZ = "Asia/Ho_Chi_Minh"


@pytest.fixture
async def kit(app_factory: Any, settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RecordsKit:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    clock = FakeClock(START)
    settings = settings_factory(records=records_settings(tmp_path, pki), web={"enabled": False})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    kit = RecordsKit(app, pki, clock, small_roster())
    await kit.load()
    await kit.start()  # the subject teachers' turns open at 08:00 on 20/05, due 27/05 08:00
    return kit


async def progress(kit: RecordsKit) -> Progress:
    return await signing_progress(kit.clock.now(), TZ)


def stage(p: Progress, n: int) -> tuple[int, ...]:
    [row] = [r for r in p.rows if r.stage == n]
    return row.records, row.done, row.waiting, row.overdue, row.later, row.returned


async def test_overdue_blocking_and_the_daily_series_follow_the_signatures(kit: RecordsKit) -> None:
    await kit.sign("GV01", Stage.SUBJECT)  # 20/05: 3 signatures
    kit.clock.advance(timedelta(days=1))
    await kit.sign("GV02", Stage.SUBJECT)  # 21/05: 3 more
    p = await progress(kit)
    assert stage(p, Stage.SUBJECT) == (3, 0, 3, 0, 0, 0)  # open, within the deadline
    assert [stage(p, s) for s in (Stage.HOMEROOM, Stage.LEADERSHIP, Stage.ISSUER)] == [(3, 0, 0, 0, 3, 0)] * 3
    subject = p.rows[0]
    assert (subject.signed, subject.signatures) == (6, 9)
    assert subject.deadline == START + timedelta(days=7)
    assert (p.signed, p.required) == (6, 18)  # 3 records × (3 subject teachers, homeroom, principal, issuing)

    kit.clock.advance(timedelta(days=6, hours=1))  # 27/05 09:00: Lê Thị Hoa (Hoá học) is past her deadline
    p = await progress(kit)
    assert stage(p, Stage.SUBJECT) == (3, 0, 0, 3, 0, 0)
    [late] = p.blockers
    assert (late.teacher, late.class_name, late.stage, late.subjects) == ("Lê Thị Hoa", "10A1", 1, "Hoá học")
    assert (late.records, late.overdue) == (3, 3)
    assert late.since is not None and late.since == START
    assert late.deadline == START + timedelta(days=7)
    # The same people and counts as the reminders' own `blocking()`, which "Nhắc tất cả" and the escalation use.
    assert [(b.class_name, b.stage, b.waiting) for b in await blocking()] == [
        ("10A1", 1, (("Lê Thị Hoa", "Hoá học", 3),))]

    # A Báo sai sót stops one record: counted apart, and nobody blocks it while the admin decides.
    first = (await kit.records())[0]
    ret = await kit.app.records.return_record(await kit.actor("GV03"), first.id, "Sai điểm Hoá học")
    p = await progress(kit)
    assert stage(p, Stage.SUBJECT) == (3, 0, 0, 2, 0, 1)
    assert [(b.teacher, b.records) for b in p.blockers] == [("Lê Thị Hoa", 2)]
    await kit.app.records.decide_return(ADMIN, ret.id, False)  # refused: signing goes on where it was

    await kit.sign("GV03", Stage.SUBJECT)  # 27/05: the last 3 of the stage; the homeroom teacher's turn opens
    now = kit.clock.now()
    p = await progress(kit)
    assert stage(p, Stage.SUBJECT) == (3, 3, 0, 0, 0, 0)
    assert stage(p, Stage.HOMEROOM) == (3, 0, 3, 0, 0, 0)
    homeroom = [r for r in p.rows if r.stage == Stage.HOMEROOM][0]
    assert homeroom.deadline is not None and now - timedelta(minutes=1) < homeroom.deadline - timedelta(days=7) < now
    [waiting] = p.blockers
    assert (waiting.teacher, waiting.stage, waiting.subjects, waiting.records, waiting.overdue) == (
        "Trần Văn Cường", 2, "", 3, 0)
    assert waiting.since is not None and now - timedelta(minutes=1) < waiting.since < now

    # Per local day from the first turn to today: 3, 3, nothing for five days, 3; half of all 18 done.
    assert [d.day for d in p.days] == [date(2026, 5, 20) + timedelta(days=n) for n in range(8)]
    assert [d.signed for d in p.days] == [3, 3, 0, 0, 0, 0, 0, 3]
    assert [d.cumulative for d in p.days] == [3, 6, 6, 6, 6, 6, 6, 9]
    assert p.days[-1].share == pytest.approx(0.5) and p.days[0].share == pytest.approx(3 / 18)
    assert (p.signed, p.required, p.share) == (9, 18, pytest.approx(0.5))


async def test_days_are_local_and_each_year_stands_alone(kit: RecordsKit) -> None:
    kit.clock.advance(timedelta(hours=16, minutes=30))  # 20/05 17:30 UTC = 21/05 00:30 in Hà Nội
    await kit.sign("GV01", Stage.SUBJECT)
    p = await progress(kit)
    assert [(d.day, d.signed) for d in p.days] == [(date(2026, 5, 20), 0), (date(2026, 5, 21), 3)]
    # An older school year's class is not mixed in; asked for by name it has its own (empty) figures.
    await SchoolClass.create(year="2024-2025", name="12A9", created_at=START)
    p = await progress(kit)
    assert p.year == "2025-2026" and [name for _, name in p.classes()] == ["10A1"]
    old = await signing_progress(kit.clock.now(), TZ, "2024-2025")
    assert (old.rows, old.blockers, old.days, old.required) == ((), (), (), 0)


async def test_only_the_leadership_follows_the_progress(kit: RecordsKit) -> None:
    leader = await kit.actor("BGH01")
    assert (await follow_progress(kit.app.records, leader)).required == 18
    assert (await follow_progress(kit.app.records, ADMIN)).required == 18
    with pytest.raises(NotAllowed):
        await follow_progress(kit.app.records, await kit.actor("GV01"))
    [refused] = await AuditEvent.filter(action="records_refused")
    assert refused.detail["action"] == "rec_progress"


async def test_xlsx_has_the_table_the_blockers_and_a_native_chart(kit: RecordsKit) -> None:
    await kit.sign("GV01", Stage.SUBJECT)
    kit.clock.advance(timedelta(days=8))  # 28/05 08:00: GV02 and GV03 are late
    p = await progress(kit)
    book = load_workbook(io.BytesIO(export_progress(p, "vi")))
    assert book.sheetnames == ["Tiến độ", "Đang chờ", "Theo ngày"]

    table = book["Tiến độ"]
    header = [c.value for c in table[1]]
    assert header[:8] == ["Lớp", "Bước", "Số học bạ", "Đã xong", "Đang chờ ký", "Quá hạn", "Chưa đến lượt",
                          "Đang báo sai sót"]
    rows = [[c.value for c in r] for r in table.iter_rows(min_row=2)]
    subject = rows[0]
    assert subject[:10] == ["10A1", "Giáo viên bộ môn", 3, 0, 0, 3, 0, 0, 3, 9]
    assert subject[10] == pytest.approx(1 / 3)
    assert subject[11] == datetime(2026, 5, 27, 8, 0)  # local wall-clock time, a real date cell
    assert table.cell(row=2, column=12).number_format == "dd/mm/yyyy hh:mm"
    assert table.cell(row=2, column=11).number_format == "0.0%"
    assert rows[1][:8] == ["10A1", "Giáo viên chủ nhiệm", 3, 0, 0, 0, 3, 0]
    totals = [r for r in rows if r[0] == "Toàn trường"]
    assert [r[1] for r in totals] == ["Giáo viên bộ môn", "Giáo viên chủ nhiệm", "Ban giám hiệu", "Ký phát hành"]

    waiting = [[c.value for c in r] for r in book["Đang chờ"].iter_rows(min_row=2)]
    assert [(r[0], r[3], r[4], r[5]) for r in waiting] == [("Trần Văn Cường", "Ngữ văn", 3, 3),
                                                           ("Lê Thị Hoa", "Hoá học", 3, 3)]
    assert waiting[0][6] == datetime(2026, 5, 20, 8, 0) and waiting[0][7] == datetime(2026, 5, 27, 8, 0)

    days = book["Theo ngày"]
    series = [[c.value for c in r] for r in days.iter_rows(min_row=2)]
    assert len(series) == 9 and series[0][:3] == [datetime(2026, 5, 20), 3, 3] and series[-1][2] == 3
    assert series[0][3] == pytest.approx(3 / 18) and days.cell(row=2, column=1).number_format == "dd/mm/yyyy"
    [chart] = days._charts
    assert isinstance(chart, LineChart)
    [line] = chart.series
    assert line.val.numRef.f == "'Theo ngày'!$D$2:$D$10"
    assert line.cat.numRef.f == "'Theo ngày'!$A$2:$A$10"
    assert (chart.x_axis.numFmt.formatCode, chart.x_axis.axPos, chart.x_axis.delete) == ("dd/mm", "b", False)
    assert (chart.y_axis.scaling.min, chart.y_axis.scaling.max, chart.y_axis.numFmt.formatCode) == (0, 1, "0%")
    assert chart.x_axis.crossAx == chart.y_axis.axId and chart.y_axis.crossAx == chart.x_axis.axId
    # No student appears anywhere in the workbook: names of teachers and counts only (Decree 13/2023).
    students = [r.student_name for r in await SchoolRecord.all()] + [r.student_code for r in await SchoolRecord.all()]
    cells = {str(c.value) for sheet in book.worksheets for row in sheet.iter_rows() for c in row}
    assert not [s for s in students if any(s in cell for cell in cells)]


async def test_xlsx_speaks_english_completely(kit: RecordsKit) -> None:
    p = await progress(kit)
    book = load_workbook(io.BytesIO(export_progress(p, "en")))
    assert book.sheetnames == ["Progress", "Waiting", "By day"]
    assert [c.value for c in book["Progress"][1]][:4] == ["Class", "Stage", "Records", "Done"]
    assert book["Progress"].cell(row=2, column=2).value == "Subject teachers"
    assert [c.value for c in book["Waiting"][1]][0] == "Teacher"
    headers = [c.value for sheet in book.worksheets for c in sheet[1]]
    assert len(headers) == 12 + 8 + 4 and all(str(h).isascii() for h in headers), headers  # no Vietnamese left
    stages = {str(r[1].value) for r in book["Progress"].iter_rows(min_row=2)}  # the catalogue's stage names
    assert stages == {"Subject teachers", "Homeroom teacher", "Leadership", "Issuing"}, stages
    assert progress_filename(p, "en") == "signing-progress-2025-2026.xlsx"
    assert progress_filename(p) == "tien-do-ky-hoc-ba-2025-2026.xlsx"


async def test_a_school_of_classes_costs_the_same_few_queries(kit: RecordsKit,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Four more classes: the figures come from the same grouped queries (no query per record or class)."""
    from tortoise import connections

    klass = await SchoolClass.get(id=kit.class_id)
    template = await SchoolRecord.filter(klass_id=klass.id).first()
    assert template is not None
    for n in range(4):
        other = await SchoolClass.create(year=klass.year, name=f"11B{n}", created_at=START)
        for i in range(5):
            record = await SchoolRecord.create(klass=other, student_code=f"X{n}{i}", student_name="x", original=b"",
                                               pdf=b"", updated_at=START)
            await SignatureStep.create(record=record, stage=1, field="gvbm_gv01", teacher_id=None, state="open",
                                       opened_at=START, deadline=START + timedelta(days=7))
    conn: Any = connections.get("default")
    calls: list[str] = []
    for name in ("execute_query", "execute_query_dict"):
        def counted(original: Any) -> Any:
            async def run(query: str, values: Any = None) -> Any:
                calls.append(query)
                return await original(query, values)
            return run
        monkeypatch.setattr(conn, name, counted(getattr(conn, name)))
    p = await progress(kit)
    assert len(p.classes()) == 5 and sum(r.records for r in p.rows if r.stage == 1) == 23
    assert len(calls) <= 8, calls
