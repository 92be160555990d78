"""The records rules are decided once, in the core's use cases, and every surface says the same: who may
remind everyone (the leadership), who may see a class's list (its signers and the leadership), who may decide
a signing credential (the admin), and whose turns are shown (a teacher's, when they hold a signing role).
Each rule is driven through the web console (a real started console, an HTTP client with a session and its
CSRF token) and through Telegram (the real aiogram bot against the fake Bot API), on one database."""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edudesk.app import App
from edudesk.bot.telegram.callbacks import Tap, TapAction
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.signing.models import CredentialState, SignerCredential, Teacher
from edudesk.core.signing.pki import DemoPki
from tests.fakes.telegram import FakeTelegram
from tests.records_kit import RecordsKit, records_settings, small_roster

pytestmark = [pytest.mark.db, pytest.mark.slow]

STRANGER_TG = 6200  # a teacher of another class


@dataclass
class School:
    """The records world with its console and its Telegram bot."""

    kit: RecordsKit
    tg: FakeTelegram
    clients: list[aiohttp.ClientSession]

    @property
    def url(self) -> str:
        assert self.kit.app.web is not None
        return str(self.kit.app.web.base_url)

    async def web(self, staff_id: int) -> tuple[aiohttp.ClientSession, str]:
        """A browser signed in as the staff member, and its CSRF token."""
        app = self.kit.app
        token = (await issue_login_link(staff_id, app.settings, app.clock, base_url=self.url)).rsplit("/", 1)[1]
        client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.clients.append(client)
        async with client.post(f"{self.url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303
        async with client.get(f"{self.url}/whoami") as r:
            page = await r.text()
        return client, page.split('name="csrf" value="', 1)[1].split('"', 1)[0]

    async def tap(self, user: int, action: TapAction, target: int, arg: int = 0) -> str:
        """A button of that action pressed in the person's private chat (forged where no card showed it); the
        bot's answer to the tap."""
        self.tg.inject_message(user, user, "/giup")
        await self.tg.wait_for(lambda: self.tg.messages(user) or None, 10.0)
        message = self.tg.messages(user)[-1].message_id
        query = self.tg.inject_callback(user, user, message, Tap(a=action, r=target, x=arg).pack(),
                                        check_button=False)
        answer = await self.tg.wait_for(lambda: self.tg.answers.get(query), 10.0)
        return str(answer.text or "")

    async def say(self, user: int, text: str, expect: str) -> str:
        """A command in the person's private chat; the bot's answer containing `expect`."""
        before = len(self.tg.bot_messages(user))
        self.tg.inject_message(user, user, text)
        found = await self.tg.wait_for(
            lambda: next((m for m in self.tg.bot_messages(user)[before:] if expect in m.text), None), 10.0)
        return str(found.text)


async def staff_of(code: str) -> int:
    teacher = await Teacher.get(code=code)
    assert teacher.staff_id is not None
    return teacher.staff_id


def page_text(page: str) -> str:
    """The visible words of a page (tags dropped, entities read)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture
async def school(app_factory: Any, settings_factory: Any, tmp_path: Path,
                 monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[School]:
    tg = FakeTelegram()
    await tg.start()
    monkeypatch.setenv("EDUDESK_TELEGRAM_TOKEN", tg.token)
    pki = DemoPki.create()
    settings = settings_factory(records=records_settings(tmp_path, pki, notice_delay_seconds=0.2, quiet_hours=""),
                                web={"port": 0}, smtpd={"enabled": False},
                                telegram={"enabled": True, "api_server": tg.url})
    app: App = await app_factory(settings)
    kit = RecordsKit(app, pki, app.clock, small_roster(3))  # type: ignore[arg-type]
    await kit.load()
    await Staff.create(name="Giáo viên lớp khác", email="khac@thpt.edu.vn", roles=["teacher"],
                       telegram_id=STRANGER_TG, created_at=app.clock.now())
    assert app.web is not None
    await app.web.start()
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    await app.records.start_class(kit.class_id)
    world = School(kit, tg, [])
    yield world
    for client in world.clients:
        await client.close()
    app.worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await tg.stop()


async def _refusals(action: str) -> list[str]:
    """Who was refused `action` (the actor labels of the `records_refused` audit entries)."""
    rows = await AuditEvent.filter(action="records_refused").order_by("id")
    return [r.actor for r in rows if r.detail.get("action") == action]


async def test_only_the_leadership_reminds_everyone_on_every_surface(school: School) -> None:
    kit = school.kit
    client, csrf = await school.web(await staff_of("GV01"))
    async with client.post(f"{school.url}/records/remind", data={"csrf": csrf}) as r:
        refused_web = page_text(await r.text())
    refused_tg = await school.tap(kit.telegram_ids["GV01"], TapAction.REC_REMIND, 0)
    assert "Chỉ ban giám hiệu nhắc ký học bạ" in refused_web
    assert "Chỉ ban giám hiệu nhắc ký học bạ" in refused_tg
    refusals = await _refusals("rec_remind")
    assert len(refusals) == 2 and any("web:" in a for a in refusals) and any("tg:" in a for a in refusals)
    assert not await kit.audit("records_reminded")

    leader, csrf = await school.web(await staff_of("BGH01"))
    async with leader.post(f"{school.url}/records/remind", data={"csrf": csrf}, allow_redirects=False) as r:
        assert r.status == 303 and "reminded=3" in r.headers["Location"]
    assert "Đã gửi nhắc 3 giáo viên" in await school.tap(kit.telegram_ids["BGH01"], TapAction.REC_REMIND, 0)
    assert len(await kit.audit("records_reminded")) == 2


async def test_a_class_list_is_for_its_signers_and_the_leadership_on_every_surface(school: School) -> None:
    kit = school.kit
    stranger = await Staff.get(telegram_id=STRANGER_TG)
    client, _ = await school.web(stranger.id)
    async with client.get(f"{school.url}/records/classes/{kit.class_id}") as r:
        refused_web = page_text(await r.text())
    refused_tg = await school.tap(STRANGER_TG, TapAction.REC_LIST, kit.class_id, 1)
    for answer in (refused_web, refused_tg):
        assert "không ký học bạ của lớp này" in answer
    assert "Học Sinh Số" not in refused_web
    assert not [m for m in school.tg.bot_messages(STRANGER_TG) if "Học Sinh Số" in m.text]
    assert len(await _refusals("rec_list")) == 2

    for code in ("GV03", "BGH01"):  # a signer of the class; the leadership
        client, _ = await school.web(await staff_of(code))
        async with client.get(f"{school.url}/records/classes/{kit.class_id}") as r:
            assert r.status == 200 and "Học Sinh Số 1" in await r.text()
        assert await school.tap(kit.telegram_ids[code], TapAction.REC_LIST, kit.class_id, 1) == ""
        await school.tg.wait_for(lambda code=code: next((m for m in school.tg.bot_messages(kit.telegram_ids[code])
                                                         if "Học bạ lớp 10A1" in m.text), None), 10.0)


async def test_only_the_admin_decides_a_credential_on_every_surface(school: School) -> None:
    kit = school.kit
    pending = await kit.pkcs12("GV02", approve=False)
    client, csrf = await school.web(await staff_of("BGH01"))  # the leadership, not an admin
    async with client.post(f"{school.url}/records/credentials/{pending.id}", data={"csrf": csrf, "approve": "1"}) as r:
        refused_web = page_text(await r.text())
    refused_tg = await school.tap(kit.telegram_ids["BGH01"], TapAction.REC_CRED_OK, pending.id)
    for answer in (refused_web, refused_tg):
        assert "Chỉ quản trị viên duyệt chứng thư số" in answer
    assert (await SignerCredential.get(id=pending.id)).state == CredentialState.PENDING
    assert len(await _refusals("rec_cred")) == 2


async def test_my_turns_are_a_signers_and_the_same_on_every_surface(school: School) -> None:
    kit = school.kit
    client, _ = await school.web(await staff_of("GV01"))
    async with client.get(f"{school.url}/records") as r:
        page = await r.text()
    row = re.search(r'<tr class="[^"]*" data-class="(\d+)" data-stage="1">(.*?)</tr>', page, re.S)
    assert row is not None and int(row.group(1)) == kit.class_id
    assert re.search(r"<b>3</b>", row.group(2)), "three records wait for GV01's signature"
    answer = await school.say(kit.telegram_ids["GV01"], "/ky", "Học bạ chờ Thầy/Cô ký")
    assert "10A1" in answer and "3 học bạ" in answer

    # Without a signing role the same teacher has no turns anywhere (the console refuses them at the door).
    await Staff.filter(id=await staff_of("GV01")).update(roles=[])
    async with client.get(f"{school.url}/records", allow_redirects=False) as r:
        assert r.status in (302, 303, 403) and 'id="turns"' not in await r.text()
    answer = await school.say(kit.telegram_ids["GV01"], "/ky", "không có trong danh sách giáo viên ký học bạ")
    assert "10A1" not in answer
