"""The console's /reports in headless Chromium: a head signs in, opens the reports from the menu, picks last month,
sees the figures and the three server-drawn SVG charts (drawn in colour under the console's CSP, no violation
reported), makes the .xlsx (a real download), and the same page fits a phone; an office clerk is refused. The
queue's SLA glance is drawn too. Real database (the seeded BM03 data set) and console; a test clock.

Screenshots are kept in the test's tmp dir (and printed) for a person to look at."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from edudesk.app import App
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.ports import FakeClock
from edudesk.core.reports.models import ReportArchive
from tests.reports_seed import SeedExpectations, seed_bm03

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.db, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page, async_playwright

NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)  # 01/09/2026 15:00 in Hà Nội: the seed's period is in August
PHONE = {"width": 390, "height": 844}


@dataclass
class Desk:
    """The console over the seeded data set, and a browser; `csp` collects every CSP complaint of any page."""

    app: App
    browser: Browser
    seed: SeedExpectations
    csp: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.app.web is not None
        return self.app.web.base_url

    async def login(self, name: str, roles: list[str], **context: Any) -> Page:
        """A staff member signed in through a one-time link, in their own browser context."""
        staff = await Staff.create(name=name, roles=roles, created_at=self.app.clock.now())
        link = await issue_login_link(staff.id, self.app.settings, self.app.clock, base_url=self.url)
        page = await (await self.browser.new_context(accept_downloads=True, locale="vi-VN", **context)).new_page()
        page.on("console", lambda m: self.csp.append(m.text) if "Content Security Policy" in m.text else None)
        await page.goto(link)
        await page.get_by_role("button", name="Đăng nhập").click()
        await page.wait_for_url(lambda url: url.startswith(self.url) and "/login" not in url)
        return page


@pytest.fixture
async def desk(app_factory: Any, settings_factory: Any) -> AsyncIterator[Desk]:
    app = await app_factory(settings_factory(web={"port": 0}), clock=FakeClock(NOW), inline_analysis=True)
    seed = await seed_bm03(NOW, app.settings)
    assert app.web is not None
    await app.web.start()
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
    try:
        yield Desk(app, browser, seed)
    finally:
        await browser.close()
        await pw.stop()
        await app.web.stop()


async def _charts_drawn(page: Page) -> list[dict[str, Any]]:
    """Each chart's box on screen and the colours the browser paints its shapes with (fill and stroke)."""
    boxes = []
    for chart in await page.locator("#charts svg.chart").all():
        box = await chart.bounding_box()
        assert box is not None
        colours = await chart.evaluate("svg => [...svg.querySelectorAll('path, use')].flatMap(p => "
                                       "[getComputedStyle(p).fill, getComputedStyle(p).stroke])")
        boxes.append({**box, "colours": set(colours)})
    return boxes


