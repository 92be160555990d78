"""Sending records to the receiving portal from the web console, in headless Chromium: the admin's "Gửi lên hệ
thống" behind its confirmation, the per-record states (đã gửi with the receipt, lỗi with the portal's answer),
the resend of the refused record only, a teacher refused, and the English console. Real database, signatures,
jobs, console and HTTP adapter; the portal is tests/fakes/records_portal.py; the clock is a test clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.models import Job
from edudesk.core.ports import FakeClock
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.sendmodels import RecordSend
from edudesk.core.signing.spec import Stage
from tests.fakes.records_portal import FakeRecordsPortal
from tests.records_kit import ADMIN, RecordsKit, records_settings, small_roster
from tests.webauth import CHROMIUM, NEEDS_CHROMIUM, chromium, sign_in_admin, sign_in_teacher

pytestmark = [pytest.mark.db, pytest.mark.slow, NEEDS_CHROMIUM]

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội


@dataclass
class School:
    """An issued class (every record signed and confirmed), its console, the fake portal and a browser."""

    kit: RecordsKit
    portal: FakeRecordsPortal
    browser: Browser

    @property
    def url(self) -> str:
        assert self.kit.app.web is not None
        return str(self.kit.app.web.base_url)

    async def teacher(self, code: str) -> Page:
        """The roster's teacher signed in, in their own browser context."""
        return await sign_in_teacher(self.browser, self.kit.app, code)

    async def admin(self) -> Page:
        """An administrator signed in."""
        return await sign_in_admin(self.browser, self.kit.app)


def school_fixture(language: str) -> Callable[..., Any]:
    async def make(app_factory: Any, settings_factory: Any, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[School]:
        monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
        async with FakeRecordsPortal() as portal:
            monkeypatch.setenv("EDUDESK_TEST_PORTAL_TOKEN", portal.token)
            pki = DemoPki.create()
            settings = settings_factory(records=records_settings(tmp_path, pki), web={"port": 0},
                                        general={"language": language},
                                        portal={"enabled": True, "url": portal.upload_url,
                                                "token_env": "EDUDESK_TEST_PORTAL_TOKEN"})
            app = await app_factory(settings, clock=FakeClock(START), inline_analysis=True)
            kit = RecordsKit(app, pki, app.clock, small_roster())
            await kit.load()
            await kit.start()
            for code in ("GV01", "GV02", "GV03"):
                await kit.sign(code, Stage.SUBJECT)
            await kit.sign("GV02", Stage.HOMEROOM)
            await kit.sign("BGH01", Stage.LEADERSHIP)
            await kit.settle()  # the issuing signature
            await app.records.confirm_class(ADMIN, kit.class_id)
            assert app.web is not None
            await app.web.start()
            try:
                async with chromium() as browser:
                    yield School(kit, portal, browser)
            finally:
                await app.web.stop()
    return make


school = pytest.fixture(school_fixture("vi"))
school_en = pytest.fixture(school_fixture("en"))


async def test_admin_sends_sees_each_record_and_resends_only_the_refused_one(school: School) -> None:
    kit, portal = school.kit, school.portal
    portal.refuse["HS002"] = "Số định danh cá nhân không khớp CSDL ngành."
    page = await school.admin()
    await page.goto(f"{school.url}/records")
    row = page.locator(f'#portal tr[data-portal-class="{kit.class_id}"]')
    assert "0 đã gửi · 0 lỗi · 3 chưa gửi" in await row.inner_text()
    await row.locator("summary", has_text="Gửi lên hệ thống").click()  # the confirmation opens: nothing is sent yet
    assert "Gửi 3 học bạ lớp 10A1 lên Cổng tiếp nhận" in await row.inner_text()
    assert not await Job.filter(kind="portal_send").exists()
    await row.get_by_role("button", name="Gửi lên hệ thống").click()
    await page.wait_for_url(f"{school.url}/records/classes/{kit.class_id}/sent")
    assert "Đang gửi; lần gửi tiếp lúc 20/05/2026 08:" in await page.locator("#send-waiting").inner_text()
    assert await page.locator("#send-box").count() == 0  # no second send while one waits
    await kit.app.worker.drain()
    await page.reload()
    assert await page.locator("#send-counts").inner_text() == "2 đã gửi · 1 lỗi · 0 chưa gửi"
    sends = {s.record_id: s for s in await RecordSend.all()}
    for record in await kit.records():
        tr = page.locator(f'#sends tr[data-record="{record.id}"]')
        text = await tr.inner_text()
        if record.student_code == "HS002":
            assert await tr.get_attribute("data-send") == "failed" and "lỗi" in text
            assert "Số định danh cá nhân không khớp CSDL ngành." in text
        else:
            assert await tr.get_attribute("data-send") == "sent" and "đã gửi" in text
            assert sends[record.id].receipt in text and "20/05/2026 08:" in text
    portal.refuse.clear()
    box = page.locator("#send-box")
    assert "Gửi 1 học bạ lớp 10A1" in await box.inner_text()
    await box.get_by_role("button", name="Gửi lên hệ thống").click()
    await page.wait_for_url(f"{school.url}/records/classes/{kit.class_id}/sent")
    await kit.app.worker.drain()
    await page.reload()
    assert await page.locator("#send-counts").inner_text() == "3 đã gửi · 0 lỗi · 0 chưa gửi"
    assert "Cổng tiếp nhận đã nhận mọi học bạ của lớp." in await page.content()
    assert [sorted(u.files) for u in portal.uploads][1] == ["HS002_Hoc_Sinh_So_2.pdf"]


async def test_a_teacher_can_neither_send_nor_see_the_states(school: School) -> None:
    kit = school.kit
    page = await school.teacher("BGH01")
    await page.goto(f"{school.url}/records")
    assert await page.locator("#portal").count() == 0
    answer = await page.goto(f"{school.url}/records/classes/{kit.class_id}/sent")
    assert answer is not None and answer.status == 403
    assert "Học Sinh Số" not in await page.content()  # no student data
    await page.goto(f"{school.url}/records")
    csrf = await page.locator('input[name="csrf"]').first.get_attribute("value")
    status = await page.evaluate("""async ([url, csrf]) => (await fetch(url, {method: "POST",
        body: new URLSearchParams({csrf})})).status""", [f"/records/classes/{kit.class_id}/send", csrf or ""])
    assert status == 403
    assert not await Job.filter(kind="portal_send").exists() and not school.portal.requests


async def test_the_english_console_says_it_all_in_english(school_en: School) -> None:
    kit = school_en.kit
    page = await school_en.admin()
    await page.goto(f"{school_en.url}/records")
    row = page.locator(f'#portal tr[data-portal-class="{kit.class_id}"]')
    assert "0 sent · 0 failed · 3 not sent" in await row.inner_text()
    await row.locator("summary", has_text="Send to the portal").click()
    assert "Send 3 records of class 10A1 to the receiving portal" in await row.inner_text()
    await row.get_by_role("button", name="Send to the portal").click()
    await page.wait_for_url(f"{school_en.url}/records/classes/{kit.class_id}/sent")
    await kit.app.worker.drain()
    await page.reload()
    assert await page.locator("#send-counts").inner_text() == "3 sent · 0 failed · 0 not sent"
    table = await page.locator("#sends").inner_text()
    assert "Receipt" in table and "The portal's answer" in table and "sent" in table
    for word in ("đã gửi", "Biên nhận", "Gửi lên hệ thống", "chưa gửi"):
        assert word not in await page.content()
