"""Teachers reach their work alone, in headless Chromium: a teacher types her school address on the sign-in page,
the link arrives at a real aiosmtpd sink, opens her records page, and a record's PDF opens inline; a stranger's
address gets the same page and no mail; the fourth request in 15 minutes sends nothing; a sign-now mail's link
lands on the records page, and Ký ngay refuses records that changed since the page showed them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.ports import FakeClock
from edudesk.core.signing.models import SchoolRecord, SignSession, Teacher
from edudesk.core.signing.pki import DemoPki
from edudesk.core.signing.spec import Stage
from tests.records_kit import PIN, RecordsKit, records_settings, small_roster
from tests.servers.smtp_sink import ReceivedMail, SmtpSink, free_port

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.db, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page, async_playwright

START = datetime(2026, 5, 20, 1, 0, tzinfo=UTC)  # 08:00 in Hà Nội
LINK = re.compile(r"https?://[^\s\"<>]+/login/[A-Za-z0-9_-]{43}(?:\?next=[^\s\"<>]*)?")
LOGIN_SUBJECT = "Liên kết đăng nhập trang quản trị"


def text_of(mail: ReceivedMail) -> str:
    """The plain-text part of a mail."""
    part = mail.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


@dataclass
class School:
    """The records world, its console at a public address, the mail sink and a browser."""

    kit: RecordsKit
    sink: SmtpSink
    browser: Browser

    @property
    def url(self) -> str:
        assert self.kit.app.web is not None
        return str(self.kit.app.web.base_url)

    async def page(self) -> Page:
        """A fresh browser (its own cookies) on the sign-in page."""
        context = await self.browser.new_context()
        page = await context.new_page()
        await page.goto(f"{self.url}/login")
        return page

    async def ask(self, page: Page, address: str) -> str:
        """Type an address into the sign-in form and send it; the text of the page's main part."""
        await page.locator('#login-mail input[name="address"]').fill(address)
        await page.get_by_role("button", name="Gửi liên kết đăng nhập").click()
        await page.locator("#login-sent").wait_for()
        return await page.locator("main").inner_text()

    def mails(self, address: str, subject: str = "") -> list[ReceivedMail]:
        """What arrived for an address (with that subject, if given)."""
        return [m for m in self.sink.received() if address in m.rcpt_tos and subject in m.subject]

    async def follow(self, page: Page, mail: ReceivedMail) -> None:
        """Open the mail's sign-in link and press the button, as the teacher does."""
        [link] = set(LINK.findall(text_of(mail)))
        await page.goto(link)
        await page.get_by_role("button", name="Đăng nhập").click()
        await page.wait_for_url(lambda url: url.startswith(self.url) and "/login" not in url)


