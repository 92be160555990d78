"""Signing in to the web console in the Chromium tests: Debian's Chromium, and a staff member signed in through
a one-time login link in a browser context of their own, the way a person does it (open the link, press the
sign-in button named in the console's language, land on their home page). The records web tests share these
instead of each keeping its own copy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from edudesk.app import App
from edudesk.core.people.models import Staff
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.signing.models import Teacher
from edudesk.core.words import t

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
NEEDS_CHROMIUM = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, closed (with its Playwright driver) on leaving."""
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    try:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        await pw.stop()


async def sign_in(browser: Browser, app: App, staff_id: int, *,
                  on_response: Callable[[Any], Awaitable[None]] | None = None, **context: Any) -> Page:
    """The staff member signed in through a one-time link in a new browser context (`context` are its options,
    `on_response` sees every response it gets); returns the page at their home."""
    assert app.web is not None
    base = str(app.web.base_url)
    link = await issue_login_link(staff_id, app.settings, app.clock, base_url=base)
    browser_context = await browser.new_context(**context)
    if on_response is not None:
        browser_context.on("response", on_response)
    page = await browser_context.new_page()
    await page.goto(link)
    await page.get_by_role("button", name=t("web.login", app.settings.general.language)).click()
    await page.wait_for_url(lambda url: url.startswith(base) and "/login" not in url)  # the person's home
    return page


async def sign_in_admin(browser: Browser, app: App, name: str = "Quản Trị Viên", **options: Any) -> Page:
    """A new administrator, signed in."""
    staff = await Staff.create(name=name, roles=["admin"], created_at=app.clock.now())
    return await sign_in(browser, app, staff.id, **options)


async def sign_in_teacher(browser: Browser, app: App, code: str, **options: Any) -> Page:
    """The roster's teacher `code` signed in (the importer gave them a staff identity with the signing roles)."""
    teacher = await Teacher.get(code=code)
    assert teacher.staff_id is not None, f"{code} has no staff identity"
    return await sign_in(browser, app, teacher.staff_id, **options)


# The console's live view (live.js) holds its reload while a <details> is open, as it does for a person typing.
_HOLD_LIVE_RELOAD = "() => { if (document.body) { const d = document.createElement('details'); d.open = true; " \
                    "d.hidden = true; document.body.appendChild(d); } }"


async def open_page(page: Page, url: str) -> None:
    """Go to `url`. The live view of the page being left would reload it when its stamp moves, and a reload at
    that moment aborts this navigation ("interrupted by another navigation"): the page being left is told to
    hold its reload first, as when someone is typing on it, and a navigation aborted anyway goes again, as a
    person would."""
    from playwright.async_api import Error as PlaywrightError

    for attempt in range(3):
        try:
            await page.evaluate(_HOLD_LIVE_RELOAD)
        except PlaywrightError:
            pass  # the page is between documents (a reload under way): the retry below covers it
        try:
            await page.goto(url)
            return
        except PlaywrightError as exc:
            if not any(s in str(exc) for s in ("ERR_ABORTED", "interrupted by another navigation")) or attempt == 2:
                raise
            await page.wait_for_load_state()

