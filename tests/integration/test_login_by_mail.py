"""Sign-in by mail against a real console, database, job worker and aiosmtpd sink: an institutional address gets
a one-time link by mail, every address gets the same answer, the limits hold, and a sign-now mail carries a
fresh sign-in link to the records page when the console has a public address."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from edudesk.app import App
from edudesk.core.chats.mail import mail_card
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.loginmail import LINKS_PER_ADDRESS, REQUESTS_PER_CLIENT, WINDOW
from edudesk.core.people.models import LoginToken, Staff
from edudesk.core.ports import Button, ButtonAction, Card, FakeClock
from edudesk.core.requests.models import OutgoingMail
from edudesk.core.signing.models import SignerCredential, Teacher
from edudesk.core.signing.pki import DemoPki
from tests.records_kit import RecordsKit, records_settings, small_roster
from tests.servers.smtp_sink import ReceivedMail, SmtpSink, free_port

pytestmark = pytest.mark.db
LAN = "lan.pt@hust.edu.vn"
LINK = re.compile(r"https?://[^\s\"<>]+/login/[A-Za-z0-9_-]{43}(?:\?next=[^\s\"<>]*)?")


def body(mail: ReceivedMail) -> str:
    """The plain-text part of a mail."""
    part = mail.message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(mail: ReceivedMail) -> str:
    """The one sign-in link a mail carries."""
    found = set(LINK.findall(body(mail)))
    assert len(found) == 1, found
    return found.pop()


@dataclass
class Desk:
    """A started console with a public address, mail going to the sink, a test clock."""

    app: App
    sink: SmtpSink
    clock: FakeClock

    @property
    def url(self) -> str:
        assert self.app.web is not None
        return self.app.web.base_url

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def ask(self, address: str, *, origin: str | None = None, timed: list[float] | None = None) -> str:
        """POST the sign-in form as a browser does; the page's answer."""
        headers = {"Origin": origin or self.url}
        async with self.client() as client:
            start = time.perf_counter()
            async with client.post(f"{self.url}/login/mail", data={"address": address}, headers=headers,
                                   allow_redirects=False) as r:
                text = await r.text()
                if timed is not None:
                    timed.append(time.perf_counter() - start)
                assert r.status == (403 if origin else 200), text
                return text

    def mails_to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.sink.received() if address in m.rcpt_tos]


@pytest.fixture
async def desk(app_factory: Any, settings_factory: Any, smtp_sink: SmtpSink) -> AsyncIterator[Desk]:
    port = free_port()
    settings = settings_factory(web={"port": port, "public_url": f"http://127.0.0.1:{port}"},
                                outgoing={"transport": "smtp", "smtp_host": smtp_sink.host,
                                          "smtp_port": smtp_sink.port})
    clock = FakeClock()
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    yield Desk(app, smtp_sink, clock)
    await app.web.stop()


def answer_of(page: str, address: str) -> str:
    """The page with what differs by design taken out: the address typed (echoed) and the CSP nonce."""
    page = page.replace(address.strip().lower(), "<address>")
    return re.sub(r'nonce="[^"]+"', 'nonce=""', page)


