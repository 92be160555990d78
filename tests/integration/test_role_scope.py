"""Who may see what in the web console, walked over every role and every page against a real started console
and database: a refusal is a 403 that shows no personal data, with an `access_denied` audit entry. Also:
one-time action links are refused to a browser signed in as someone else; the queue pages instead of hiding
requests, overdue and oldest first, and a number typed in the search box finds its request in any state."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from edudesk.bot.web.console import WebConsole
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent
from edudesk.core.people.chatlinks import issue_action
from edudesk.core.people.models import Staff
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import Request, RequestPerson

pytestmark = pytest.mark.db

NAME, SID = "Nguyễn Văn An", "20201234"
ROLES = ("office", "technical", "head", "admin", "teacher", "leader", "")  # "": signed in, no role at all
DESK = {"office", "technical", "head", "admin"}
# The expected table, written out here (not read from core/people/access.py): page -> the roles that may open it.
PAGES: dict[str, set[str]] = {
    "/": DESK,
    "/requests/{id}": DESK,
    "/requests/{id}/rows.csv": DESK,
    "/requests/{id}/mail/{mail}.eml": DESK,
    "/api/version?scope=queue": DESK,
    "/api/version?scope=request:{id}": DESK,
    "/registry": {"admin"},
    "/accounts/log": {"technical", "head", "admin"},
    "/accounts/log.csv": {"technical", "head", "admin"},
    "/accounts/log.xlsx": {"technical", "head", "admin"},
    "/reports": {"head", "admin"},
    "/whoami": {*ROLES},
}
POSTS: dict[str, set[str]] = {"/requests/{id}/act": DESK, "/requests/{id}/assign": DESK}


@dataclass
class Console:
    """A started console on a free port with a test clock."""

    web: WebConsole
    clock: FakeClock

    @property
    def url(self) -> str:
        return self.web.base_url

    async def signed_in(self, role: str, name: str = "", *,
                        lands: str = "") -> tuple[aiohttp.ClientSession, str, Staff]:
        """A client signed in through a one-time link as a new staff member with `role`; its CSRF token.
        `lands`: the page the sign-in must lead to."""
        staff = await Staff.create(name=name or f"Cán bộ {role or 'mới'}", roles=[role] if role else [],
                                   created_at=self.clock.now())
        token = (await issue_login_link(staff.id, self.web.settings, self.clock, base_url=self.url)).rsplit("/", 1)[1]
        client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with client.post(f"{self.url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303
            assert not lands or r.headers["Location"] == lands, (role, r.headers["Location"])
        async with client.get(f"{self.url}/whoami") as r:
            html = await r.text()
        return client, html.split('name="csrf" value="', 1)[1].split('"', 1)[0], staff


@pytest.fixture
async def console(app_factory: Any, settings_factory: Any) -> AsyncIterator[Console]:
    clock = FakeClock()
    app = await app_factory(settings_factory(web={"port": 0}), clock=clock, inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    yield Console(app.web, clock)
    await app.web.stop()


async def _request(clock: FakeClock, name: str = NAME, sid: str = SID, *, state: str = "received",
                   deadline_hours: float | None = 24, received_hours_ago: float = 0) -> Request:
    now = clock.now()
    received = now - timedelta(hours=received_hours_ago)
    request = await Request.create(kind="new_account", population="student", state=state, sender=f"{sid}@gmail.com",
                                   sender_name=name, received_at=received, updated_at=now,
                                   deadline=now + timedelta(hours=deadline_hours) if deadline_hours is not None
                                   else None)
    await RequestPerson.create(request=request, row=0, person_id=sid, full_name=name,
                               data={"full_name": name, "student_id": sid, "mobile": "+84912345678"})
    return request


async def _denials(staff: Staff) -> list[str]:
    """What the staff member was refused, from the audit trail."""
    events = await AuditEvent.filter(action="access_denied", actor__endswith=f"(web:{staff.id})")
    return [e.detail["what"] for e in events if e.detail.get("surface") == "web"]


async def test_every_role_sees_only_its_pages_and_each_refusal_is_audited(console: Console) -> None:
    request = await _request(console.clock)
    mail = await InboundMail.create(dedupe_key="mid:<a@x>", content_hash="0" * 64, source="smtp",
                                    content=f"From: {SID}@gmail.com\r\n\r\nHọ và tên: {NAME}\r\n".encode(),
                                    received_at=console.clock.now(), state="done", request=request)
    table: list[tuple[str, str, int]] = []
    for role in ROLES:
        client, csrf, staff = await console.signed_in(role)
        async with client:
            for page, allowed in PAGES.items():
                path = page.format(id=request.id, mail=mail.id)
                async with client.get(f"{console.url}{path}", allow_redirects=False) as r:
                    body = await r.read()
                    status = r.status
                table.append((role, page, status))
                if role in allowed:
                    assert status == 200, (role, path, status)
                    continue
                assert status == 403, (role, path, status)
                assert NAME.encode() not in body and SID.encode() not in body, (role, path)
                what = f"GET {path.split('?')[0]}"
                assert what in await _denials(staff), (role, what)
            for page, allowed in POSTS.items():
                path = page.format(id=request.id)
                data = {"csrf": csrf, "action": "approve", "version": "0", "staff_id": str(staff.id)}
                async with client.post(f"{console.url}{path}", data=data, allow_redirects=False) as r:
                    body = await r.read()
                    status = r.status
                table.append((role, f"POST {page}", status))
                if role not in allowed:
                    assert status == 403 and NAME.encode() not in body, (role, path, status)
                    assert f"POST {path}" in await _denials(staff), (role, path)
                else:
                    assert status in (200, 303, 409), (role, path, status)  # past the guard: the service decides
    # Each sign-in lands on a page the person may open: never on a refusal.
    for role, home in (("office", "/"), ("admin", "/"), ("teacher", "/records"), ("leader", "/records"),
                       ("", "/whoami")):
        client, _csrf, staff = await console.signed_in(role, lands=home)
        await client.close()
        assert not await _denials(staff), role
    # A person with a role only sees the navigation links of the pages they may open.
    client, _csrf, _staff = await console.signed_in("teacher")
    async with client:
        async with client.get(f"{console.url}/whoami") as r:
            html = await r.text()
        assert 'href="/registry"' not in html and 'href="/accounts/log"' not in html and '>Hàng đợi<' not in html
    print("\n" + "\n".join(f"{role or '(none)':10} {page:35} {status}" for role, page, status in table))


async def test_an_action_link_is_refused_in_a_browser_signed_in_as_someone_else(console: Console) -> None:
    request = await _request(console.clock)
    owner = await Staff.create(name="Lê Văn Phòng", roles=["office"], created_at=console.clock.now())
    settings = console.web.settings
    token = await issue_action(owner.id, "approve", request.id, settings, console.clock, surface="zalo",
                               version=request.version)
    colleague, _csrf, other = await console.signed_in("office", "Trần Thị Khác")
    async with colleague:
        async with colleague.get(f"{console.url}/a/{token}") as r:
            assert r.status == 403 and "của người khác" in await r.text()
        async with colleague.post(f"{console.url}/a/", data={"token": token}) as r:
            assert r.status == 403 and "của người khác" in await r.text()
    assert (await Request.get(id=request.id)).state == "received"
    refused = await AuditEvent.filter(action="action_token_refused").order_by("id")
    assert [e.detail["reason"] for e in refused] == ["not_yours", "not_yours"]
    assert all(e.actor.endswith(f"(web:{other.id})") for e in refused)
    # The owner, signed in, uses it; and a browser not signed in still may (the token is the proof).
    link = await issue_login_link(owner.id, settings, console.clock, base_url=console.url)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as owner_client:
        async with owner_client.post(f"{console.url}/login", data={"token": link.rsplit("/", 1)[1]},
                                     allow_redirects=False) as r:
            assert r.status == 303
        async with owner_client.post(f"{console.url}/a/", data={"token": token}) as r:
            assert r.status == 200 and "của người khác" not in await r.text()
    assert (await Request.get(id=request.id)).state == "approved"
    second = await _request(console.clock, "Trần Thị Bình", "20205678")
    anonymous_token = await issue_action(owner.id, "approve", second.id, settings, console.clock, surface="zalo",
                                         version=second.version)
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.post(f"{console.url}/a/", data={"token": anonymous_token}) as r:
            assert r.status == 200
    assert (await Request.get(id=second.id)).state == "approved"


def _shown(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-request="(\d+)"', html)]


async def test_the_queue_pages_overdue_and_oldest_first_and_hides_none(console: Console) -> None:
    clock = console.clock
    # 520 open requests (more than the old hard limit of 500, over 11 pages), made oldest first so the
    # newest ids are the least urgent; two overdue ones made last, and one old request already done.
    old_done = await _request(clock, "Lê Minh Châu", "20190001", state="done", received_hours_ago=24 * 400)
    waiting = await _request(clock, "Đỗ Thị Chờ", "20190002", state="need_info", deadline_hours=None,
                             received_hours_ago=24 * 30)
    rows = [Request(kind="new_account", population="student", state="received", sender=f"s{i}@gmail.com",
                    received_at=clock.now() - timedelta(minutes=600 - i), updated_at=clock.now(),
                    deadline=clock.now() + timedelta(hours=24, minutes=i)) for i in range(518)]
    await Request.bulk_create(rows)
    late = await _request(clock, "Phạm Văn Trễ", "20209998", deadline_hours=-5)
    later = await _request(clock, "Hoàng Thị Muộn", "20209999", deadline_hours=-1)
    client, _csrf, _staff = await console.signed_in("office")
    seen: list[int] = []
    async with client:
        async with client.get(f"{console.url}/") as r:
            html = await r.text()
        assert "521 yêu cầu" in html and "Trang 1/11" in html
        first = _shown(html)
        assert first[:2] == [late.id, later.id]  # overdue first, the most overdue at the top
        assert 'class="overdue"' in html.split(f'data-request="{later.id}"')[0].rsplit("<tr", 1)[1]
        page = 1
        while True:
            async with client.get(f"{console.url}/", params={"page": str(page)}) as r:
                html = await r.text()
            seen += _shown(html)
            if 'rel="next"' not in html:
                break
            page += 1
        assert page == 11
        assert seen[-1] == waiting.id  # no deadline (waiting for the requester): last
        assert len(seen) == len(set(seen)) == 521  # every open request on exactly one page
        open_ids = set(await Request.filter(state__in=["received", "need_info"]).values_list("id", flat=True))
        assert set(seen) == open_ids
        # A number in the search box finds its request whatever its state and age, alone or with YC-.
        for typed in (str(old_done.id), f"YC-{old_done.id}", f"yc {old_done.id}"):
            async with client.get(f"{console.url}/", params={"q": typed}) as r:
                assert _shown(await r.text())[:1] == [old_done.id], typed
        oldest_open = min(seen[2:-1])
        async with client.get(f"{console.url}/", params={"q": f"YC-{oldest_open}"}) as r:
            assert _shown(await r.text())[:1] == [oldest_open]
        async with client.get(f"{console.url}/", params={"q": "tran thi khong co"}) as r:
            assert _shown(await r.text()) == []


async def test_every_console_route_says_what_it_shows(console: Console) -> None:
    """A page added without an access mark would be refused to everyone; none of today's is left unmarked."""
    from edudesk.bot.web.render import PERMISSION_ATTR
    from edudesk.bot.web.session import PUBLIC_PREFIXES

    unmarked = []
    for route in console.web.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = str(info.get("path") or info.get("formatter") or info.get("prefix") or "")
        if path == "/login" or path.startswith((*PUBLIC_PREFIXES, "/static")):
            continue  # reachable signed out: the token in the path is the proof
        if not hasattr(route.handler, PERMISSION_ATTR):
            unmarked.append(f"{route.method} {path}")
    assert not unmarked, unmarked


async def test_a_refusal_repeated_writes_one_audit_row(console: Console) -> None:
    """A stranger hammering a page is recorded once per window, with a count, not once per try."""
    from edudesk.core.people.access import Permission, audit_denial
    from edudesk.core.people.staff import Actor

    stranger = Actor("zalo:999", "Người lạ", frozenset())
    for _ in range(50):
        await audit_denial(stranger, Permission.REQUESTS, "/queue", surface="zalo", clock=console.clock)
    await audit_denial(stranger, Permission.REQUESTS, "/find", surface="zalo", clock=console.clock)
    rows = await AuditEvent.filter(action="access_denied", actor=stranger.label).order_by("id")
    assert [(r.detail["what"], r.detail.get("repeats", 0)) for r in rows] == [("/queue", 49), ("/find", 0)]
    console.clock.advance(timedelta(minutes=11))
    await audit_denial(stranger, Permission.REQUESTS, "/queue", surface="zalo", clock=console.clock)
    assert await AuditEvent.filter(action="access_denied", actor=stranger.label).count() == 3
