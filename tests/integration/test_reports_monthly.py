"""The monthly BM03: due on the 1st at the configured hour, made once across replicas and re-runs, archived, and
mailed to every active head with its two files attached."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import openpyxl
import pytest
from pypdf import PdfReader

from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.models import Staff
from edudesk.core.ports import FakeClock
from edudesk.core.reports.models import ReportArchive
from edudesk.core.reports.monthly import month_due, report_key, schedule_monthly
from edudesk.core.requests.models import OutgoingMail, Request
from tests.servers.smtp_sink import SmtpSink

pytestmark = pytest.mark.db


def test_the_report_falls_due_on_the_first_at_the_hour_in_local_time(settings_factory: Any) -> None:
    settings = settings_factory(reports={"monthly": True, "monthly_hour": 7})
    due = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)  # 07:00 in Hà Nội is midnight UTC
    assert month_due(settings, due - timedelta(seconds=1)) is None  # 06:59:59 on the 1st: not yet
    assert month_due(settings, due) == (date(2026, 12, 1), date(2026, 12, 31))  # January: last December
    assert month_due(settings, datetime(2027, 3, 15, 3, tzinfo=UTC)) == (date(2027, 2, 1), date(2027, 2, 28))


async def _staff(name: str, email: str, roles: list[str], active: bool = True) -> Staff:
    return await Staff.create(name=name, email=email, roles=roles, active=active, created_at=datetime.now(UTC))


async def test_the_monthly_report_is_made_once_and_mailed_to_each_head_with_both_files(
        app_factory: Any, settings_factory: Any, smtp_sink: SmtpSink) -> None:
    due = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 01/12/2026 07:00 local
    clock = FakeClock(due - timedelta(minutes=1))
    settings = settings_factory(reports={"monthly": True},
                                outgoing={"transport": "smtp", "smtp_host": smtp_sink.host,
                                          "smtp_port": smtp_sink.port})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    heads = [await _staff("Trần Thị Lan", "lan.tt@hust.edu.vn", ["head"]),
             await _staff("Lê Văn Hùng", "hung.lv@hust.edu.vn", ["head", "admin"])]
    await _staff("Nguyễn Văn Bình", "binh.nv@hust.edu.vn", ["office"])
    await _staff("Phạm Minh Đức", "duc.pm@hust.edu.vn", ["head"], active=False)
    november = datetime(2026, 11, 10, 3, tzinfo=UTC)
    for i in range(3):
        await Request.create(kind="new_account", population="student", state="received", sender=f"s{i}@gmail.com",
                             unit="Khoa Công nghệ thông tin", received_at=november, updated_at=november)

    assert not await schedule_monthly(settings, clock, app.queue)  # 06:59 on the 1st: not yet
    clock.advance(timedelta(minutes=1))
    # Replicas checking at the same moment: one job.
    enqueued = await asyncio.gather(*(schedule_monthly(settings, clock, app.queue) for _ in range(4)))
    assert sum(enqueued) >= 1
    assert await Job.filter(key=report_key(date(2026, 11, 1))).count() == 1
    await app.worker.drain()

    archived = await ReportArchive.all().order_by("fmt")
    assert [(r.fmt, r.scheduled, r.made_by, r.period_start, r.period_end) for r in archived] == [
        ("pdf", True, "system", date(2026, 11, 1), date(2026, 11, 30)),
        ("xlsx", True, "system", date(2026, 11, 1), date(2026, 11, 30))]
    mails = [m for m in smtp_sink.messages if "report" not in m.rcpt_tos[0]]
    assert sorted(m.rcpt_tos[0] for m in mails) == sorted(h.email for h in heads)  # heads only, active only
    message = mails[0].message
    assert "tháng 11/2026" in str(message["Subject"]) and "BM03" in str(message["Subject"])
    body = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "từ 01/11/2026 đến 30/11/2026" in body
    files = {part.get_filename(): part.get_payload(decode=True) for part in message.iter_attachments()}
    assert set(files) == {"BM03_2026-11.xlsx", "BM03_2026-11.pdf"}
    book = openpyxl.load_workbook(io.BytesIO(files["BM03_2026-11.xlsx"]))
    assert book.worksheets and any(ws._charts for ws in book.worksheets)  # type: ignore[attr-defined]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(files["BM03_2026-11.pdf"])).pages)
    assert settings.institution.name.upper() in text and "01/11/2026" in text and "30/11/2026" in text

    # A re-run of the job (a crash after its work, before it was marked done) makes and sends nothing new,
    # and a later check in the same month enqueues nothing.
    job = await Job.get(key=report_key(date(2026, 11, 1)))
    await app.monthly(job)
    await app.worker.drain()
    clock.advance(timedelta(days=3))
    assert not await schedule_monthly(settings, clock, app.queue)
    assert await ReportArchive.all().count() == 2
    assert await OutgoingMail.filter(template="report_monthly").count() == 2
    assert len([m for m in smtp_sink.messages if m.rcpt_tos[0] in {h.email for h in heads}]) == 2
    assert await AuditEvent.filter(action="report_made").count() == 2


async def test_off_by_default_and_a_month_without_a_head_is_recorded(app_factory: Any, settings_factory: Any) -> None:
    clock = FakeClock(datetime(2026, 12, 1, 1, tzinfo=UTC))
    app = await app_factory(settings_factory(), clock=clock, inline_analysis=True)
    assert not app.settings.reports.monthly
    assert not await schedule_monthly(app.settings, clock, app.queue)
    assert not await Job.filter(kind="monthly_report").exists()

    on = settings_factory(reports={"monthly": True})
    assert await schedule_monthly(on, clock, app.queue)
    app.monthly.settings = on
    await app.worker.drain()
    assert await ReportArchive.filter(scheduled=True).count() == 2  # kept even when nobody can be mailed
    unsent = await AuditEvent.get(action="report_monthly_unsent")
    assert unsent.detail["month"] == "2026-11"
    assert not await OutgoingMail.filter(template="report_monthly").exists()
