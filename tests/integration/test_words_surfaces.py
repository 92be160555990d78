"""No English key reaches a Vietnamese screen: the card, the console's request page and /danhsach, rendered
from a real database after the real deadline watcher and a real password link wrote their audit events."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
from tortoise.transactions import in_transaction

from edudesk.app import App
from edudesk.bot.cards import build_card, load_view
from edudesk.bot.textcommands import TextContext, handle
from edudesk.core.accounts.models import PendingSecret
from edudesk.core.accounts.passwordlinks import OpenedLink, issue_password_link, open_password_link
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import actor_for_staff
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.overdue import send_reminders
from edudesk.core.requests.workflow import State, deadline_for
from edudesk.core.words import CATALOGUES

pytestmark = pytest.mark.db

# What must never be read on a Vietnamese screen: audit event names, detail keys, state/kind values and the
# catalogue's own keys.
EVENT_NAMES = {k.removeprefix("event.") for k in CATALOGUES["vi"] if k.startswith("event.")}
PREFIXES = sorted({k.split(".", 1)[0] for k in CATALOGUES["vi"]})
RAW = re.compile(r"\b(?:" + "|".join(sorted(EVENT_NAMES)) + r")\b"
                 r"|\b(?:late_hours|staff_id|need_info|new_account|received|approved)\b"
                 r"|\b(?:" + "|".join(PREFIXES) + r")\.[a-z_]+")


class _Visible(HTMLParser):
    """The text a person sees: tag contents without attributes, scripts or styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def assert_no_raw_words(text: str) -> None:
    found = sorted(set(RAW.findall(text)))
    assert not found, f"raw keys on a Vietnamese screen: {found}\n{text}"


@pytest.fixture
async def app(app_factory: Any, settings_factory: Any) -> AsyncIterator[App]:
    clock = FakeClock()
    app = await app_factory(settings_factory(web={"port": 0}), clock=clock, inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    yield app
    await app.web.stop()


async def _overdue_request_with_an_opened_password_link(app: App, clock: FakeClock) -> Request:
    now = clock.now()
    request = await Request.create(kind="new_account", population="student", state=State.RECEIVED.value,
                                   sender="an.nv2003@gmail.com", sender_name="Nguyễn Văn An", received_at=now,
                                   updated_at=now, deadline=deadline_for(State.RECEIVED, now, app.settings.sla),
                                   lang="vi")
    await RequestPerson.create(request_id=request.id, row=0, full_name="Nguyễn Văn An", person_id="20201234",
                               proposed_address="an.nguyenvan@sis.hust.edu.vn",
                               data={"full_name": "Nguyễn Văn An", "student_id": "20201234"}, problems=[])
    # The real watcher: past the deadline and past [chat].escalate_after_hours -> overdue and escalated.
    clock.advance(timedelta(hours=app.settings.sla.check_hours + app.settings.chat.escalate_after_hours + 1))
    assert await send_reminders(app.settings, clock, app.queue) == (1, 1)
    # A real one-time password link, opened once.
    key = f"pw:{request.id}:0"
    await PendingSecret.create(key=key, request_id=request.id, sealed=app.box.seal("Hx7-pq2m-Lzw"), created_at=now)
    async with in_transaction() as conn:
        url_key = await issue_password_link(conn, app.settings, clock, app.box, request_id=request.id,
                                            recipient=request.sender, accounts=[{
                                                "full_name": "Nguyễn Văn An", "address": "an.nguyenvan@sis.hust.edu.vn",
                                                "password_secret": key}])
    url = app.box.open((await PendingSecret.get(key=url_key)).sealed)
    assert isinstance(await open_password_link(url.rsplit("/", 1)[1], clock, app.box), OpenedLink)
    actions = set(await AuditEvent.filter(request_id=request.id).values_list("action", flat=True))
    assert {"request_overdue", "request_escalated", "password_link_opened"} <= actions
    return request


async def test_card_history_names_overdue_and_escalation_in_vietnamese(app: App) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    request = await _overdue_request_with_an_opened_password_link(app, clock)
    card = build_card(await load_view(request.id), "office", app.settings, clock.now())
    text = visible(card.text)
    assert "Quá hạn xử lý" in text and "Báo trưởng bộ phận: quá hạn" in text
    assert "quá hạn" in text and "⏰" not in text
    assert_no_raw_words(text)
    assert_no_raw_words(" ".join(b.label for row in card.buttons for b in row))


async def test_console_request_page_shows_events_and_details_in_words(app: App) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock) and app.web is not None
    request = await _overdue_request_with_an_opened_password_link(app, clock)
    staff = await Staff.create(name="Lê Văn Trưởng", roles=["head"], created_at=clock.now())
    token = (await issue_login_link(staff.id, app.settings, clock, base_url=app.web.base_url)).rsplit("/", 1)[1]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.post(f"{app.web.base_url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303
        async with client.get(f"{app.web.base_url}/requests/{request.id}") as r:
            assert r.status == 200
            page = await r.text()
    text = visible(page)
    assert "Người nhận đã mở liên kết mật khẩu" in text and "Quá hạn xử lý" in text
    assert "Bộ phận: Văn phòng" in text and "Số giờ trễ:" in text
    assert re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d", text)  # local dd/mm/yyyy HH:MM
    assert_no_raw_words(text)


async def test_danhsach_answers_with_state_labels_and_no_emoji(app: App) -> None:
    clock = app.clock
    assert isinstance(clock, FakeClock)
    request = await _overdue_request_with_an_opened_password_link(app, clock)
    staff = await Staff.create(name="Phạm Thị Lan", roles=["office"], created_at=clock.now())
    actor = await actor_for_staff(staff.id, app.settings)
    assert actor is not None
    context = TextContext(app.settings, clock, app.queue, app.services, None, surface="zalo")
    answer = await handle(context, actor, "zalo-user-1", "/danhsach")
    assert f"YC-{request.id}" in answer and "Chờ kiểm tra" in answer and "[quá hạn]" in answer
    assert not re.search("[\U00010000-\U0010FFFF\u23F0]", answer)
    assert_no_raw_words(answer)
