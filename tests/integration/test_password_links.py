"""One-time password links and the account log pages, against a real started console and database."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import openpyxl
import pytest
from tortoise.transactions import in_transaction

from edudesk.app import App
from edudesk.bot.web.console import WebConsole
from edudesk.core.accounts.models import AccountLog, PasswordLink, PendingSecret
from edudesk.core.accounts.passwordlinks import (
    LinkRefused,
    OpenedLink,
    Refusal,
    issue_password_link,
    open_password_link,
    purge_expired,
)
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.webauth import issue_login_link, token_hash
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import Request
from edudesk.core.secrets import SecretBox

pytestmark = pytest.mark.db
PASSWORDS = ("Hx7-pq2m-Lzw", "Kt9#bd4R-qmx", "Vn3+Tq8s-Wep")
PEOPLE = (("Nguyễn Văn An", "an.nguyenvan@sis.hust.edu.vn"), ("Trần Thị Bình", "binh.tranthi@sis.hust.edu.vn"),
          ("Lê Hoàng Cường", "cuong.lehoang@sis.hust.edu.vn"))


@dataclass
class Desk:
    """A started console on a free port with a test clock, and the service's secret box."""

    app: App
    clock: FakeClock

    @property
    def web(self) -> WebConsole:
        assert self.app.web is not None
        return self.app.web

    @property
    def url(self) -> str:
        return self.web.base_url

    @property
    def box(self) -> SecretBox:
        return self.app.box

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def link(self, people: int = 1, *, lang: str = "vi") -> tuple[str, Request]:
        """A request whose passwords are sealed, and the token of its one-time link."""
        now = self.clock.now()
        request = await Request.create(kind="new_account" if people == 1 else "bulk_new_accounts",
                                       population="student", state="done", sender="an.nv2003@gmail.com",
                                       received_at=now, updated_at=now, lang=lang)
        accounts = []
        for i, ((name, address), password) in enumerate(zip(PEOPLE[:people], PASSWORDS, strict=False)):
            key = f"pw:{request.id}:{i}"
            await PendingSecret.create(key=key, request_id=request.id, sealed=self.box.seal(password), created_at=now)
            accounts.append({"full_name": name, "address": address, "password_secret": key})
        async with in_transaction() as conn:
            key = await issue_password_link(conn, self.app.settings, self.clock, self.box, request_id=request.id,
                                            recipient=request.sender, accounts=accounts, is_list=people > 1)
        # What the result mail's delivery does: open the sealed URL, send it, delete the sealed copy.
        sealed = await PendingSecret.get(key=key)
        url = self.box.open(sealed.sealed)
        await sealed.delete()
        assert url.startswith(f"{self.app.settings.web_url}/p/")
        return url.rsplit("/", 1)[1], request

    async def signed_in(self, roles: list[str]) -> aiohttp.ClientSession:
        """A client with a console session for a new staff member with `roles`."""
        staff = await Staff.create(name="Lê Văn Kỹ", roles=roles, created_at=self.clock.now())
        token = (await issue_login_link(staff.id, self.app.settings, self.clock, base_url=self.url)).rsplit("/", 1)[1]
        client = self.client()
        async with client.post(f"{self.url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303
        return client


@pytest.fixture
async def desk(app_factory: Any, settings_factory: Any) -> AsyncIterator[Desk]:
    clock = FakeClock()
    app = await app_factory(settings_factory(web={"port": 0}), clock=clock, inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    yield Desk(app, clock)
    await app.web.stop()


async def _open(client: aiohttp.ClientSession, desk: Desk, token: str) -> tuple[int, str]:
    async with client.post(f"{desk.url}/p/", data={"token": token}, allow_redirects=False) as r:
        return r.status, await r.text()


async def test_the_link_page_explains_and_a_get_consumes_nothing(desk: Desk) -> None:
    token, request = await desk.link()
    async with desk.client() as client:
        for _ in range(3):  # a mail scanner, a preview, then the person
            async with client.get(f"{desk.url}/p/{token}", allow_redirects=False) as r:
                assert r.status == 200
                page = await r.text()
    assert "Xem mật khẩu" in page and 'action="/p/"' in page and 'method="post"' in page
    assert f"YC-{request.id}" in page and "chỉ mở được một lần" in page and "hết hạn lúc" in page
    assert "04/09/2026 15:00" in page  # 08:00 UTC + 72 h, in Asia/Ho_Chi_Minh
    assert PASSWORDS[0] not in page
    assert (await PasswordLink.get(request_id=request.id)).opened_at is None
    assert await PendingSecret.filter(request_id=request.id).count() == 1


async def test_opening_shows_the_password_once_and_deletes_the_sealed_copy(desk: Desk) -> None:
    token, request = await desk.link()
    stored = await PasswordLink.get(request_id=request.id)
    assert stored.token_hash == token_hash(token) != token
    async with desk.client() as client:
        status, page = await _open(client, desk, token)
        assert status == 200
        assert PASSWORDS[0] in page and PEOPLE[0][1] in page and "Mật khẩu tạm thời" in page
        assert await PendingSecret.filter(request_id=request.id).count() == 0
        assert (await PasswordLink.get(request_id=request.id)).opened_at == desk.clock.now()
        status, again = await _open(client, desk, token)
        assert status == 410 and "đã được mở" in again and "trả lời thư" in again
        assert PASSWORDS[0] not in again
        async with client.get(f"{desk.url}/p/{token}") as r:
            assert r.status == 410 and "đã được mở" in await r.text()
    opened = await AuditEvent.get(action="password_link_opened")
    assert opened.request_id == request.id and opened.detail["addresses"] == [PEOPLE[0][1]]
    refused = await AuditEvent.get(action="password_link_refused")
    assert refused.request_id == request.id and refused.detail["reason"] == "used"


async def test_an_expired_link_is_refused_with_410(desk: Desk) -> None:
    token, request = await desk.link()
    desk.clock.advance(timedelta(hours=desk.app.settings.provisioning.link_hours, seconds=1))
    async with desk.client() as client:
        async with client.get(f"{desk.url}/p/{token}") as r:
            assert r.status == 410 and "hết hạn" in await r.text()
        status, page = await _open(client, desk, token)
    assert status == 410 and "hết hạn" in page and "trả lời thư" in page and PASSWORDS[0] not in page
    assert (await AuditEvent.get(action="password_link_refused")).detail["reason"] == "expired"
    assert (await PasswordLink.get(request_id=request.id)).opened_at is None


async def test_an_unknown_token_is_refused_with_404(desk: Desk) -> None:
    await desk.link()
    async with desk.client() as client:
        async with client.get(f"{desk.url}/p/not-a-real-token") as r:
            assert r.status == 404 and "không hợp lệ" in await r.text()
        status, page = await _open(client, desk, "not-a-real-token")
    assert status == 404 and "không hợp lệ" in page and "trả lời thư" in page
    refused = await AuditEvent.get(action="password_link_refused")
    assert refused.detail == {"reason": "unknown", "client": "127.0.0.1"} and refused.request_id is None


async def test_the_token_is_not_taken_from_a_query_string(desk: Desk) -> None:
    token, request = await desk.link()
    async with desk.client() as client:
        async with client.post(f"{desk.url}/p/?token={token}", data={}) as r:
            assert r.status == 404
            assert PASSWORDS[0] not in await r.text()
        async with client.post(f"{desk.url}/p/{token}", data={}) as r:
            assert r.status in (404, 405)
    assert (await PasswordLink.get(request_id=request.id)).opened_at is None


async def test_a_link_with_punctuation_glued_on_by_a_mail_client_still_opens(desk: Desk) -> None:
    token, _request = await desk.link()
    async with desk.client() as client:
        async with client.get(f"{desk.url}/p/{token})."):
            pass
        async with client.get(f"{desk.url}/p/{token}).") as r:
            assert r.status == 200
            form_token = re.search(r'name="token" value="([^"]+)"', await r.text())
        assert form_token is not None and form_token.group(1) == token
        status, page = await _open(client, desk, form_token.group(1))
    assert status == 200 and PASSWORDS[0] in page


async def test_the_pages_are_not_cached_indexed_or_referred(desk: Desk) -> None:
    token, _request = await desk.link()
    async with desk.client() as client:
        async with client.get(f"{desk.url}/p/{token}") as shown:
            get_headers = shown.headers
        async with client.post(f"{desk.url}/p/", data={"token": token}) as opened:
            post_headers = opened.headers
        async with client.post(f"{desk.url}/p/", data={"token": token}) as used:
            used_headers = used.headers
    for headers in (get_headers, post_headers, used_headers):
        assert headers["Cache-Control"] == "no-store"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert "noindex" in headers["X-Robots-Tag"]
        assert "Set-Cookie" not in headers


async def test_a_post_from_another_site_is_refused_before_the_link_is_spent(desk: Desk) -> None:
    token, request = await desk.link()
    async with desk.client() as client:
        async with client.post(f"{desk.url}/p/", data={"token": token},
                               headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}) as r:
            assert r.status == 403
    assert (await PasswordLink.get(request_id=request.id)).opened_at is None


async def test_concurrent_opens_of_one_link_let_exactly_one_win(desk: Desk) -> None:
    token, request = await desk.link(people=2)
    results = await asyncio.gather(*(open_password_link(token, desk.clock, desk.box) for _ in range(6)))
    won = [r for r in results if isinstance(r, OpenedLink)]
    lost = [r for r in results if isinstance(r, LinkRefused)]
    assert len(won) == 1 and len(lost) == 5
    assert {r.reason for r in lost} == {Refusal.USED}
    assert [a["password"] for a in won[0].accounts] == list(PASSWORDS[:2])
    assert await PendingSecret.filter(request_id=request.id).count() == 0
    assert await AuditEvent.filter(action="password_link_opened").count() == 1
    assert await AuditEvent.filter(action="password_link_refused").count() == 5


async def test_concurrent_button_presses_show_the_passwords_once(desk: Desk) -> None:
    token, _request = await desk.link()
    async with desk.client() as client:
        answers = await asyncio.gather(*(_open(client, desk, token) for _ in range(4)))
    assert sorted(status for status, _ in answers) == [200, 410, 410, 410]
    assert sum(PASSWORDS[0] in page for _, page in answers) == 1


async def test_a_link_whose_passwords_are_gone_is_refused_and_not_spent(desk: Desk) -> None:
    token, request = await desk.link()
    await PendingSecret.filter(request_id=request.id).delete()
    result = await open_password_link(token, desk.clock, desk.box)
    assert isinstance(result, LinkRefused) and result.reason is Refusal.GONE
    assert (await PasswordLink.get(request_id=request.id)).opened_at is None
    event = await AuditEvent.get(action="password_link_refused")
    assert event.detail["reason"] == "gone" and event.detail["cause"] == "missing"
    async with desk.client() as client:
        status, page = await _open(client, desk, token)
    assert status == 410 and "không còn được lưu" in page


async def test_purge_expired_deletes_only_the_secrets_of_expired_unopened_links(desk: Desk) -> None:
    old, old_request = await desk.link(people=2)
    opened, opened_request = await desk.link()
    assert isinstance(await open_password_link(opened, desk.clock, desk.box), OpenedLink)
    desk.clock.advance(timedelta(hours=desk.app.settings.provisioning.link_hours + 1))
    fresh, fresh_request = await desk.link()
    assert await purge_expired(desk.clock) == 2
    assert await PendingSecret.filter(request_id=old_request.id).count() == 0
    assert await PendingSecret.filter(request_id=fresh_request.id).count() == 1
    assert await purge_expired(desk.clock) == 0
    refused = await open_password_link(old, desk.clock, desk.box)
    assert isinstance(refused, LinkRefused) and refused.reason is Refusal.EXPIRED
    assert isinstance(await open_password_link(fresh, desk.clock, desk.box), OpenedLink)
    assert opened_request.id != fresh_request.id


async def test_no_password_or_token_reaches_the_audit_trail_or_the_service_logs(
        desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    tokens = []
    with caplog.at_level(logging.DEBUG):
        for people in (1, 2):
            token, request = await desk.link(people=people)
            tokens.append(token)
            async with desk.client() as client:
                async with client.get(f"{desk.url}/p/{token}"):
                    pass
                await _open(client, desk, token)
                await _open(client, desk, token)
        gone, gone_request = await desk.link()
        await PendingSecret.filter(request_id=gone_request.id).delete()
        await open_password_link(gone, desk.clock, desk.box)
        tokens.append(gone)
    service_logs = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    audit = repr([(e.actor, e.action, e.detail) for e in await AuditEvent.all()])
    assert "password_link_opened" in audit and "password_link_refused" in audit
    for secret in (*PASSWORDS, *tokens):  # at DEBUG the ORM logs its SQL: hashes and sealed values only
        assert secret not in service_logs and secret not in audit
    for hashed in map(token_hash, tokens):
        assert hashed not in audit


async def test_the_access_log_never_shows_a_password_link_token(desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    token, _request = await desk.link()
    with caplog.at_level(logging.INFO):
        async with desk.client() as client:
            async with client.get(f"{desk.url}/p/{token}") as r:
                assert r.status == 200
            await _open(client, desk, token)
    assert "/p/" in caplog.text
    assert token not in caplog.text


async def test_a_list_shows_a_table_and_offers_the_xlsx_in_the_same_response(desk: Desk) -> None:
    token, request = await desk.link(people=3)
    async with desk.client() as client:
        status, page = await _open(client, desk, token)
    assert status == 200 and 'id="accounts"' in page
    for (name, address), password in zip(PEOPLE, PASSWORDS, strict=True):
        assert name in page and address in page and password in page
    href = re.search(r'href="data:application/vnd\.openxmlformats-officedocument\.spreadsheetml\.sheet;base64,'
                     r'([A-Za-z0-9+/=]+)" download="(YC-\d+-\d{8}\.xlsx)"', page)
    assert href is not None and href.group(2).startswith(f"YC-{request.id}-")
    book = openpyxl.load_workbook(io.BytesIO(base64.b64decode(href.group(1))))
    cells = [str(c) for row in book.active.iter_rows(values_only=True) for c in row if c is not None]
    for (_name, address), password in zip(PEOPLE, PASSWORDS, strict=True):
        assert address in cells and password in cells


async def test_the_page_follows_the_language_of_the_result_mail(desk: Desk) -> None:
    token, _request = await desk.link(lang="en")
    async with desk.client() as client:
        async with client.get(f"{desk.url}/p/{token}") as r:
            page = await r.text()
        assert "Show the password" in page and "opens only once" in page and 'lang="en"' in page
        status, shown = await _open(client, desk, token)
        assert status == 200 and "Temporary password" in shown and PASSWORDS[0] in shown
        status, used = await _open(client, desk, token)
        assert status == 410 and "opened already" in used and "reply to the mail" in used


# The account log pages.

async def _log(desk: Desk, count: int = 3, request_id: int | None = 7) -> None:
    start = desk.clock.now()
    for i in range(count):
        await AccountLog.create(at=start + timedelta(days=i), action="create", address=f"sv{i}@sis.hust.edu.vn",
                                full_name=f"Nguyễn Văn {chr(65 + i)}", person_id=f"2020{i:04d}", backend="local",
                                request_id=request_id, approved_by="Phạm Thị Lan", executed_by="Lê Văn Kỹ",
                                answer="created")


async def test_the_account_log_is_refused_to_office_only_staff(desk: Desk) -> None:
    await _log(desk)
    async with await desk.signed_in(["office"]) as office:
        for path in ("/accounts/log", "/accounts/log.csv", "/accounts/log.xlsx"):
            async with office.get(f"{desk.url}{path}", allow_redirects=False) as r:
                assert r.status == 403, path
                assert "sv0@sis" not in await r.text()
        async with office.get(f"{desk.url}/") as r:
            assert "/accounts/log" not in await r.text()
    async with desk.client() as anonymous:
        async with anonymous.get(f"{desk.url}/accounts/log.csv", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"].startswith("/login")


async def test_the_account_log_page_is_newest_first_paged_and_filtered(desk: Desk) -> None:
    await _log(desk, count=60, request_id=7)
    await _log(desk, count=2, request_id=8)
    async with await desk.signed_in(["technical"]) as tech:
        async with tech.get(f"{desk.url}/") as r:
            assert 'href="/accounts/log"' in await r.text()
        async with tech.get(f"{desk.url}/accounts/log") as r:
            assert r.status == 200
            page = await r.text()
        assert "Nhật ký tài khoản" in page and "62 kết quả" in page and "Trang 1/2" in page
        assert page.index("sv59@sis") < page.index("sv58@sis")  # newest first
        async with tech.get(f"{desk.url}/accounts/log", params={"request": "YC-8"}) as r:
            page = await r.text()
        assert "2 kết quả" in page and "sv59@sis" not in page
        async with tech.get(f"{desk.url}/accounts/log", params={"from": "2026-09-02", "to": "2026-09-03"}) as r:
            page = await r.text()  # days 1 and 2 of both requests (the end day included)
        assert "3 kết quả" in page and "sv0@sis" not in page and "sv3@sis" not in page
        async with tech.get(f"{desk.url}/accounts/log", params={"from": "hôm qua"}) as r:
            assert r.status == 200 and "Ngày không hợp lệ" in await r.text()


async def test_the_account_log_downloads_as_csv_with_a_bom_and_as_xlsx(desk: Desk) -> None:
    await _log(desk)
    async with await desk.signed_in(["head"]) as head:
        async with head.get(f"{desk.url}/accounts/log.csv", params={"request": "7"}) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
            assert "attachment" in r.headers["Content-Disposition"]
            body = await r.read()
        assert body.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
        assert rows[0][:3] == ["Thời gian", "Thao tác", "Địa chỉ"] and "Họ và tên" in rows[0]
        assert [r[2] for r in rows[1:]] == ["sv0@sis.hust.edu.vn", "sv1@sis.hust.edu.vn", "sv2@sis.hust.edu.vn"]
        assert rows[1][0] == "2026-09-01 15:00:00"  # in the office's time zone
        async with head.get(f"{desk.url}/accounts/log.xlsx") as r:
            assert r.status == 200 and "spreadsheetml" in r.headers["Content-Type"]
            data = await r.read()
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][0] == "Thời gian" and len(values) == 4 and values[1][3] == "Nguyễn Văn A"
