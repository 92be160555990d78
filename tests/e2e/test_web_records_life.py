"""/records/life in headless Chromium: the admin uploads the corrected record after an approved Báo sai sót (a
wrong file is named and refused), downloads the archived revision, and starts a withdrawal from the form whose
minutes the leadership then signs. Real database, jobs, signatures and console; the clock is a test clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.ports import FakeClock
from edudesk.core.signing.lifemodels import RecordChange, RecordRevision
from edudesk.core.signing.models import SchoolRecord
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import Stage
from tests.integration.test_records_lifecycle import corrected, exported, sign_all
from tests.records_kit import ADMIN, PIN, RecordsKit, records_settings, small_roster
from tests.webauth import CHROMIUM, NEEDS_CHROMIUM, chromium, sign_in_admin, sign_in_teacher

pytestmark = [pytest.mark.db, pytest.mark.slow, NEEDS_CHROMIUM]

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội


@dataclass
class Console:
    """The records world with its console and a browser."""

    kit: RecordsKit
    browser: Browser

    @property
    def url(self) -> str:
        assert self.kit.app.web is not None
        return str(self.kit.app.web.base_url)

    async def teacher(self, code: str) -> Page:
        """The roster's teacher signed in, in a browser context of their own."""
        return await sign_in_teacher(self.browser, self.kit.app, code)

    async def admin(self) -> Page:
        """An administrator signed in."""
        return await sign_in_admin(self.browser, self.kit.app)


@pytest.fixture
async def console(app_factory: Any, settings_factory: Any, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Console]:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    clock = FakeClock(START)
    settings = settings_factory(records=records_settings(tmp_path, pki), web={"port": 0})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    kit = RecordsKit(app, pki, clock, small_roster())
    await kit.load()
    await kit.start()
    assert app.web is not None
    await app.web.start()
    try:
        async with chromium() as browser:
            yield Console(kit, browser)
    finally:
        await app.web.stop()


async def test_admin_uploads_the_corrected_record_and_the_old_revision_is_kept(console: Console,
                                                                               tmp_path: Path) -> None:
    kit = console.kit
    await kit.sign("GV01", Stage.SUBJECT)
    first = (await kit.records())[0]
    ret = await kit.app.records.return_record(await kit.actor("GV02"), first.id, "Sai ngày sinh của học sinh")
    await kit.app.records.decide_return(ADMIN, ret.id, True)
    teacher = await console.teacher("GV02")
    refused = await teacher.goto(f"{console.url}/records/life")
    assert refused is not None and refused.status == 403
    assert "Chỉ quản trị viên" in await teacher.content()
    page = await console.admin()
    await page.goto(f"{console.url}/records")
    await page.locator("#life-link").click()
    row = page.locator(f'#corrections tr[data-record="{first.id}"]')
    assert "Sai ngày sinh của học sinh" in await row.inner_text()
    wrong, right = tmp_path / "HS002.pdf", tmp_path / "HS001-da-sua.pdf"
    wrong.write_bytes(exported(kit, 1))
    right.write_bytes(corrected(kit, 0))
    await row.locator('input[type="file"]').set_input_files(str(wrong))
    await row.get_by_role("button", name="Tải lên, ký lại từ đầu").click()
    alert = page.get_by_role("alert")
    assert "không phải học bạ của học sinh này" in await alert.inner_text()
    assert (await SchoolRecord.get(id=first.id)).state == "correcting"
    row = page.locator(f'#corrections tr[data-record="{first.id}"]')
    await row.locator('input[type="file"]').set_input_files(str(right))
    await row.get_by_role("button", name="Tải lên, ký lại từ đầu").click()
    await page.locator("#corrections", has_text="Không có học bạ nào chờ bản đã sửa").wait_for()
    remade = await SchoolRecord.get(id=first.id)
    assert (remade.state, remade.revision, bytes(remade.original)) == ("signing", 1, right.read_bytes())
    [rev] = await RecordRevision.all()
    listed = page.locator(f'#revisions tr[data-revision="{rev.id}"]')
    assert "Bản lập lần 1" in await listed.inner_text() and "sửa sau báo sai sót" in await listed.inner_text()
    download = await page.request.get(f"{console.url}/records/life/revisions/{rev.id}/pdf")
    assert download.status == 200 and download.headers["content-type"] == "application/pdf"
    assert await download.body() == bytes(first.pdf), "the archived revision exactly as it was signed"


async def test_admin_starts_a_withdrawal_and_the_leadership_signs_its_minutes(console: Console) -> None:
    kit = console.kit
    await sign_all(kit)
    await kit.app.records.confirm_class(ADMIN, kit.class_id)
    page = await console.admin()
    await page.goto(f"{console.url}/records/life")
    form = page.locator("#start-change")
    await form.locator('select[name="class_id"]').select_option(label="10A1 (2025-2026)")
    await form.locator('input[name="code"]').fill("HS002")
    await form.locator('textarea[name="reason"]').fill("Học sinh chuyển trường giữa năm")
    await form.get_by_role("button", name="Lập biên bản").click()
    row = page.locator("#changes tr[data-kind='withdrawal']")
    assert "01/2025-2026/BB-THHB" in await row.inner_text() and "0/1 chữ ký" in await row.inner_text()
    options = await page.locator('#start-change select[name="class_id"] option').all_inner_texts()
    assert options == ["10A1 (2025-2026)"], "the class's minutes book is not a class to choose"
    form = page.locator("#start-change")
    await form.locator('input[value="adjustment"]').check()
    await form.locator('select[name="class_id"]').select_option(label="10A1 (2025-2026)")
    await form.locator('input[name="code"]').fill("HS003")
    await form.locator('textarea[name="reason"]').fill("Sửa điểm")
    await form.get_by_role("button", name="Lập biên bản").click()
    assert "Điều chỉnh cần tệp học bạ đã sửa" in await page.get_by_role("alert").inner_text()
    change = await RecordChange.get(record__student_code="HS002")
    minutes = await SchoolRecord.get(id=change.minutes_id)
    await kit.settle()
    principal = await console.teacher("BGH01")
    await principal.goto(f"{console.url}/records")  # the console's side of the minutes' sign-now notice
    said = await principal.locator(f'#turns tr[data-class="{minutes.klass_id}"] ul.minutes').inner_text()
    assert said == ("Số 01/2025-2026/BB-THHB: thu hồi học bạ của Học Sinh Số 2 (HS002), lớp 10A1 (2025-2026) — "
                    "lý do: Học sinh chuyển trường giữa năm")
    await kit.app.records.start_signing(await kit.actor("BGH01"), minutes.klass_id, Stage.LEADERSHIP, pin=PIN)
    await kit.settle()
    await page.goto(f"{console.url}/records/life")
    assert "Không có biên bản nào đang chờ ký" in await page.locator("#changes").inner_text()
    assert "thu hồi" in await page.locator("#revisions").inner_text()
    assert (await SchoolRecord.get(student_code="HS002")).state == "withdrawn"
