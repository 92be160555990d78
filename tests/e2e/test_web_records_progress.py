"""The vice principal's records dashboard in headless Chromium: the table per class and stage, who is blocking,
the inline SVG chart, the .xlsx download, "Nhắc tất cả" enqueueing each reminder once per minute, a teacher
refused, and the English console. Real database, signatures, jobs and console; the clock is a test clock."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import FakeClock
from edudesk.core.signing.models import SchoolRecord
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import Stage
from tests.records_kit import RecordsKit, records_settings, small_roster
from tests.webauth import CHROMIUM, NEEDS_CHROMIUM, chromium, sign_in_admin, sign_in_teacher

pytestmark = [pytest.mark.db, pytest.mark.slow, NEEDS_CHROMIUM]

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
SCREENSHOT = Path("/tmp/edudesk-records-progress.png")  # kept for a person to look at


@dataclass
class School:
    """The records world (GV01 signed on 20/05, the others are late on 28/05), its console and a browser."""

    kit: RecordsKit
    browser: Browser

    @property
    def url(self) -> str:
        assert self.kit.app.web is not None
        return str(self.kit.app.web.base_url)

    async def teacher(self, code: str) -> Page:
        """The roster's teacher (BGH01 is the principal: the leadership role) signed in, downloads allowed."""
        return await sign_in_teacher(self.browser, self.kit.app, code, accept_downloads=True)

    async def admin(self, name: str) -> Page:
        """An administrator signed in, downloads allowed."""
        return await sign_in_admin(self.browser, self.kit.app, name, accept_downloads=True)

    async def nudges(self) -> int:
        """The "Nhắc tất cả" reminders queued so far (each a chat notice job with its own key)."""
        return await Job.filter(kind="chat_notice", key__startswith="notice:signnudge").count()


