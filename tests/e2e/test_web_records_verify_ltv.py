"""The console's verify page (/records/verify) shows what `edudesk records verify --at` says (issue #18): each
signature's PAdES level, its timestamp's time and TSA, whether revocation was checked, the record's archival
timestamps and the day to renew them before, and whether the file still validates at a date typed as dd/mm/yyyy —
in headless Chromium, with records signed at B-LTA through the real workflow against certomancer's TSA, OCSP and
CRL on 127.0.0.1 (test_pades_levels' service), Vietnamese by default and English when the console is set to it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edudesk.cli.localpki import LocalPkiService
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.ports import FakeClock
from edudesk.core.signing.models import Teacher
from edudesk.core.signing.spec import Stage
from edudesk.core.words import words
from tests.integration.test_pades_levels import service  # noqa: F401 - the fixture: certomancer on 127.0.0.1
from tests.records_kit import RecordsKit, records_settings, small_roster

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.db, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]

if CHROMIUM.exists():
    from playwright.async_api import Page, async_playwright

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
TEN_YEARS = (dt.datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) + timedelta(days=3652)).strftime("%d/%m/%Y")
Open = Callable[[str], Any]


@pytest.fixture
async def school(app_factory: Any, settings_factory: Any, tmp_path: Path, service: LocalPkiService,  # noqa: F811
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Open]:
    """`await school(lang)`: the records world signed at B-LTA (or `ltv`), its console in `lang`, and a signed-in
    teacher's Chromium page on /records/verify with the record of HS001 (the page, the PDF, the record's state)."""
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])

    async def make(lang: str, *, ltv: str = "B-LTA", issue: bool = True) -> tuple[Page, bytes, str]:
        records = records_settings(tmp_path, service.pki, tsa_url=service.tsa_url, ltv=ltv)
        settings = settings_factory(records=records, web={"port": 0}, general={"language": lang})
        app = await app_factory(settings, clock=FakeClock(START), inline_analysis=True)
        kit = RecordsKit(app, service.pki, app.clock, small_roster(students=1))
        await kit.load()
        await kit.start()
        for code in ("GV01", "GV02", "GV03"):
            await kit.sign(code, Stage.SUBJECT)
        if issue:
            await kit.sign("GV02", Stage.HOMEROOM)
            await kit.sign("BGH01", Stage.LEADERSHIP)
            await kit.settle()  # the issuing signature and the document timestamp, by the server
        [record] = await kit.records()
        await app.web.start()
        url = str(app.web.base_url)
        teacher = await Teacher.get(code="GV01")
        assert teacher.staff_id is not None
        link = await issue_login_link(teacher.staff_id, app.settings, app.clock, base_url=url)
        page = await (await browser.new_context()).new_page()
        await page.goto(link)
        await page.get_by_role("button", name=words(lang)("web.login")).click()
        await page.wait_for_url(lambda u: u.startswith(url) and "/login" not in u)
        await page.goto(f"{url}/records/verify")
        return page, bytes(record.pdf), record.state

    try:
        yield make
    finally:
        await browser.close()
        await pw.stop()


async def _verify(page: Page, data: bytes, at: str = "") -> None:
    await page.locator('input[name="pdf"]').set_input_files(
        files=[{"name": "HS001.pdf", "mimeType": "application/pdf", "buffer": data}])
    await page.locator('input[name="at"]').fill(at)
    await page.locator('#verify button[type="submit"]').click()
    await page.locator("#report").wait_for()


async def _levels(page: Page) -> list[str]:
    return list(await page.locator("#signatures tr[data-field]").evaluate_all("rows => rows.map(r => r.dataset.level)"))


async def test_verify_page_shows_b_lta_levels_timestamps_renewal_and_validity_ten_years_ahead(school: Open) -> None:
    page, pdf, state = await school("vi")
    assert state == "signed"
    assert await page.locator('input[name="at"]').get_attribute("placeholder") == "dd/mm/yyyy"
    await _verify(page, pdf, TEN_YEARS)
    assert await page.locator("#report").get_attribute("data-ok") == "1"
    assert await _levels(page) == ["B-LTA"] * 6  # three subject teachers, homeroom, principal, issuing
    assert await page.locator(".level.b-lta").count() == 6
    head = await page.locator("#signatures thead").inner_text()
    for said in ("Mức PAdES", "Dấu thời gian", "Đã kiểm tra thu hồi", f"Ngày {TEN_YEARS}"):
        assert said in head, said
    first = page.locator('#signatures tr[data-field="gvbm_gv01"]')
    stamp = await first.locator("td.timestamp").inner_text()
    assert "edudesk — dịch vụ dấu thời" in stamp  # the TSA's name
    assert stamp.split("\n")[0].count("/") == 2 and ":" in stamp.split("\n")[0]  # dd/mm/yyyy HH:MM, local
    assert (await first.locator("td.revocation").inner_text()).strip() == "✓"
    assert await page.locator('#signatures tr[data-valid-at="1"]').count() == 6
    assert f"Ngày {TEN_YEARS}: mọi chữ ký vẫn kiểm chứng được" in await page.locator("#at-verdict").inner_text()
    archive = page.locator("#archive")
    assert await archive.get_attribute("data-count") == "1"
    renew = await page.locator("#renew").inner_text()
    assert renew.startswith("Cần gia hạn trước ngày ") and "refresh-ltv" in renew
    text = await page.locator("details pre").text_content() or ""
    assert "PAdES B-LTA" in text and f"vẫn kiểm chứng được vào ngày {TEN_YEARS}: có" in text
    styles = await page.evaluate("Array.from(document.querySelectorAll('[style]')).length")
    assert styles == 0, "no inline style attributes (the CSP allows the nonce'd <style> only)"

    await page.locator('input[name="pdf"]').set_input_files(
        files=[{"name": "HS001.pdf", "mimeType": "application/pdf", "buffer": pdf}])
    await page.locator('input[name="at"]').fill("31/02/2036")  # no such day: said, nothing checked
    await page.locator('#verify button[type="submit"]').click()
    error = await page.locator(".flash.error").inner_text()
    assert await page.locator("#report").count() == 0
    assert "31/02/2036" in error and "dd/mm/yyyy" in error


async def test_english_console_says_b_b_signatures_do_not_outlive_their_certificates(school: Open) -> None:
    page, pdf, state = await school("en", ltv="B-B", issue=False)  # the teachers' signatures only, no timestamps
    assert state == "signing"
    await _verify(page, pdf, TEN_YEARS)
    assert await _levels(page) == ["B-B"] * 3
    head = await page.locator("#signatures thead").inner_text()
    for said in ("PAdES level", "Timestamp", "Revocation checked", f"On {TEN_YEARS}"):
        assert said in head, said
    assert [t.strip() for t in await page.locator("#signatures td.timestamp").all_inner_texts()] == ["none"] * 3
    assert await page.locator('#signatures td.revocation:has-text("✗")').count() == 3
    assert "no archival timestamp" in await page.locator("#renew").inner_text()
    assert await page.locator('#signatures tr[data-valid-at="0"]').count() == 3
    assert f"On {TEN_YEARS}: 3 signature(s) no longer validate" in await page.locator("#at-verdict").inner_text()
    assert await page.locator("#report").get_attribute("data-today") == "1"  # valid today, not in ten years
    assert await page.locator("#report").get_attribute("data-ok") == "0"
    assert "FAILED" in await page.locator("#verdict").inner_text()