async def test_a_staff_address_gets_a_one_time_link_by_mail_and_it_signs_in(
        desk: Desk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    staff = await Staff.create(name="Phạm Thị Lan", email=LAN, roles=["office"], created_at=desk.clock.now())
    page = await desk.ask("  Lan.PT@HUST.edu.vn ")  # as people type it: spaces, capitals
    assert f"Nếu địa chỉ {LAN} có trong hệ thống, một liên kết đăng nhập đã được gửi tới đó" in page
    assert "hết hạn sau 15 phút" in page
    # Queued, never sent while the page answered; no token exists yet, so none is in a job or a row.
    [queued] = await OutgoingMail.filter(template="login_link")
    assert (queued.recipient, queued.state, queued.automatic) == (LAN, "pending", False)
    assert not desk.sink.received() and not await LoginToken.exists()
    assert "/login/" not in str([j.payload for j in await Job.all()])
    desk.clock.advance(timedelta(minutes=2))  # the worker sends it a little later: the link is made then
    await desk.app.worker.drain()
    [mail] = desk.mails_to(LAN)
    link = link_in(mail)
    assert mail.subject == "Liên kết đăng nhập trang quản trị"
    assert link.startswith(f"{desk.url}/login/") and "?next=" not in link
    text = body(mail)
    assert text.startswith("Kính gửi Anh/Chị Phạm Thị Lan,") and "01/09/2026 15:17" in text  # 08:02 UTC + 15 min
    token = await LoginToken.get(staff_id=staff.id)
    assert token.created_at == desk.clock.now() and token.used_at is None
    # The token is in the mail only (the sink's own aiosmtpd debug log, "mail.log", prints what it receives).
    assert not [r for r in caplog.records if link.rsplit("/", 1)[1] in r.getMessage() and r.name != "mail.log"]
    async with desk.client() as client:
        async with client.post(f"{desk.url}/login", data={"token": link.rsplit("/", 1)[1]},
                               allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
        async with client.post(f"{desk.url}/login", data={"token": link.rsplit("/", 1)[1]},
                               allow_redirects=False) as r:
            assert r.status == 410  # once only
    [asked] = await AuditEvent.filter(action="login_link_requested")
    assert asked.detail == {"staff_id": staff.id} and asked.actor == "web:127.0.0.1"


async def test_every_address_gets_the_same_answer_and_only_a_staffs_institutional_one_gets_mail(
        desk: Desk) -> None:
    now = desk.clock.now()
    await Staff.create(name="Phạm Thị Lan", email=LAN, roles=["office"], created_at=now)
    await Staff.create(name="Đã Nghỉ", email="da.nghi@hust.edu.vn", roles=["office"], active=False, created_at=now)
    await Staff.create(name="Thư Riêng", email="thu.rieng@gmail.com", roles=["office"], created_at=now)
    hoa = await Staff.create(name="Nguyễn Thị Hoa", email="hoa.nt@hust.edu.vn", roles=["teacher"], created_at=now)
    await Teacher.create(code="GV07", name="Nguyễn Thị Hoa", email="gv.hoa@sis.hust.edu.vn", staff_id=hoa.id,
                         created_at=now)
    addresses = {LAN: True, "gv.hoa@sis.hust.edu.vn": True,  # a teacher's roster address, linked to her staff
                 "khong.co@hust.edu.vn": False, "da.nghi@hust.edu.vn": False, "thu.rieng@gmail.com": False,
                 "khong-phai-dia-chi": False, "a@b@hust.edu.vn": False}
    answers = {address: answer_of(await desk.ask(address), address) for address in addresses}
    assert len(set(answers.values())) == 1, "the page tells nobody whether an address is known"
    await desk.app.worker.drain()
    for address, known in addresses.items():
        assert len(desk.mails_to(address)) == (1 if known else 0), address
    assert "Kính gửi Thầy/Cô Nguyễn Thị Hoa," in body(desk.mails_to("gv.hoa@sis.hust.edu.vn")[0])
    assert await OutgoingMail.filter(template="login_link").count() == 2
    # Every request is audited; a stranger's address never reaches the trail (Decree 13), only its domain.
    events = await AuditEvent.filter(action="login_link_requested").order_by("id")
    assert len(events) == len(addresses)
    trail = str([(e.actor, e.detail) for e in await AuditEvent.all()])
    for address, known in addresses.items():
        if not known:
            assert address not in trail, address
    assert {"domain": "gmail.com"} in [e.detail for e in events]


async def test_the_fourth_link_in_fifteen_minutes_sends_nothing_and_is_audited(desk: Desk) -> None:
    await Staff.create(name="Phạm Thị Lan", email=LAN, roles=["office"], created_at=desk.clock.now())
    pages = [answer_of(await desk.ask(LAN), LAN) for _ in range(LINKS_PER_ADDRESS + 1)]
    assert len(set(pages)) == 1
    await desk.app.worker.drain()
    assert len(desk.mails_to(LAN)) == LINKS_PER_ADDRESS == 3
    [limited] = await AuditEvent.filter(action="login_link_limited")
    assert limited.detail["limit"] == "address"
    desk.clock.advance(WINDOW)  # the window has passed: one more is sent
    await desk.ask(LAN)
    await desk.app.worker.drain()
    assert len(desk.mails_to(LAN)) == 4


async def test_one_client_is_held_after_ten_requests_whatever_the_addresses(desk: Desk) -> None:
    await Staff.create(name="Phạm Thị Lan", email=LAN, roles=["office"], created_at=desk.clock.now())
    for n in range(REQUESTS_PER_CLIENT):
        await desk.ask(f"thu.{n}@hust.edu.vn")
    await desk.ask(LAN)  # the eleventh, for a real address: no mail
    await desk.app.worker.drain()
    assert not desk.mails_to(LAN)
    [limited] = await AuditEvent.filter(action="login_link_limited")
    assert limited.detail == {"staff_id": (await Staff.get(email=LAN)).id, "limit": "client"}


async def test_a_post_from_another_site_is_refused_and_sends_nothing(desk: Desk) -> None:
    await Staff.create(name="Phạm Thị Lan", email=LAN, roles=["office"], created_at=desk.clock.now())
    await desk.ask(LAN, origin="https://evil.example")
    await desk.app.worker.drain()
    assert not desk.sink.received() and not await AuditEvent.filter(action="login_link_requested").exists()
    assert await AuditEvent.filter(action="web_csrf_refused").exists()


async def test_known_and_unknown_addresses_take_the_same_time_class(desk: Desk) -> None:
    await Staff.create(name="Phạm Thị Lan", email=LAN, roles=["office"], created_at=desk.clock.now())
    known: list[float] = []
    unknown: list[float] = []
    for n in range(3):  # within the address limit; the client limit is 10 per window
        await desk.ask(LAN, timed=known)
        await desk.ask(f"khong.co.{n}@hust.edu.vn", timed=unknown)
    # Nothing is sent while the page answers (a mail relay's round trip would show): both are a few queries.
    assert max(known) < 0.5 and max(unknown) < 0.5, (known, unknown)
    assert not desk.sink.received()


async def test_a_sign_now_mail_carries_a_sign_in_link_made_when_it_is_sent(desk: Desk) -> None:
    now = desk.clock.now()
    teacher = await Staff.create(name="Lê Thị Mai", email="mai.lt@hust.edu.vn", roles=["teacher"],
                                 notify_via="email", created_at=now)
    page = f"{desk.url}/records/classes/4?stage=1"
    card = Card("<b>Mời Thầy/Cô ký học bạ số</b>\nLớp <b>10A1</b>",
                ((Button("Xem danh sách", ButtonAction.NOOP, 0, url=page),),))
    await mail_card(desk.app.settings, desk.clock, desk.app.queue, "notice_mail:t1", teacher, card, "")
    assert not await LoginToken.exists() and "/login/" not in str([j.payload for j in await Job.all()])
    desk.clock.advance(timedelta(hours=3))  # paced or delayed: the link is still fresh when it leaves
    await desk.app.worker.drain()
    [mail] = desk.mails_to("mai.lt@hust.edu.vn")
    link = link_in(mail)
    assert link.endswith("?next=/records") and page not in body(mail)
    assert (await LoginToken.get(staff_id=teacher.id)).created_at == desk.clock.now()
    async with desk.client() as client:
        async with client.get(link, allow_redirects=False) as r:
            assert r.status == 200 and 'name="next" value="/records"' in await r.text()
        async with client.post(f"{desk.url}/login", data={"token": link.split("/login/")[1].split("?")[0],
                                                         "next": "/records"}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/records"
    # A notice that leads nowhere in the records (a request's card by mail) carries no sign-in link.
    await mail_card(desk.app.settings, desk.clock, desk.app.queue, "notice_mail:t2", teacher,
                    Card("YC-5 quá hạn", ((Button("Mở", ButtonAction.NOOP, 0, url=f"{desk.url}/requests/5"),),)), "")
    await desk.app.worker.drain()
    assert not LINK.findall(body(desk.mails_to("mai.lt@hust.edu.vn")[1]))


async def test_without_a_public_address_the_sign_now_mail_has_no_link_and_says_where_to_sign(
        app_factory: Any, settings_factory: Any, smtp_sink: SmtpSink, tmp_path: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    clock = FakeClock()
    settings = settings_factory(records=records_settings(tmp_path, pki), web={"port": 0},
                                outgoing={"transport": "smtp", "smtp_host": smtp_sink.host,
                                          "smtp_port": smtp_sink.port})
    assert not settings.web.public_url
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    kit = RecordsKit(app, pki, clock, small_roster())
    await kit.load(credentials=False)
    gv01 = await Teacher.get(code="GV01")
    await SignerCredential.create(teacher_id=gv01.id, kind="smartca", label="VNPT SmartCA", state="approved",
                                  created_at=clock.now())  # signs on the phone: no PIN, no page needed
    await kit.start()
    [mail] = [m for m in smtp_sink.received() if "gv01@thpt.edu.vn" in m.rcpt_tos]
    text = body(mail)
    assert "Mời Thầy/Cô ký học bạ số" in text and "trang quản trị của nhà trường (Học bạ số → Ký ngay)" in text
    assert "/login/" not in text and not await LoginToken.exists()
