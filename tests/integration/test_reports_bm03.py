"""BM03 figures from the database (SQLite and PostgreSQL): the seeded data set gives exactly the expected
numbers; a unit, an empty period and the local-day edges; the archive; no retention rule deletes a report
or the account log."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from edudesk.core.accounts.models import AccountLog, PasswordLink
from edudesk.core.accounts.passwordlinks import purge_expired
from edudesk.core.intake.confirm import purge_expired as purge_confirmations
from edudesk.core.intake.models import InboundMail
from edudesk.core.intake.retention import purge_raw_mail
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import WebSession
from edudesk.core.people.webauth import open_session
from edudesk.core.ports import FakeClock
from edudesk.core.reports.archive import archive_report, get_report, list_reports
from edudesk.core.reports.bm03 import bm03_figures, problem_label
from edudesk.core.reports.dialect import offset_segments, utc_bounds
from edudesk.core.reports.figures import AccountCounts, Period
from edudesk.core.reports.models import ReportArchive
from edudesk.core.requests.models import Request
from tests.reports_seed import U1, seed_bm03

pytestmark = pytest.mark.db

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)


async def test_the_seeded_data_set_gives_exactly_the_expected_figures(app_factory: Any) -> None:
    app = await app_factory(clock=FakeClock(NOW))
    expected = await seed_bm03(NOW, app.settings)
    figures = await bm03_figures(app.settings, expected.period, NOW)

    assert figures.period == expected.period and figures.generated_at == NOW
    assert figures.form == "BM03" and figures.institution == app.settings.institution.name
    assert figures.groups == expected.groups
    assert figures.totals() == expected.totals
    by_kind: dict[str, int] = {}
    for g in figures.groups:
        by_kind[g.kind] = by_kind.get(g.kind, 0) + g.received
    assert by_kind == expected.received_by_kind
    assert [s.step for s in figures.steps] == ["office", "technical", "total"]
    for step in figures.steps:
        want = expected.steps[step.step]
        assert (step.count, step.within_limit, step.median_hours) == (want.count, want.within_limit,
                                                                       want.median_hours), step.step
        assert [s.request_id for s in step.slowest] == [expected.ids[n] for n in want.slowest], step.step
    office, technical, total = figures.steps
    assert (office.limit_hours, technical.limit_hours, total.limit_hours) == (24.0, 24.0, 48.0)
    assert office.slowest[0].hours == 48.0 and office.slowest[0].unit == "Khoa Toán - Tin"
    assert office.share_within == 13 / 15
    assert figures.accounts == expected.accounts
    assert [(p.code, p.requests) for p in figures.problems] == list(expected.problems)
    assert figures.problems[0].code == expected.top_problem
    assert [o.request_id for o in figures.overdue] == list(expected.overdue_ids)
    assert figures.overdue_total == len(expected.overdue_ids)
    r11 = figures.overdue[0]
    assert r11.state == "approved" and r11.hours_late == round((NOW - r11.deadline).total_seconds() / 3600, 3)
    assert figures.days == expected.days


async def test_a_unit_report_counts_only_that_units_requests_and_their_account_changes(app_factory: Any) -> None:
    app = await app_factory(clock=FakeClock(NOW))
    expected = await seed_bm03(NOW)  # the seed's own default settings: what other tests may call
    period = Period(expected.period.start, expected.period.end, expected.period.timezone, unit=U1)
    figures = await bm03_figures(app.settings, period, NOW, lang="en")

    assert figures.groups == expected.unit_groups and figures.units() == (U1,)
    assert figures.accounts == expected.unit_accounts
    assert [(p.code, p.requests) for p in figures.problems] == list(expected.unit_problems)
    assert [o.request_id for o in figures.overdue] == list(expected.unit_overdue_ids)
    assert tuple(d.received for d in figures.days) == expected.unit_days_received
    assert sum(s.count for s in figures.steps) > 0
    assert all(s.unit == U1 for step in figures.steps for s in step.slowest)


async def test_a_period_without_requests_has_zero_figures_and_a_day_for_each_day(app_factory: Any) -> None:
    app = await app_factory(clock=FakeClock(NOW))
    await seed_bm03(NOW, app.settings)
    period = Period(date(2025, 2, 1), date(2025, 2, 28), "Asia/Ho_Chi_Minh")
    figures = await bm03_figures(app.settings, period, NOW)
    assert figures.groups == () and figures.problems == () and figures.overdue == ()
    assert figures.accounts == AccountCounts(0, 0, 0, 0, 0)
    assert [(s.count, s.median_hours, s.slowest, s.share_within) for s in figures.steps] == [(0, None, (), None)] * 3
    assert [d.day for d in figures.days] == [date(2025, 2, 1) + timedelta(days=i) for i in range(28)]
    assert all(d.received == d.finished == 0 for d in figures.days)


async def _request(at: datetime, state: str = "received", unit: str = "") -> Request:
    return await Request.create(kind="new_account", population="student", state=state, sender="a@sis.example.edu.vn",
                                unit=unit, received_at=at, updated_at=at, deadline=at + timedelta(hours=24))


async def test_the_last_local_evening_counts_and_the_next_local_night_does_not(app_factory: Any) -> None:
    app = await app_factory(clock=FakeClock(NOW))
    # 31/08 in Hanoi is 30/08 17:00 UTC to 31/08 17:00 UTC.
    late = await _request(datetime(2026, 8, 31, 16, 30, tzinfo=UTC))  # 31/08 23:30 local: the period's
    await _request(datetime(2026, 8, 31, 17, 30, tzinfo=UTC))  # 01/09 00:30 local: the next day's
    await _request(datetime(2026, 8, 24, 16, 59, 59, 999000, tzinfo=UTC))  # 24/08 23:59:59.999 local: before
    first = await _request(datetime(2026, 8, 24, 17, 0, tzinfo=UTC))  # 25/08 00:00 local: the first instant
    asked = await _request(datetime(2026, 8, 28, 3, 0, tzinfo=UTC), state="need_info")
    await Request.filter(id=asked.id).update(deadline=None)  # nobody on our side owes a step while we wait
    period = Period(date(2026, 8, 25), date(2026, 8, 31), "Asia/Ho_Chi_Minh")
    figures = await bm03_figures(app.settings, period, NOW)
    (group,) = figures.groups
    assert (group.received, group.open) == (3, 3)
    assert [d.received for d in figures.days] == [1, 0, 0, 1, 0, 0, 1]
    # `late` is due 01/09 23:30 local, after NOW; the request in need_info owes us nothing: neither is late.
    assert [o.request_id for o in figures.overdue] == [first.id]
    assert late.id not in [o.request_id for o in figures.overdue] and figures.overdue_total == 1


def test_local_days_follow_a_zone_that_changes_its_offset() -> None:
    start, end = utc_bounds(Period(date(2026, 3, 28), date(2026, 3, 30), "Europe/Berlin"))
    assert (start, end) == (datetime(2026, 3, 27, 23, tzinfo=UTC), datetime(2026, 3, 30, 22, tzinfo=UTC))
    assert offset_segments(start, end, "Europe/Berlin") == [(datetime(2026, 3, 29, 1, tzinfo=UTC), 3600),
                                                            (None, 7200)]
    assert offset_segments(start, end, "Asia/Ho_Chi_Minh") == [(None, 25200)]


async def test_days_across_a_change_of_offset_are_cut_at_local_midnight(app_factory: Any) -> None:
    app = await app_factory(clock=FakeClock(NOW))
    # Berlin: +01:00 until 29/03 01:00 UTC, +02:00 after.
    await _request(datetime(2026, 3, 28, 22, 30, tzinfo=UTC))  # 28/03 23:30 +01:00
    await _request(datetime(2026, 3, 28, 23, 30, tzinfo=UTC))  # 29/03 00:30 +01:00
    await _request(datetime(2026, 3, 29, 21, 30, tzinfo=UTC))  # 29/03 23:30 +02:00
    await _request(datetime(2026, 3, 29, 22, 30, tzinfo=UTC))  # 30/03 00:30 +02:00
    figures = await bm03_figures(app.settings, Period(date(2026, 3, 28), date(2026, 3, 30), "Europe/Berlin"), NOW)
    assert [d.received for d in figures.days] == [1, 2, 1]


def test_problem_codes_are_said_in_words_in_each_language() -> None:
    assert problem_label("missing_name", "vi") == "Thiếu họ và tên"
    assert problem_label("missing_name", "en") == "The full name is missing"
    assert problem_label("no_such_code", "en") == "no_such_code"


async def test_archived_reports_are_listed_without_their_files_and_audited(app_factory: Any) -> None:
    await app_factory(clock=FakeClock(NOW))
    period = Period(date(2026, 8, 1), date(2026, 8, 31), "Asia/Ho_Chi_Minh")
    pdf = b"%PDF-1.7 bm03 " + bytes(range(256))
    first = await archive_report(kind="bm03", period=period, lang="vi", fmt="pdf", filename="BM03-2026-08.pdf",
                                 content=pdf, made_by="system", now=NOW, scheduled=True)
    second = await archive_report(kind="bm03", period=Period(period.start, period.end, period.timezone, unit=U1),
                                  lang="en", fmt="xlsx", filename="BM03-2026-08-soict.xlsx", content=b"PK\x03\x04",
                                  made_by="Lê Văn Phòng", now=NOW + timedelta(minutes=5))
    listed = await list_reports()
    assert [r.id for r in listed] == [second.id, first.id]
    assert listed[1].sha256 == hashlib.sha256(pdf).hexdigest() and listed[1].size == len(pdf)
    assert listed[1].scheduled and listed[0].unit == U1 and listed[0].made_by == "Lê Văn Phòng"
    assert "content" not in listed[0].__dict__ or listed[0].__dict__["content"] is None
    got = await get_report(first.id)
    assert got is not None and bytes(got.content) == pdf and got.period_end == date(2026, 8, 31)
    assert await get_report(10**30) is None and await get_report(second.id + 1) is None
    events = await AuditEvent.filter(action="report_made").order_by("id")
    assert [(e.actor, e.detail["fmt"], e.detail["sha256"]) for e in events] == [
        ("system", "pdf", hashlib.sha256(pdf).hexdigest()),
        ("Lê Văn Phòng", "xlsx", hashlib.sha256(b"PK\x03\x04").hexdigest())]
    assert events[1].detail["unit"] == U1 and events[0].detail["period_start"] == "2026-08-01"
    with pytest.raises(ValueError):
        await archive_report(kind="bm03", period=period, lang="vi", fmt="docx", filename="x.docx", content=b"x",
                             made_by="system", now=NOW)


async def test_no_retention_rule_deletes_an_archived_report_or_the_account_log(app_factory: Any) -> None:
    old = NOW - timedelta(days=3650)
    clock = FakeClock(NOW)
    app = await app_factory(clock=clock)
    period = Period(date(2016, 8, 1), date(2016, 8, 31), "Asia/Ho_Chi_Minh")
    report = await archive_report(kind="bm03", period=period, lang="vi", fmt="pdf", filename="BM03-2016-08.pdf",
                                  content=b"%PDF old", made_by="system", now=old, scheduled=True)
    done = await _request(old, state="done")
    await AccountLog.create(at=old, action="create", address="an.nv@sis.example.edu.vn", backend="local",
                            request_id=done.id)
    await AccountLog.create(at=old, action="taken", address="b@sis.example.edu.vn", backend="local", ok=False)
    raw = b"From: a@sis.example.edu.vn\r\nSubject: x\r\n\r\nHo va ten: Nguyen Van An\r\n"
    mail = await InboundMail.create(dedupe_key="mid:old", message_id="old@x", content_hash="old", source="smtp",
                                    size=len(raw), content=raw, received_at=old, state="done", request=done)
    await PasswordLink.create(token_hash="0" * 64, request_id=done.id, recipient="a@sis.example.edu.vn",
                              created_at=old, expires_at=old + timedelta(hours=72))

    await WebSession.create(token_hash="1" * 64, staff_id=1, csrf="x", created_at=old, expires_at=old)

    # Every rule that deletes or empties rows: the purges the service runs (core/requests/overdue.py
    # watch_deadlines, here with the shortest raw-mail rule) and the sign-in's clean-up of old sessions.
    assert await purge_raw_mail(clock, 1) == 1
    await purge_expired(clock)
    await purge_confirmations(clock)
    await open_session(1, app.settings, clock)
    assert not await WebSession.filter(token_hash="1" * 64).exists(), "the sessions' clean-up did run"

    assert b"Nguyen" not in bytes((await InboundMail.get(id=mail.id)).content), "the purges did run"
    assert await ReportArchive.filter(id=report.id).count() == 1
    assert bytes((await ReportArchive.get(id=report.id)).content) == b"%PDF old"
    assert await AccountLog.all().count() == 2
