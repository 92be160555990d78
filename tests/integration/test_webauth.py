"""Web console sign-in against a real started console and database: one-time links, sessions, CSRF, Origin."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from edudesk.bot.web.console import WebConsole
from edudesk.bot.web.labels import EN, VI
from edudesk.core.config import Settings
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import LoginToken, RegistryEntry, Staff, WebSession
from edudesk.core.people.webauth import LoginRefused, consume_login, ensure_first_admin, issue_login_link, token_hash
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.text import fold

pytestmark = pytest.mark.db


@dataclass
class Console:
    """A started console on a free port with a test clock."""

    web: WebConsole
    settings: Settings
    clock: FakeClock

    @property
    def url(self) -> str:
        return self.web.base_url

    async def staff(self, name: str = "Phạm Thị Lan", roles: tuple[str, ...] = ("office",)) -> Staff:
        return await Staff.create(name=name, roles=list(roles), created_at=self.clock.now())

    async def link(self, staff: Staff) -> str:
        return await issue_login_link(staff.id, self.settings, self.clock, base_url=self.url)

    def client(self) -> aiohttp.ClientSession:
        # unsafe=True: the jar keeps cookies for an IP address host (127.0.0.1).
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def signed_in(self, roles: tuple[str, ...] = ("office",)) -> tuple[aiohttp.ClientSession, str]:
        """A client with a session; returns it and the page's CSRF token."""
        client = self.client()
        token = (await self.link(await self.staff(roles=roles))).rsplit("/", 1)[1]
        async with client.post(f"{self.url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303
        async with client.get(f"{self.url}/whoami") as r:
            html = await r.text()
        return client, html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


@pytest.fixture
async def console(app_factory: Any, settings_factory: Any) -> AsyncIterator[Console]:
    settings = settings_factory(web={"port": 0})
    clock = FakeClock()
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    yield Console(app.web, settings, clock)
    await app.web.stop()


async def _request(clock: FakeClock) -> Request:
    return await _person_request(clock, "Nguyễn Văn An", "20201234")


async def test_login_link_is_shown_on_get_consumed_by_the_post_and_only_once(console: Console) -> None:
    staff = await console.staff()
    link = await console.link(staff)
    token = link.rsplit("/", 1)[1]
    assert link.startswith(f"{console.url}/login/") and len(token) >= 43
    stored = await LoginToken.get(staff_id=staff.id)
    assert stored.token_hash == token_hash(token) != token
    async with console.client() as client:
        async with client.get(link, allow_redirects=False) as r:  # what a link scanner does
            assert r.status == 200
            assert 'action="/login"' in await r.text()
        assert (await LoginToken.get(staff_id=staff.id)).used_at is None
        async with client.post(f"{console.url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("edudesk_session=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # served over http here; https public_url turns it on
        async with client.get(f"{console.url}/", allow_redirects=False) as r:
            assert r.status == 200
            page = await r.text()
        assert "Hàng đợi" in page and "Phạm Thị Lan" in page
    async with console.client() as other:
        async with other.post(f"{console.url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 410
            assert "đã được dùng" in await r.text()
            assert "edudesk_session" not in r.headers.get("Set-Cookie", "")
        async with other.get(link, allow_redirects=False) as r:
            assert r.status == 410


async def test_login_link_expires_after_login_link_minutes(console: Console) -> None:
    link = await console.link(await console.staff())
    token = link.rsplit("/", 1)[1]
    console.clock.advance(timedelta(minutes=console.settings.web.login_link_minutes, seconds=1))
    async with console.client() as client:
        async with client.post(f"{console.url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 410
            assert "hết hạn" in await r.text()
    with pytest.raises(LoginRefused, match="hết hạn"):
        await consume_login(token, console.clock)
    with pytest.raises(LoginRefused, match="không hợp lệ"):
        await consume_login("not-a-token", console.clock)


async def test_session_expires_after_session_hours(console: Console) -> None:
    client, _csrf = await console.signed_in()
    async with client:
        async with client.get(f"{console.url}/whoami", allow_redirects=False) as r:
            assert r.status == 200
        console.clock.advance(timedelta(hours=console.settings.web.session_hours, minutes=1))
        async with client.get(f"{console.url}/whoami", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"].startswith("/login")


async def test_signed_out_pages_redirect_to_the_login_help(console: Console) -> None:
    request = await _request(console.clock)
    async with console.client() as client:
        for path in ("/", f"/requests/{request.id}", "/registry", "/whoami", f"/requests/{request.id}/rows.csv"):
            async with client.get(f"{console.url}{path}", allow_redirects=False) as r:
                assert r.status == 302, path
                assert r.headers["Location"].startswith("/login"), path
        async with client.post(f"{console.url}/requests/{request.id}/act", data={"action": "approve"},
                               allow_redirects=False) as r:
            assert r.status == 302
        async with client.get(f"{console.url}/api/version", allow_redirects=False) as r:
            assert r.status == 401
        async with client.get(f"{console.url}/login") as r:
            page = await r.text()
        assert "/login" in page and "liên kết đăng nhập" in page
    assert (await Request.get(id=request.id)).state == "received"


async def test_post_without_or_with_a_wrong_csrf_token_is_refused_and_audited(console: Console) -> None:
    request = await _request(console.clock)
    client, csrf = await console.signed_in()
    async with client:
        for data in ({"action": "approve", "version": "0"},
                     {"action": "approve", "version": "0", "csrf": csrf[:-2] + "xx"},
                     {"action": "approve", "version": "0", "csrf": "giả mạo"}):  # non-ASCII must not crash
            async with client.post(f"{console.url}/requests/{request.id}/act", data=data,
                                   allow_redirects=False) as r:
                assert r.status == 403
                assert "kiểm tra bảo mật" in await r.text()
    refused = await AuditEvent.filter(action="web_csrf_refused")
    assert len(refused) == 3 and {e.detail["reason"] for e in refused} == {"csrf"}
    assert refused[0].actor.startswith("Phạm Thị Lan (web:")
    assert (await Request.get(id=request.id)).state == "received"


async def test_post_from_another_origin_is_refused_even_with_the_right_token(console: Console) -> None:
    request = await _request(console.clock)
    client, csrf = await console.signed_in()
    data = {"action": "approve", "version": "0", "csrf": csrf}
    async with client:
        async with client.post(f"{console.url}/requests/{request.id}/act", data=data, allow_redirects=False,
                               headers={"Origin": "https://evil.example"}) as r:
            assert r.status == 403
        event = await AuditEvent.get(action="web_csrf_refused")
        assert event.detail["reason"] == "origin" and event.detail["origin"] == "https://evil.example"
        assert (await Request.get(id=request.id)).state == "received"
        async with client.post(f"{console.url}/requests/{request.id}/act", data=data, allow_redirects=False,
                               headers={"Origin": console.url}) as r:
            assert r.status == 303 and r.headers["Location"] == f"/requests/{request.id}"
    assert (await Request.get(id=request.id)).state == "approved"


async def test_logout_ends_the_session_and_needs_the_csrf_token(console: Console) -> None:
    client, csrf = await console.signed_in()
    async with client:
        async with client.post(f"{console.url}/logout", data={}, allow_redirects=False) as r:
            assert r.status == 403
        assert await WebSession.all().count() == 1
        async with client.post(f"{console.url}/logout", data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/login"
        assert await WebSession.all().count() == 0
        async with client.get(f"{console.url}/", allow_redirects=False) as r:
            assert r.status == 302


async def test_pages_carry_security_headers(console: Console) -> None:
    client, _csrf = await console.signed_in()
    async with client:
        for path in ("/", "/login", "/static/live.js", "/nowhere"):
            async with client.get(f"{console.url}{path}", allow_redirects=False) as r:
                csp = r.headers["Content-Security-Policy"]
                assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
                assert r.headers["X-Frame-Options"] == "DENY"
                assert r.headers["Referrer-Policy"] == "no-referrer"
                if path == "/nowhere":
                    assert r.status == 404 and "Không tìm thấy" in await r.text()


async def test_access_log_never_shows_a_login_token(console: Console, caplog: pytest.LogCaptureFixture) -> None:
    token = (await console.link(await console.staff())).rsplit("/", 1)[1]
    with caplog.at_level(logging.INFO):
        async with console.client() as client:
            async with client.get(f"{console.url}/login/{token}") as r:
                assert r.status == 200
            async with client.post(f"{console.url}/login", data={"token": token}) as r:
                assert r.status == 200
    assert "/login/…" in caplog.text
    assert token not in caplog.text


async def test_first_admin_is_created_and_gets_a_link_until_someone_signs_in(console: Console) -> None:
    first = await ensure_first_admin(console.settings, console.clock, base_url=console.url)
    assert first is not None and first.startswith(f"{console.url}/login/")
    admins = [s for s in await Staff.all() if "admin" in s.roles]
    assert [a.name for a in admins] == ["Quản trị viên"]
    again = await ensure_first_admin(console.settings, console.clock, base_url=console.url)
    assert again is not None and again != first  # a restart before anyone signed in prints a fresh one
    assert len([s for s in await Staff.all() if "admin" in s.roles]) == 1
    async with console.client() as client:
        async with client.post(f"{console.url}/login", data={"token": first.rsplit("/", 1)[1]},
                               allow_redirects=False) as r:
            assert r.status == 303
    assert await ensure_first_admin(console.settings, console.clock) is None
    await WebSession.all().delete()  # sessions are pruned; "someone signed in once" must survive that
    assert await ensure_first_admin(console.settings, console.clock) is None


async def test_english_labels_have_the_same_keys_as_vietnamese() -> None:
    assert set(EN) == set(VI)
    for key, value in VI.items():
        if isinstance(value, dict):
            assert set(value) == set(EN[key]), key


async def test_https_public_url_makes_the_cookie_secure_and_is_the_allowed_origin(
        console: Console, settings_factory: Any) -> None:
    settings = settings_factory(web={"port": 0, "public_url": "https://desk.example"})
    web = WebConsole(settings, console.clock, console.web.services)
    await web.start()
    try:
        request = await _request(console.clock)
        token = (await console.link(await console.staff())).rsplit("/", 1)[1]
        url = f"http://127.0.0.1:{web.port}"
        async with aiohttp.ClientSession() as client:
            async with client.post(f"{url}/login", data={"token": token}, allow_redirects=False) as r:
                assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]
                cookie = {"Cookie": f"edudesk_session={r.cookies['edudesk_session'].value}"}
            async with client.get(f"{url}/whoami", headers=cookie) as r:
                csrf = (await r.text()).split('name="csrf" value="', 1)[1].split('"', 1)[0]
            data = {"action": "approve", "version": "0", "csrf": csrf}
            async with client.post(f"{url}/requests/{request.id}/act", data=data, allow_redirects=False,
                                   headers={**cookie, "Origin": "https://desk.example"}) as r:
                assert r.status == 303
    finally:
        await web.stop()


async def _person_request(clock: FakeClock, name: str, sid: str, *, kind: str = "new_account",
                          state: str = "received", hours: float = 24) -> Request:
    now = clock.now()
    request = await Request.create(kind=kind, population="student", state=state, sender=f"{sid}@gmail.com",
                                   received_at=now, updated_at=now, deadline=now + timedelta(hours=hours))
    await RequestPerson.create(request=request, row=0, person_id=sid, full_name=name,
                               data={"full_name": name, "student_id": sid})
    return request


async def test_queue_filters_by_state_kind_overdue_and_folded_text(console: Console) -> None:
    an = await _person_request(console.clock, "Nguyễn Văn An", "20201234")
    binh = await _person_request(console.clock, "Trần Thị Bình", "20205678", kind="password_reset", hours=1)
    done = await _person_request(console.clock, "Lê Minh Châu", "20209999", state="done")
    console.clock.advance(timedelta(hours=2))
    client, _csrf = await console.signed_in()

    async def shown(query: str) -> set[int]:
        async with client.get(f"{console.url}/{query}") as r:
            html = await r.text()
        return {int(n) for n in re.findall(r'data-request="(\d+)"', html)}

    async with client:
        assert await shown("") == {an.id, binh.id}  # open ones only
        assert await shown("?state=done") == {done.id}
        assert await shown("?kind=password_reset") == {binh.id}
        assert await shown("?overdue=1") == {binh.id}
        assert await shown("?q=nguyen+van+an") == {an.id}  # no diacritics typed
        assert await shown("?q=Bình") == {binh.id}
        assert await shown(f"?q=YC-{an.id}") == {an.id}
        assert await shown("?q=20205678") == {binh.id}
        async with client.get(f"{console.url}/") as r:
            html = await r.text()
        overdue_row = html.split(f'data-request="{binh.id}"', 1)[0].rsplit("<tr", 1)[1]
        assert 'class="overdue"' in overdue_row
        assert "quá hạn 1 giờ 0 phút" in html and "còn 22 giờ 0 phút" in html
        # The urgent one first.
        assert html.index(f'data-request="{binh.id}"') < html.index(f'data-request="{an.id}"')


async def test_registry_search_ignores_diacritics_and_pages(console: Console) -> None:
    now = console.clock.now()
    for i in range(60):
        name = f"Trần Thị Bình {i:02d}"
        await RegistryEntry.create(population="student", person_id=f"2020{i:04d}", full_name=name,
                                   name_key=fold(name), imported_at=now)
    await RegistryEntry.create(population="staff", person_id="CB001", full_name="Đặng Văn Đức",
                               name_key=fold("Đặng Văn Đức"), imported_at=now)
    client, _csrf = await console.signed_in(("admin",))  # only administrators see the registry
    async with client:
        async with client.get(f"{console.url}/registry", params={"q": "tran thi binh"}) as r:
            html = await r.text()
        assert "60 kết quả" in html and "Trang 1/2" in html and html.count("<tr><td>") == 50
        async with client.get(f"{console.url}/registry", params={"q": "tran thi binh", "page": "2"}) as r:
            assert (await r.text()).count("<tr><td>") == 10
        async with client.get(f"{console.url}/registry", params={"q": "dang van duc"}) as r:
            assert "Đặng Văn Đức" in await r.text()
        async with client.get(f"{console.url}/registry", params={"q": "CB001", "population": "staff"}) as r:
            assert "1 kết quả" in await r.text()


async def test_version_endpoint_answers_as_soon_as_a_request_arrives(console: Console) -> None:
    client, _csrf = await console.signed_in()
    async with client:
        async with client.get(f"{console.url}/api/version", params={"scope": "queue"}) as r:
            stamp = (await r.json())["stamp"]
        async with client.get(f"{console.url}/api/version", params={"scope": "nope"}) as r:
            assert r.status == 400

        async def wait_for_change() -> tuple[str, float]:
            started = time.perf_counter()
            async with client.get(f"{console.url}/api/version",
                                  params={"scope": "queue", "since": stamp, "wait": "10"}) as r:
                return (await r.json())["stamp"], time.perf_counter() - started

        waiting = asyncio.ensure_future(wait_for_change())  # noqa: TID251 - one awaited request
        await asyncio.sleep(0.5)
        assert not waiting.done()  # a long poll: nothing changed yet
        created = time.perf_counter()
        await _request(console.clock)
        new, _took = await waiting
        answered = time.perf_counter() - created
        assert new != stamp and answered < 1.0
        print(f"\n/api/version answered {answered * 1000:.0f} ms after the new request was committed")


async def test_english_console(console: Console, settings_factory: Any) -> None:
    settings = settings_factory(web={"port": 0}, general={"language": "en"})
    web = WebConsole(settings, console.clock, console.web.services)
    await web.start()
    try:
        client, _ = await console.signed_in()
        async with client:
            async with client.get(f"http://127.0.0.1:{web.port}/") as r:
                html = await r.text()
        assert '<html lang="en">' in html and "Queue" in html and "No requests." in html
    finally:
        await web.stop()


async def test_a_head_assigns_a_request_and_others_cannot(console: Console) -> None:
    request = await _request(console.clock)
    colleague = await console.staff("Lê Văn Kỹ", ("technical",))
    office, office_csrf = await console.signed_in(("office",))
    head, head_csrf = await console.signed_in(("head",))
    url = f"{console.url}/requests/{request.id}"
    async with office, head:
        async with office.get(url) as r:
            assert f'action="/requests/{request.id}/assign"' not in await r.text()
        async with office.post(f"{url}/assign", data={"csrf": office_csrf, "staff_id": str(colleague.id)}) as r:
            assert r.status == 200 and "Chỉ trưởng bộ phận" in await r.text()
        async with head.post(f"{url}/assign", data={"csrf": head_csrf, "staff_id": str(colleague.id)},
                             allow_redirects=False) as r:
            assert r.status == 303
        async with head.get(url) as r:
            assert "Đã ghi nhận" in await r.text()
        async with head.get(f"{console.url}/requests/999999") as r:
            assert r.status == 404 and "Không có yêu cầu" in await r.text()
    assert (await Request.get(id=request.id)).assignee_id == colleague.id


async def test_a_signed_in_person_without_a_role_sees_no_requests(console: Console) -> None:
    request = await _request(console.clock)
    client, _csrf = await console.signed_in(roles=())
    async with client:
        for path in ("/", f"/requests/{request.id}", "/registry", f"/requests/{request.id}/rows.csv"):
            async with client.get(f"{console.url}{path}", allow_redirects=False) as r:
                assert r.status == 403, path
                assert "Nguyễn Văn An" not in await r.text()
        async with client.get(f"{console.url}/whoami", allow_redirects=False) as r:
            assert r.status == 200


def test_sign_in_only_returns_to_paths_of_the_console() -> None:
    from urllib.parse import quote

    from aiohttp.test_utils import make_mocked_request

    from edudesk.bot.web.session import _next

    for target, expected in (("/requests/5", "/requests/5"), ("//evil.example", ""), ("/\t/evil.example", ""),
                             ("/\\evil.example", ""), ("https://evil.example", ""), ("/\n/evil", "")):
        request = make_mocked_request("GET", f"/login?next={quote(target, safe='')}")
        assert _next(request) == expected, target
