"""The password link in headless Chromium, from a provisioned request's result mail to a password that signs in.

Real job worker, database, local directory and console; the result mail comes from the maildir outbox; the
browser is Debian's Chromium driven by Playwright with a phone-sized viewport.
"""

from __future__ import annotations

import email
import email.policy
import io
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from edudesk.app import App
from edudesk.core.accounts.models import Account, PasswordLink, PendingSecret
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Actor, Role
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.directories.local import verify_password

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.db, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]

if CHROMIUM.exists():
    from playwright.async_api import Browser, Page, async_playwright

OFFICE = Actor("tg:1", "Lê Văn Phòng", frozenset({Role.OFFICE}))
TECH = Actor("tg:2", "Trần Kỹ Thuật", frozenset({Role.TECHNICAL}))


def _free_port() -> int:
    # The link in the mail is built from [web].port, so the console needs a real port before it starts.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Desk:
    """The running service and a browser."""

    app: App
    browser: Browser

    @property
    def url(self) -> str:
        assert self.app.web is not None
        return self.app.web.base_url

    async def provisioned(self, people: int) -> tuple[Request, str]:
        """A request approved and provisioned through the service; returns it and the link in its result mail."""
        now = self.app.clock.now()
        request = await Request.create(kind="new_account" if people == 1 else "bulk_new_accounts",
                                       population="student", state="received", sender="k62@hust.edu.vn",
                                       sender_name="Văn phòng Khoa CNTT", subject="Cấp tài khoản", received_at=now,
                                       deadline=now + timedelta(hours=24), updated_at=now)
        await RequestPerson.bulk_create([
            RequestPerson(request=request, row=i, person_id=f"2025{i:04d}", full_name=f"Phạm Thị Hương {i}",
                          proposed_address=f"huong.pt{i:04d}@sis.hust.edu.vn",
                          data={"student_id": f"2025{i:04d}", "full_name": f"Phạm Thị Hương {i}"})
            for i in range(people)])
        await self.app.services.act(request.id, "approve", OFFICE)
        await self.app.services.act(request.id, "provision", TECH)
        await self.app.worker.drain()
        outbox = Path(self.app.settings.outgoing.maildir.format(data_dir=self.app.settings.data_dir))
        for path in sorted(p for p in outbox.rglob("*") if p.is_file()):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            body = message.get_body(("plain",))
            text = body.get_content() if body is not None else ""  # type: ignore[union-attr]
            found = re.search(r"(http://\S+/p/[A-Za-z0-9_\-]+)", text)
            if found and f"YC-{request.id}" in str(message["Subject"]) + text:
                return request, found.group(1)
        raise AssertionError(f"no result mail with a password link for YC-{request.id}")

    async def phone(self) -> Page:
        """A fresh phone-sized browser page (the requester's phone, no console session)."""
        context = await self.browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                 has_touch=True, locale="vi-VN", accept_downloads=True)
        return await context.new_page()


@pytest.fixture
async def desk(app_factory: Any, settings_factory: Any) -> AsyncIterator[Desk]:
    settings = settings_factory(web={"port": _free_port()})
    app = await app_factory(settings, inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
    try:
        yield Desk(app, browser)
    finally:
        await browser.close()
        await pw.stop()
        await app.web.stop()


async def test_the_requester_opens_the_link_presses_the_button_and_the_password_signs_in(desk: Desk) -> None:
    request, link = await desk.provisioned(1)
    assert link.startswith(f"{desk.url}/p/")
    page = await desk.phone()
    response = await page.goto(link)
    assert response is not None and response.status == 200
    assert response.headers["cache-control"] == "no-store" and "noindex" in response.headers["x-robots-tag"]
    assert "chỉ mở được một lần" in await page.content() and "hết hạn lúc" in await page.content()
    await page.reload()  # a second look (or a mail scanner before it) spends nothing
    assert (await PasswordLink.get(request_id=request.id)).opened_at is None

    await page.get_by_role("button", name="Xem mật khẩu").click()
    await page.locator("code.pw").wait_for()
    assert page.url == f"{desk.url}/p/"  # the token travelled in the form body, not in the address
    password = (await page.locator("code.pw").inner_text()).strip()
    assert "huong.pt0000@sis.hust.edu.vn" in await page.locator("#accounts").inner_text()
    account = await Account.get(address="huong.pt0000@sis.hust.edu.vn")
    assert verify_password(password, account.password_hash)
    assert await PendingSecret.filter(request_id=request.id).count() == 0
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # fits the phone: no sideways scrolling

    again = await desk.phone()
    refused = await again.goto(link)
    assert refused is not None and refused.status == 410
    assert "đã được mở" in await again.content() and "trả lời thư" in await again.content()
    assert password not in await again.content()


async def test_a_units_list_shows_a_table_and_downloads_as_xlsx(desk: Desk) -> None:
    request, link = await desk.provisioned(3)
    page = await desk.phone()
    await page.goto(link)
    assert "Số tài khoản: 3" in await page.content()
    await page.get_by_role("button", name="Xem mật khẩu").click()
    await page.locator("#accounts tbody tr").nth(2).wait_for()
    shown = [(await c.inner_text()).strip() for c in await page.locator("#accounts code.pw").all()]
    assert len(shown) == 3
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Tải danh sách (.xlsx)").click()
    download = await info.value
    assert download.suggested_filename.startswith(f"YC-{request.id}-")
    book = openpyxl.load_workbook(io.BytesIO(Path(await download.path()).read_bytes()))
    cells = {str(c) for row in book.active.iter_rows(values_only=True) for c in row if c is not None}
    assert set(shown) <= cells and "huong.pt0002@sis.hust.edu.vn" in cells
    for i, password in enumerate(shown):
        account = await Account.get(address=f"huong.pt{i:04d}@sis.hust.edu.vn")
        assert verify_password(password, account.password_hash)


async def test_technical_staff_reach_the_account_log_from_the_navigation(desk: Desk) -> None:
    await desk.provisioned(2)
    staff = await Staff.create(name="Lê Văn Kỹ", roles=["technical"], created_at=desk.app.clock.now())
    context = await desk.browser.new_context(accept_downloads=True)
    page = await context.new_page()
    await page.goto(await issue_login_link(staff.id, desk.app.settings, desk.app.clock, base_url=desk.url))
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url(f"{desk.url}/")
    await page.get_by_role("link", name="Nhật ký tài khoản").click()
    await page.wait_for_url(f"{desk.url}/accounts/log")
    rows = page.locator("#account-log tbody tr")
    assert await rows.count() == 2
    text = await page.locator("#account-log").inner_text()
    assert "huong.pt0000@sis.hust.edu.vn" in text and "huong.pt0001@sis.hust.edu.vn" in text
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Tải CSV").click()
    data = Path(await (await info.value).path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and "Họ và tên" in data.decode("utf-8-sig")
