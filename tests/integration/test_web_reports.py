"""The console's /reports against a real started console and database (SQLite and PostgreSQL), on the seeded BM03
data set: a head sees the figures the seed works out by hand, three inline SVG charts fit for the console's CSP,
the units to drill into; making a .xlsx / .pdf archives it and leads to its download (audited); wrong dates are a
message; only heads and admins get in. Also the queue's SLA glance: open requests by the age of their step."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import lxml.html
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader

from edudesk.bot.web.console import WebConsole
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.ports import FakeClock
from edudesk.core.reports.models import ReportArchive
from edudesk.core.requests.models import Request
from tests.reports_seed import U1, SeedExpectations, seed_bm03

pytestmark = pytest.mark.db

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)  # 01/09/2026 15:00 in Hà Nội
ERROR = '//*[contains(@class, "flash") and contains(@class, "error")]'
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Console:
    """A started console on a free port with a test clock, over the seeded data set."""

    web: WebConsole
    clock: FakeClock
    seed: SeedExpectations

    @property
    def url(self) -> str:
        return self.web.base_url

    def period_query(self, **extra: str) -> dict[str, str]:
        return {"from": self.seed.period.start.isoformat(), "to": self.seed.period.end.isoformat(), **extra}

    async def signed_in(self, role: str, name: str = "") -> tuple[aiohttp.ClientSession, str]:
        """A client signed in as a new staff member with `role`, and its CSRF token."""
        return await signed_in(self.web, self.clock, role, name)


async def signed_in(web: WebConsole, clock: FakeClock, role: str, name: str = "") -> tuple[aiohttp.ClientSession, str]:
    """A client signed in through a one-time link as a new staff member with `role`, and its CSRF token."""
    staff = await Staff.create(name=name or f"Cán bộ {role or 'mới'}", roles=[role] if role else [],
                               created_at=clock.now())
    token = (await issue_login_link(staff.id, web.settings, clock, base_url=web.base_url)).rsplit("/", 1)[1]
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with client.post(f"{web.base_url}/login", data={"token": token}, allow_redirects=False) as r:
        assert r.status == 303
    async with client.get(f"{web.base_url}/whoami") as r:
        html = await r.text()
    return client, html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


@pytest.fixture
async def console(app_factory: Any, settings_factory: Any) -> AsyncIterator[Console]:
    clock = FakeClock(NOW)
    app = await app_factory(settings_factory(web={"port": 0}), clock=clock, inline_analysis=True)
    seed = await seed_bm03(NOW, app.settings)
    assert app.web is not None
    await app.web.start()
    yield Console(app.web, clock, seed)
    await app.web.stop()


async def _page(client: aiohttp.ClientSession, url: str, **query: str) -> tuple[int, Any, str]:
    async with client.get(url, params=query, allow_redirects=False) as r:
        text = await r.text()
        return r.status, lxml.html.fromstring(text), r.headers.get("Content-Security-Policy", "")


def _figure(doc: Any, key: str) -> int:
    return int(doc.xpath(f'//*[@id="summary"]/*[@data-figure="{key}"]/b')[0].text_content())


def _table(doc: Any, key: str) -> list[list[str]]:
    return [[td.text_content().strip() for td in tr.xpath("td")]
            for tr in doc.xpath(f'//table[@data-table="{key}"]/tbody/tr')]


def _linked_requests(doc: Any, key: str) -> list[int]:
    links = doc.xpath(f'//table[@data-table="{key}"]//a[starts-with(@href, "/requests/")]')
    return [int(a.get("href").rsplit("/", 1)[1]) for a in links]


async def test_a_head_sees_the_periods_figures_charts_and_units(console: Console) -> None:
    seed = console.seed
    client, _ = await console.signed_in("head", "Trưởng phòng Hoa")
    async with client:
        status, doc, csp = await _page(client, f"{console.url}/reports", **console.period_query())
    assert status == 200
    assert (_figure(doc, "received"), _figure(doc, "done"), _figure(doc, "rejected"), _figure(doc, "open")) == (
        seed.totals.received, seed.totals.done, seed.totals.rejected, seed.totals.open)
    assert _figure(doc, "overdue") == len(seed.overdue_ids)
    start, end = seed.period.start, seed.period.end
    assert f"Từ ngày {start:%d/%m/%Y} đến ngày {end:%d/%m/%Y}" in doc.get_element_by_id("period-line").text_content()

    # The groups with their total row, as the seed counts them (kind and population in words).
    groups = _table(doc, "groups")
    assert len(groups) == len(seed.groups) + 1
    assert groups[-1][0] == "Tổng cộng" and groups[-1][3:] == [str(v) for v in (18, 10, 5, 8, 5)]
    assert not any("new_account" in " ".join(row) or "student" in " ".join(row) for row in groups)  # words
    # Steps: share within 24 h and median, Vietnamese decimal comma (13 of 15 = 86,7 %).
    office = _table(doc, "steps")[0]
    assert office[1:4] == ["15", "13", "86,7%"] and office[5] == "3,0"
    # The slowest ten of each step link to their requests, in the seed's order.
    slowest = _linked_requests(doc, "slowest")
    expected_slowest = [seed.ids[n] for step in ("office", "technical", "total") for n in seed.steps[step].slowest]
    assert slowest == expected_slowest
    assert _linked_requests(doc, "overdue") == list(seed.overdue_ids)
    accounts = dict(row[:2] for row in _table(doc, "accounts"))
    assert accounts == {"Tạo mới": "6", "Cấp lại mật khẩu": "4", "Tạm khoá": "1", "Xoá": "1",
                        "Thao tác không thành công": "2"}
    assert len(_table(doc, "problems")) == len(seed.problems)

    # Three charts, inline SVG that draws under the CSP: no style attribute, no <style>, no script, unique ids.
    charts = doc.xpath('//*[@id="charts"]//svg[@class="chart"]')
    assert [c.getparent().get("id") for c in charts] == ["chart-by_kind", "chart-steps", "chart-daily"]
    html = lxml.html.tostring(doc, encoding="unicode")
    charts_html = "".join(lxml.html.tostring(c, encoding="unicode") for c in charts)
    assert "style=" not in charts_html and "<style" not in charts_html and "<script" not in charts_html
    assert charts_html.count('fill="#0072b2"') >= 5  # the bars keep their colours as attributes
    assert all(c.get("viewbox") or c.get("viewBox") for c in charts)
    ids = [e.get("id") for c in charts for e in c.iter() if e.get("id")]
    assert len(ids) == len(set(ids)) and ids
    assert "Yêu cầu theo loại" in charts_html and "Tỷ lệ xử lý đúng hạn" in charts_html
    assert "style-src 'self' 'nonce-" in csp and "unsafe-inline" not in csp
    assert [s.get("src") for s in doc.xpath("//script")] == ["/static/live.js"]
    assert [link.get("href") for link in doc.xpath('//link[@rel="stylesheet"]')] == ["/static/reports.css"]

    # Units, most requests first, each a drill-down link to the same period.
    rows = doc.xpath('//*[@id="units"]/tbody/tr')
    units = {tr.get("data-unit"): int(tr.xpath("td")[1].text_content()) for tr in rows}
    received: dict[str, int] = {}
    for g in seed.groups:
        received[g.unit] = received.get(g.unit, 0) + g.received
    assert units == received
    link = doc.xpath(f'//*[@id="units"]//tr[@data-unit="{U1}"]//a')[0].get("href")
    assert parse_qs(urlsplit(link).query) == {"from": [start.isoformat()], "to": [end.isoformat()], "unit": [U1]}
    assert doc.xpath('//a[@id="nav-reports"][@href="/reports"]')
    assert "report." not in doc.text_content() and "None" not in doc.text_content()
    assert "Trưởng phòng Hoa" in html


async def test_the_default_period_is_this_month_to_today_with_quick_links(console: Console) -> None:
    client, _ = await console.signed_in("admin")
    async with client:
        status, doc, _ = await _page(client, f"{console.url}/reports")
    assert status == 200
    assert [i.get("value") for i in doc.xpath('//*[@id="period"]//input[@type="date"]')] == ["2026-09-01", "2026-09-01"]
    quick = {a.get("id"): parse_qs(urlsplit(a.get("href")).query) for a in doc.xpath('//*[@id="quick"]//a')}
    assert quick == {"quick-this_month": {"from": ["2026-09-01"], "to": ["2026-09-01"]},
                     "quick-last_month": {"from": ["2026-08-01"], "to": ["2026-08-31"]},
                     "quick-this_year": {"from": ["2026-01-01"], "to": ["2026-09-01"]}}
    assert _figure(doc, "received") == 0  # the seed's period ended in August
    assert doc.get_element_by_id("no-requests") is not None
    assert len(doc.xpath('//*[@id="charts"]//svg[@class="chart"]')) == 3


async def test_a_unit_drill_down_shows_only_that_units_figures(console: Console) -> None:
    seed = console.seed
    client, _ = await console.signed_in("head")
    async with client:
        status, doc, _ = await _page(client, f"{console.url}/reports", **console.period_query(unit=U1))
    assert status == 200
    assert _figure(doc, "received") == sum(g.received for g in seed.unit_groups) == 8
    assert _figure(doc, "open") == sum(g.open for g in seed.unit_groups)
    assert _linked_requests(doc, "overdue") == list(seed.unit_overdue_ids)
    assert {row[2] for row in _table(doc, "groups")[:-1]} == {U1}
    assert f"Đơn vị: {U1}" in doc.get_element_by_id("period-line").text_content()
    back = doc.get_element_by_id("all-units").get("href")
    assert parse_qs(urlsplit(back).query) == {"from": [seed.period.start.isoformat()],
                                               "to": [seed.period.end.isoformat()]}
    assert not doc.xpath('//*[@id="units"]')
    # The quick links and the make forms keep the unit.
    assert all(parse_qs(urlsplit(a.get("href")).query)["unit"] == [U1] for a in doc.xpath('//*[@id="quick"]//a'))
    assert {i.get("value") for i in doc.xpath('//*[@id="make"]//input[@name="unit"]')} == {U1}


async def _make(console: Console, client: aiohttp.ClientSession, csrf: str, fmt: str,
                **extra: str) -> tuple[int, str, str]:
    """POST /reports/make: (status, Location, page text)."""
    data = {"csrf": csrf, "fmt": fmt, **console.period_query(**extra)}
    async with client.post(f"{console.url}/reports/make", data=data, allow_redirects=False) as r:
        return r.status, r.headers.get("Location", ""), await r.text()


async def _download(console: Console, client: aiohttp.ClientSession, location: str) -> tuple[bytes, Any]:
    async with client.get(f"{console.url}{location}") as r:
        assert r.status == 200
        return await r.read(), r.headers


async def test_making_an_xlsx_archives_it_lists_it_and_downloads_it_audited(console: Console) -> None:
    seed = console.seed
    client, csrf = await console.signed_in("head", "Trưởng phòng Hoa")
    async with client:
        made, location, _ = await _make(console, client, csrf, "xlsx")
        assert made == 303 and re.fullmatch(r"/reports/archive/\d+", location)
        report_id = int(location.rsplit("/", 1)[1])
        body, headers = await _download(console, client, location)
        status, doc, _ = await _page(client, f"{console.url}/reports", **console.period_query())

    name = f"BM03_{seed.period.start.isoformat()}_{seed.period.end.isoformat()}.xlsx"
    assert headers["Content-Type"] == XLSX
    assert headers["Content-Disposition"].startswith(f'attachment; filename="{name}"')
    book = load_workbook(io.BytesIO(body))
    cells = [c for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row if c is not None]
    assert "Tổng cộng" in cells and 18 in cells and console.web.settings.institution.name.upper() in cells
    report = await ReportArchive.get(id=report_id)
    assert (report.made_by, report.fmt, report.filename, report.unit) == ("Trưởng phòng Hoa", "xlsx", name, "")
    assert (report.period_start, report.period_end, report.made_at) == (seed.period.start, seed.period.end, NOW)
    assert bytes(report.content) == body

    # Listed, newest first: made at in local time, the period, all units, the format, who, the size.
    row = doc.xpath(f'//*[@id="archive"]//tr[@data-report="{report_id}"]')[0]
    assert [td.text_content().strip() for td in row.xpath("td")][:5] == [
        "01/09/2026 15:00", f"{seed.period.start:%d/%m/%Y} – {seed.period.end:%d/%m/%Y}", "Tất cả đơn vị", "XLSX",
        "Trưởng phòng Hoa"]
    assert row.xpath(".//a")[0].get("href") == location
    downloads = await AuditEvent.filter(action="report_download")
    assert len(downloads) == 1 and downloads[0].detail["report_id"] == report_id
    assert downloads[0].actor.startswith("Trưởng phòng Hoa (web:")
    assert await AuditEvent.filter(action="report_made").count() == 1


async def test_making_a_pdf_of_a_unit_gives_the_units_pdf(console: Console) -> None:
    client, csrf = await console.signed_in("admin", "Quản trị Minh")
    async with client:
        made, location, _ = await _make(console, client, csrf, "pdf", unit=U1)
        assert made == 303
        body, headers = await _download(console, client, location)
        again, _ = await _download(console, client, location)
    assert headers["Content-Type"] == "application/pdf" and body.startswith(b"%PDF") and again == body
    disposition = headers["Content-Disposition"]
    assert 'filename="BM03_' in disposition and "_Vien-Cong-nghe-Thong-tin-va-Truyen-thong.pdf" in disposition
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)
    assert U1 in text and "Khoa Toán - Tin" not in text
    (report,) = await ReportArchive.all()
    assert (report.unit, report.made_by, report.fmt) == (U1, "Quản trị Minh", "pdf")
    assert await AuditEvent.filter(action="report_download").count() == 2


@pytest.mark.parametrize(("query", "message"), [
    ({"from": "2026-13-01", "to": "2026-09-01"}, "Ngày «2026-13-01» không hợp lệ"),
    ({"from": "hôm qua"}, "Ngày «hôm qua» không hợp lệ"),
    ({"from": "2026-08-10", "to": "2026-08-01"}, "Ngày bắt đầu 10/08/2026 sau ngày kết thúc 01/08/2026"),
    ({"from": "2024-01-01", "to": "2026-08-01"}, "Kỳ báo cáo dài tối đa 366 ngày"),
])
async def test_wrong_dates_are_a_message_not_a_500(console: Console, query: dict[str, str], message: str) -> None:
    client, csrf = await console.signed_in("head")
    async with client:
        status, doc, _ = await _page(client, f"{console.url}/reports", **query)
        async with client.post(f"{console.url}/reports/make", data={"csrf": csrf, "fmt": "xlsx", **query},
                               allow_redirects=False) as made:
            made_status, made_text = made.status, await made.text()
    assert status == 400 and message in doc.xpath(ERROR)[0].text_content()
    assert not doc.xpath('//*[@id="summary"]') and doc.xpath('//*[@id="period"]')  # the form, to pick again
    assert made_status == 400 and message in made_text
    assert await ReportArchive.all().count() == 0


async def test_a_format_other_than_xlsx_or_pdf_and_an_unknown_report_are_refused(console: Console) -> None:
    client, csrf = await console.signed_in("head")
    async with client:
        made, _, text = await _make(console, client, csrf, "docx")
        async with client.get(f"{console.url}/reports/archive/999") as missing:
            missing_status = missing.status
        forged, _, _ = await _make(console, client, "", "xlsx")
    assert made == 400 and ".xlsx hoặc .pdf" in text
    assert missing_status == 404 and forged == 403  # no CSRF token: refused by the guard
    assert await ReportArchive.all().count() == 0


@pytest.mark.parametrize("role", ["office", "technical", "teacher", "leader", ""])
async def test_only_heads_and_admins_reach_reports(console: Console, role: str) -> None:
    head, head_csrf = await console.signed_in("head")
    async with head:
        _, location, _ = await _make(console, head, head_csrf, "xlsx")
    client, csrf = await console.signed_in(role)
    async with client:
        status, doc, _ = await _page(client, f"{console.url}/reports", **console.period_query())
        refused, _, _ = await _make(console, client, csrf, "pdf")
        async with client.get(f"{console.url}{location}") as r:
            download = r.status, await r.read()
        queue = await _page(client, f"{console.url}/")
    assert status == 403 and refused == 403 and download[0] == 403
    text = doc.xpath(ERROR)[0].text_content()
    if role:
        assert text == "Báo cáo thống kê (BM03) chỉ dành cho trưởng bộ phận và quản trị viên."
    assert b"PK" not in download[1][:2] and not doc.xpath('//*[@id="summary"]')
    assert not queue[1].xpath('//*[@id="nav-reports"]')
    assert await ReportArchive.all().count() == 1 and await AuditEvent.filter(action="report_download").count() == 0
    if role:
        denials = [e.detail for e in await AuditEvent.filter(action="access_denied")]
        assert {d["what"] for d in denials if d["permission"] == "reports"} == {
            "GET /reports", "POST /reports/make", f"GET {location}"}


async def test_a_stranger_is_sent_to_sign_in(console: Console) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{console.url}/reports?from=2026-08-01", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"].startswith("/login?next=")
            assert parse_qs(urlsplit(r.headers["Location"]).query)["next"] == ["/reports?from=2026-08-01"]
        async with client.get(f"{console.url}/reports/archive/1", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"].startswith("/login")


async def _open(clock: FakeClock, state: str, step_hours: float, limit: float = 24.0) -> Request:
    """An open request whose current step started `step_hours` ago (need_info: no deadline)."""
    now = clock.now()
    started = now - timedelta(hours=step_hours)
    return await Request.create(kind="new_account", population="student", state=state, sender="a@x.edu.vn",
                                received_at=started - timedelta(hours=30), updated_at=now,
                                deadline=None if state == "need_info" else started + timedelta(hours=limit))


async def test_the_queue_shows_open_requests_by_the_age_of_their_step_and_the_overdue_count(
        console: Console) -> None:
    await Request.filter(state__in=["received", "need_info", "approved", "provisioning"]).delete()
    clock = console.clock
    for state, hours in [("received", 1), ("approved", 3.5), ("received", 5), ("provisioning", 13),
                         ("received", 23.9), ("received", 25), ("approved", 30), ("received", 60),
                         ("need_info", 100), ("need_info", 1)]:
        await _open(clock, state, hours)
    client, _ = await console.signed_in("office")
    async with client:
        status, doc, _ = await _page(client, f"{console.url}/")
    assert status == 200
    bars = {int(g.get("data-bucket")): (int(g.get("data-count")), int(g.get("data-late")))
            for g in doc.xpath('//*[@id="sla-chart"]//g[@data-bucket]')}
    # < 4 h, 4–12 h, 12–24 h, 24–48 h, > 48 h; past 24 h in a step is past its deadline.
    assert bars == {0: (2, 0), 1: (1, 0), 2: (2, 0), 3: (2, 2), 4: (1, 1)}
    assert doc.get_element_by_id("sla-overdue").text_content() == "3"
    assert "2 yêu cầu đang chờ người gửi bổ sung" in doc.get_element_by_id("sla-waiting").text_content()
    assert "< 4 giờ" in doc.get_element_by_id("sla-chart").text_content()
    assert not doc.xpath('//*[@id="sla-chart"]//*[@style]')


async def test_the_glance_reads_each_steps_own_limit(app_factory: Any, settings_factory: Any) -> None:
    clock = FakeClock(NOW)
    app = await app_factory(settings_factory(web={"port": 0}, sla={"provision_hours": 8}), clock=clock,
                            inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    await _open(clock, "approved", 9, limit=8)  # the technical step ran 9 h of its 8: late
    await _open(clock, "received", 9)  # the office's check ran 9 h of its 24: on time
    await _open(clock, "provisioning", 2, limit=8)
    client, _ = await signed_in(app.web, clock, "technical")
    async with client:
        _, doc, _ = await _page(client, f"{app.web.base_url}/")
    bars = {int(g.get("data-bucket")): (int(g.get("data-count")), int(g.get("data-late")))
            for g in doc.xpath('//*[@id="sla-chart"]//g[@data-bucket]')}
    assert bars == {0: (1, 0), 1: (2, 1), 2: (0, 0), 3: (0, 0), 4: (0, 0)}
    assert doc.get_element_by_id("sla-overdue").text_content() == "1"
    assert not doc.xpath('//*[@id="sla-waiting"]')


async def test_the_queue_has_no_glance_when_nothing_is_open(console: Console) -> None:
    await Request.filter(state__in=["received", "need_info", "approved", "provisioning"]).delete()
    client, _ = await console.signed_in("office")
    async with client:
        status, doc, _ = await _page(client, f"{console.url}/")
    assert status == 200 and not doc.xpath('//*[@id="sla"]')


async def test_the_page_and_the_glance_are_complete_in_english(app_factory: Any, settings_factory: Any) -> None:
    clock = FakeClock(NOW)
    app = await app_factory(settings_factory(web={"port": 0}, general={"language": "en"}), clock=clock,
                            inline_analysis=True)
    seed = await seed_bm03(NOW, app.settings)
    assert app.web is not None
    await app.web.start()
    client, _ = await signed_in(app.web, clock, "head", "Hoa")
    async with client:
        status, doc, _ = await _page(client, f"{app.web.base_url}/reports", **{
            "from": seed.period.start.isoformat(), "to": seed.period.end.isoformat()})
        _, wrong, _ = await _page(client, f"{app.web.base_url}/reports", **{"from": "31/02/2026"})
        _, queue, _ = await _page(client, f"{app.web.base_url}/")
    text = doc.text_content()
    assert status == 200
    for phrase in ("Reports", "Make and download Excel (.xlsx)", "Summary", "Charts", "By unit", "Reports made",
                   f"From {seed.period.start:%d/%m/%Y} to {seed.period.end:%d/%m/%Y}", "Received", "Total",
                   "No report has been archived yet.", "Requests by kind"):
        assert phrase in text or phrase in lxml.html.tostring(doc, encoding="unicode"), phrase
    vietnamese = re.compile(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", re.IGNORECASE)
    shown = text.replace(seed.unit, "").replace("Khoa Toán - Tin", "").replace("Phòng Tổ chức - Hành chính", "")
    shown = shown.replace(app.settings.institution.name, "").replace(app.settings.institution.office_unit, "")
    assert not vietnamese.search(shown), vietnamese.findall(shown)
    assert "The date “31/02/2026” is not valid" in wrong.xpath(ERROR)[0].text_content()
    assert "Open requests by time spent in their current step" in queue.xpath('//*[@id="sla-chart"]/title')[0].text
    assert "overdue requests" in queue.xpath('//*[@id="sla"]')[0].text_content()