async def test_a_head_sees_the_charts_makes_the_xlsx_and_the_page_fits_a_phone(desk: Desk, tmp_path: Path) -> None:
    seed = desk.seed
    head = await desk.login("Trưởng phòng Hoa", ["head"])
    await head.get_by_role("link", name="Báo cáo").click()
    await head.wait_for_url(f"{desk.url}/reports")
    await head.locator("#quick-last_month").click()
    await head.wait_for_url(f"{desk.url}/reports?from=2026-08-01&to=2026-08-31")
    assert await head.locator('[data-figure="received"] b').inner_text() == str(seed.totals.received + 3)  # X1..X3
    # The seed's ten days, picked in the form's date fields.
    start, end = seed.period.start.isoformat(), seed.period.end.isoformat()
    await head.locator('#period input[name="from"]').fill(start)
    await head.locator('#period input[name="to"]').fill(end)
    asked = time.perf_counter()
    await head.get_by_role("button", name="Xem").click()
    await head.wait_for_url(f"{desk.url}/reports?from={start}&to={end}")
    first = time.perf_counter() - asked
    asked = time.perf_counter()
    await head.reload()
    again = time.perf_counter() - asked
    print(f"\n/reports of the seed's period: {first * 1000:.0f} ms, reloaded {again * 1000:.0f} ms")
    assert await head.locator('[data-figure="received"] b').inner_text() == str(seed.totals.received)
    assert await head.locator('[data-figure="overdue"] b').inner_text() == str(len(seed.overdue_ids))

    charts = await _charts_drawn(head)
    assert len(charts) == 3
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 100
        assert "rgb(0, 114, 178)" in chart["colours"]  # the first series' blue: colours survived the CSP
    assert await head.locator("#chart-by_kind svg text", has_text="Tiếp nhận").count() >= 1
    desktop = tmp_path / "reports-desktop.png"
    await head.screenshot(path=str(desktop), full_page=True)
    print(f"\nscreenshots: {desktop}")

    # Make the workbook: the browser downloads it under the report's name, and the archive keeps it.
    async with head.expect_download() as download_info:
        await head.locator("#make-xlsx").click()
    download = await download_info.value
    assert download.suggested_filename == f"BM03_{start}_{end}.xlsx"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    book = load_workbook(io.BytesIO(saved.read_bytes()))
    assert any(c == "Tổng cộng" for ws in book.worksheets for row in ws.iter_rows(values_only=True) for c in row)
    (report,) = await ReportArchive.all()
    assert report.made_by == "Trưởng phòng Hoa" and bytes(report.content) == saved.read_bytes()
    assert await AuditEvent.filter(action="report_download").count() == 1
    await head.reload()
    assert await head.locator(f'#archive tr[data-report="{report.id}"]').count() == 1
    await head.get_by_role("link", name="Hàng đợi").click()
    await head.locator("#sla-chart").wait_for()
    await head.locator("#sla").screenshot(path=str(tmp_path / "queue-desktop.png"))

    # A phone: the page does not scroll sideways; each chart keeps a readable size (its text about as large as
    # on a desktop) and scrolls sideways inside its own frame, which fits the screen.
    phone = await desk.login("Trưởng phòng Hoa", ["head"], viewport=PHONE, is_mobile=True, has_touch=True)
    await phone.goto(f"{desk.url}/reports?from={start}&to={end}")
    assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for chart in await _charts_drawn(phone):
        assert chart["width"] >= 450 and chart["height"] > 150
    for frame in await phone.locator("#charts figure").all():
        box = await frame.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    tick = await phone.locator("#chart-by_kind svg text").first.bounding_box()
    assert tick is not None and tick["height"] >= 9  # a label's glyphs on screen, in CSS pixels
    await phone.locator("#make-pdf").scroll_into_view_if_needed()
    assert await phone.locator("#make-pdf").is_visible()
    small = tmp_path / "reports-phone.png"
    await phone.screenshot(path=str(small), full_page=True)
    charts_only = tmp_path / "reports-phone-charts.png"
    await phone.locator("#charts").screenshot(path=str(charts_only))
    print(f"screenshots: {small}, {charts_only}")

    # The queue's glance, for the same head.
    await phone.goto(f"{desk.url}/")
    glance = await phone.locator("#sla-chart").bounding_box()
    assert glance is not None and glance["width"] > 250 and glance["height"] > 80
    assert int(await phone.locator("#sla-overdue").inner_text()) >= len(seed.overdue_ids)
    queue = tmp_path / "queue-phone.png"
    await phone.locator("#sla").screenshot(path=str(queue))
    print(f"screenshots: {queue}")
    assert desk.csp == []


async def test_an_office_clerk_is_refused_the_reports(desk: Desk) -> None:
    office = await desk.login("Phạm Thị Lan", ["office"])
    assert await office.locator("#nav-reports").count() == 0
    response = await office.goto(f"{desk.url}/reports?from=2026-08-01&to=2026-08-31")
    assert response is not None and response.status == 403
    text = await office.locator(".flash.error").inner_text()
    assert text == "Báo cáo thống kê (BM03) chỉ dành cho trưởng bộ phận và quản trị viên."
    assert await office.locator("#charts").count() == 0 and await office.locator("#summary").count() == 0