@pytest.fixture
async def school(app_factory: Any, settings_factory: Any, tmp_path: Path, smtp_sink: SmtpSink,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[School]:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    clock = FakeClock(START)
    port = free_port()
    settings = settings_factory(records=records_settings(tmp_path, pki),
                                web={"port": port, "public_url": f"http://127.0.0.1:{port}"},
                                institution={"domains": ["thpt.edu.vn"]},
                                outgoing={"transport": "smtp", "smtp_host": smtp_sink.host,
                                          "smtp_port": smtp_sink.port})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    kit = RecordsKit(app, pki, clock, small_roster())
    await kit.load()
    await kit.start()  # the first stage opens; each teacher's sign-now mail goes out
    assert app.web is not None
    await app.web.start()
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
    try:
        yield School(kit, smtp_sink, browser)
    finally:
        await browser.close()
        await pw.stop()
        await app.web.stop()


def turn_row(page: Page, kit: RecordsKit) -> Any:
    return page.locator(f'#turns tr[data-class="{kit.class_id}"][data-stage="{int(Stage.SUBJECT)}"]')


async def test_a_teacher_types_her_address_and_the_mailed_link_opens_her_records_and_a_pdf_inline(
        school: School) -> None:
    kit = school.kit
    page = await school.page()
    shown = await school.ask(page, " GV01@THPT.edu.vn")
    assert "Nếu địa chỉ gv01@thpt.edu.vn có trong hệ thống, một liên kết đăng nhập đã được gửi tới đó" in shown
    assert not school.mails("gv01@thpt.edu.vn", LOGIN_SUBJECT)  # queued, not sent while the page answered
    await kit.app.worker.drain()
    [mail] = school.mails("gv01@thpt.edu.vn", LOGIN_SUBJECT)
    assert text_of(mail).startswith("Kính gửi Thầy/Cô Nguyễn Thị Bích,")
    await school.follow(page, mail)
    assert page.url == f"{school.url}/records"
    row = turn_row(page, kit)
    records = await kit.records()
    assert "Ký 3 học bạ (bản hiện tại)" in await row.locator("form .covers").inner_text()
    named = await row.locator('form input[name="record"]').evaluate_all("inputs => inputs.map(i => i.value)")
    assert sorted(named) == sorted(f"{r.id}:{r.version}" for r in records)
    await row.locator("details.look summary").click()
    first = row.locator(f'details.look li[data-record="{records[0].id}"] a')
    assert "HS001 · Học Sinh Số 1" in await first.inner_text()
    href = await first.get_attribute("href")
    assert href == f"/records/{records[0].id}/pdf?v={records[0].version}"
    # The browser opens it in a tab of its own, inline: the same bytes as the stored record, nothing else.
    async with page.context.expect_page() as opened:
        await first.click()
    tab = await opened.value
    await tab.wait_for_load_state()
    assert tab.url == f"{school.url}{href}" and await tab.evaluate("document.contentType") == "application/pdf"
    response = await page.context.request.get(f"{school.url}{href}")
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'inline; filename="hoc-ba-HS001.pdf"'
    assert await response.body() == bytes(records[0].pdf)
    await tab.close()
    # Someone who signs nothing of that record may not open it.
    now = kit.clock.now()
    staff = await Staff.create(name="Đỗ Văn Khác", email="khac@thpt.edu.vn", roles=["teacher"], created_at=now)
    await Teacher.create(code="GV09", name="Đỗ Văn Khác", email="khac@thpt.edu.vn", staff_id=staff.id, created_at=now)
    other = await school.page()
    await other.goto(await issue_login_link(staff.id, kit.app.settings, kit.clock, base_url=school.url))
    await other.get_by_role("button", name="Đăng nhập").click()
    await other.wait_for_url(f"{school.url}/records")
    refused = await other.context.request.get(f"{school.url}{href}")
    assert refused.status == 403 and b"%PDF" not in await refused.body()
    assert await AuditEvent.filter(action="records_refused", actor=f"Đỗ Văn Khác (web:{staff.id})").exists()


async def test_an_unknown_address_sees_the_identical_page_and_no_mail_arrives(school: School) -> None:
    known, unknown = "gv02@thpt.edu.vn", "khong.co.ai@thpt.edu.vn"
    before = len(school.sink.received())
    answers = []
    for address in (known, unknown, "gv02@gmail.com"):
        page = await school.page()
        answers.append((await school.ask(page, address)).replace(address, "<address>"))
        await page.context.close()
    assert answers[0] == answers[1] == answers[2]
    await school.kit.app.worker.drain()
    assert len(school.mails(known, LOGIN_SUBJECT)) == 1
    assert len(school.sink.received()) == before + 1, "only the teacher's own address got a mail"


async def test_the_fourth_request_in_fifteen_minutes_sends_nothing(school: School) -> None:
    page = await school.page()
    answers = [(await school.ask(page, "gv03@thpt.edu.vn")) for _ in range(4)]
    assert len(set(answers)) == 1
    await school.kit.app.worker.drain()
    assert len(school.mails("gv03@thpt.edu.vn", LOGIN_SUBJECT)) == 3
    [limited] = await school.kit.audit("login_link_limited")
    assert limited.detail["limit"] == "address"


async def test_the_sign_now_mail_lands_on_the_records_page_and_ky_ngay_refuses_records_that_changed(
        school: School) -> None:
    kit = school.kit
    [notice] = school.mails("gv01@thpt.edu.vn", "Mời Thầy/Cô ký học bạ số")
    assert "?next=/records" in text_of(notice)
    page = await school.page()
    await school.follow(page, notice)
    assert page.url == f"{school.url}/records"
    row = turn_row(page, kit)
    old = {r.id: r.version for r in await kit.records()}
    stale_pdf = await row.locator("details.look li a").first.get_attribute("href")
    # Another teacher of the class signs the same records meanwhile: every version moves on.
    await kit.sign("GV02", Stage.SUBJECT)
    assert all(r.version > old[r.id] for r in await kit.records())
    await row.locator('input[name="pin"]').fill(PIN)
    await row.get_by_role("button", name="Ký ngay").click()
    refusal = await page.locator(".flash.error").inner_text()
    assert "học bạ đã thay đổi từ khi Thầy/Cô mở trang" in refusal and "HS001" in refusal
    assert not await SignSession.filter(teacher_id=(await Teacher.get(code="GV01")).id).exists()
    stale = await page.context.request.get(f"{school.url}{stale_pdf}")
    assert stale.status == 409 and "tải lại trang" in await stale.text()
    # Reloaded, the page shows the current versions, and Ký ngay signs exactly those.
    await page.goto(f"{school.url}/records")
    row = turn_row(page, kit)
    now = {r.id: r.version for r in await kit.records()}
    named = await row.locator('form input[name="record"]').evaluate_all("inputs => inputs.map(i => i.value)")
    assert sorted(named) == sorted(f"{i}:{v}" for i, v in now.items())
    await row.locator('input[name="pin"]').fill(PIN)
    await row.get_by_role("button", name="Ký ngay").click()
    await page.locator("#session").wait_for()
    await kit.settle()
    assert (await SignSession.get(teacher_id=(await Teacher.get(code="GV01")).id)).state == "done"
    assert all(r.signatures == 2 for r in await SchoolRecord.filter(klass_id=kit.class_id))