def school_fixture(language: str) -> Callable[..., Any]:
    async def make(app_factory: Any, settings_factory: Any, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[School]:
        monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
        pki = DemoPki.create()
        clock = FakeClock(START)
        settings = settings_factory(records=records_settings(tmp_path, pki), web={"port": 0},
                                    general={"language": language})
        app = await app_factory(settings, clock=clock, inline_analysis=True)
        kit = RecordsKit(app, pki, clock, small_roster())
        await kit.load()
        await kit.start()
        await kit.sign("GV01", Stage.SUBJECT)
        clock.advance(timedelta(days=8))  # 28/05 08:01: GV02 and GV03 are a day past their deadline
        assert app.web is not None
        await app.web.start()
        try:
            async with chromium() as browser:
                yield School(kit, browser)
        finally:
            await app.web.stop()
    return make


school = pytest.fixture(school_fixture("vi"), name="school")
english_school = pytest.fixture(school_fixture("en"), name="english_school")


async def test_leader_sees_classes_blockers_and_the_chart_and_downloads_the_xlsx(school: School) -> None:
    kit = school.kit
    page = await school.teacher("BGH01")
    refusals: list[str] = []
    page.on("console", lambda m: refusals.append(m.text) if "Content Security Policy" in m.text else None)
    await page.goto(f"{school.url}/records")
    await page.locator("#progress-link").click()
    await page.wait_for_url(f"{school.url}/records/progress")
    assert "Tiến độ ký học bạ số — năm học 2025-2026" in await page.locator("h1").inner_text()
    assert "Đã có 3/18 chữ ký (16,7 %)" in await page.locator("#overall").inner_text()

    subject = page.locator('#by-class td[data-stage="1"]').first
    assert [await subject.get_attribute(f"data-{k}") for k in ("done", "waiting", "overdue", "later")] == [
        "0", "0", "3", "0"]
    assert "27/05/2026 08:00" in await subject.inner_text()  # the stage's deadline, local time
    homeroom = page.locator('#by-class td[data-stage="2"]').first
    assert await homeroom.get_attribute("data-later") == "3"
    assert await page.locator('#totals td[data-stage="1"]').get_attribute("data-overdue") == "3"

    rows = page.locator("#blockers tbody tr")
    assert await rows.count() == 2
    texts = [await rows.nth(i).inner_text() for i in range(2)]
    assert "Trần Văn Cường" in texts[0] and "Ngữ văn" in texts[0] and "Lê Thị Hoa" in texts[1]
    assert all("20/05/2026 08:00" in t and "27/05/2026 08:00" in t and "quá hạn" in t for t in texts)
    assert await rows.nth(0).locator("td.records").inner_text() == "3"
    assert await rows.nth(0).locator("td.late-count").inner_text() == "3"
    # The chart is an inline SVG (no image request, nothing to load from elsewhere), sized to the page.
    chart = page.locator("#progress-chart > svg")
    assert await chart.get_attribute("aria-label") == "Tỉ lệ chữ ký đã hoàn thành theo ngày"
    box = await chart.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 150
    assert "28/05" in await chart.inner_html() or "27/05" in await chart.inner_html()
    # Drawn as matplotlib meant it under the console's CSP: a white background and an unfilled line, not the
    # black block that style="" attributes (ignored by the CSP) would leave; and no inline style refused.
    colours = await page.evaluate("""() => {
        const paths = [...document.querySelectorAll("#progress-chart > svg path")].map(getComputedStyle);
        const line = paths.find((p) => p.stroke === "rgb(0, 114, 178)");  // the first series' colour
        return [paths[0].fill, line ? line.fill : "no line drawn"];
    }""")
    assert colours == ["rgb(255, 255, 255)", "none"], colours
    assert not [m for m in refusals if "style" in m], refusals
    # Names of teachers and counts only: no student's name or code on the page (Decree 13/2023).
    html = await page.content()
    assert not [r for r in await SchoolRecord.all() if r.student_name in html or r.student_code in html]
    await page.set_viewport_size({"width": 1100, "height": 1400})
    await page.screenshot(path=str(SCREENSHOT), full_page=True)

    async with page.expect_download() as info:
        await page.locator("#download").click()
    download = await info.value
    assert download.suggested_filename == "tien-do-ky-hoc-ba-2025-2026.xlsx"
    book = load_workbook(io.BytesIO(Path(await download.path()).read_bytes()))
    assert book.sheetnames == ["Tiến độ", "Đang chờ", "Theo ngày"]
    assert [c.value for c in book["Đang chờ"][2]][:5] == ["Trần Văn Cường", "10A1", "Giáo viên bộ môn", "Ngữ văn", 3]
    assert len(book["Theo ngày"]._charts) == 1
    assert kit.class_id


async def test_remind_all_queues_each_reminder_once_a_minute(school: School) -> None:
    kit = school.kit
    page = await school.teacher("BGH01")
    await page.goto(f"{school.url}/records/progress")
    assert await school.nudges() == 0
    await page.locator("#remind-all button").click()
    await page.locator(".flash.ok", has_text="Đã nhắc 2 giáo viên").wait_for()
    assert page.url.startswith(f"{school.url}/records/progress")
    assert "28/05/2026 08:01" in await page.locator(".flash.ok").inner_text()  # outside quiet hours: now
    assert await school.nudges() == 2  # GV02 and GV03, one message each for their class and stage
    await page.locator("#remind-all button").click()  # a second tap in the same minute: nothing more is queued
    await page.locator(".flash.ok", has_text="Đã nhắc 2 giáo viên").wait_for()
    assert await school.nudges() == 2
    kit.clock.advance(timedelta(minutes=1))
    await page.locator("#remind-all button").click()
    await page.locator(".flash.ok", has_text="28/05/2026 08:02").wait_for()
    assert await school.nudges() == 4
    texts = [j.payload["text"] for j in await Job.filter(key__startswith="notice:signnudge").order_by("id")]
    assert all("Ban giám hiệu nhắc ký học bạ số" in t for t in texts)
    assert len(await AuditEvent.filter(action="records_reminded")) == 3


async def test_a_teacher_is_refused_the_dashboard_its_xlsx_and_its_reminders(school: School) -> None:
    page = await school.teacher("GV01")
    await page.goto(f"{school.url}/records")
    assert await page.locator("#progress-link").count() == 0
    answer = await page.goto(f"{school.url}/records/progress")
    assert answer is not None and answer.status == 403
    assert "Chỉ ban giám hiệu xem tiến độ ký học bạ" in await page.locator(".flash.error").inner_text()
    status = await page.evaluate("async (url) => (await fetch(url)).status", f"{school.url}/records/progress.xlsx")
    assert status == 403
    await page.goto(f"{school.url}/records")
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    posted = await page.evaluate("""async (csrf) => {
        const r = await fetch("/records/progress/remind", {method: "POST", body: new URLSearchParams({csrf})});
        return r.status;
    }""", csrf or "")
    assert posted == 403 and await school.nudges() == 0
    refusals = [e.detail["action"] for e in await AuditEvent.filter(action="records_refused").order_by("id")]
    assert refusals == ["rec_progress", "rec_progress", "rec_remind"]


async def test_the_english_console_shows_the_dashboard_in_english(english_school: School) -> None:
    page = await english_school.admin("Admin")
    await page.goto(f"{english_school.url}/records/progress")
    text = await page.locator("main").inner_text()
    assert "Digital school records signing progress — school year 2025-2026" in text
    assert "3 of 18 signatures made (16.7%)" in text
    for words in ("Who is blocking", "Remind everyone", "Records to sign", "Subject teachers", "By class and stage"):
        assert words.lower() in text.lower(), words
    for vietnamese in ("Quá hạn", "Giáo viên bộ môn", "Đang chờ", "Tỉ lệ"):
        assert vietnamese not in text, vietnamese
    assert await page.locator("#progress-chart > svg").get_attribute("aria-label") == "Share of signatures done, by day"
    await page.goto(f"{english_school.url}/records/progress?year=2019-2020")  # a year without classes
    text = await page.locator("main").inner_text()
    assert "No class in this school year yet." in text and "No turn has opened yet." in text
    assert await page.locator("#progress-chart").count() == 0
    assert "2025-2026" in await page.locator(".filters").inner_text()  # the way back to the year that has them
