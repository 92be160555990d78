"""Who may see what in the chats, walked over every role and every command: the real aiogram bot against the
fake Telegram Bot API, the real Zalo receiver against the fake Zalo Bot Platform, a real database and job
worker. A refusal names no request and leaves an `access_denied` (or, for a step's own role, `action_refused`)
audit entry; a person without a role, or a stranger, learns nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from edudesk.app import App
from edudesk.core.chats.notify import enqueue_cards
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.workflow import State
from tests.fakes.telegram import FakeTelegram
from tests.fakes.zalo_bot import FakeZaloBot

pytestmark = [pytest.mark.db, pytest.mark.slow]

OFFICE_CHAT = -1001001
NAME, SID = "Nguyễn Văn An", "20201234"
ROLES = ("office", "technical", "head", "admin", "teacher", "leader", "")  # "": linked, but no role at all
DESK = {"office", "technical", "head", "admin"}
TG_USER = {role: 500 + i for i, role in enumerate(ROLES)}
ZALO_USER = {role: f"73100000000000005{i:02d}" for i, role in enumerate(ROLES)}
STRANGER_TG, STRANGER_ZALO = 999, "7319999999999999999"


@dataclass
class World:
    app: App
    tg: FakeTelegram
    zalo: FakeZaloBot
    request: Request

    async def telegram(self, user: int, text: str) -> str:
        """A private message to the bot; the bot's answer."""
        before = len(self.tg.bot_messages(user))
        self.tg.inject_message(user, user, text)
        answer = await self.tg.wait_for(lambda: self.tg.bot_messages(user)[before:] or None, 10.0)
        return str(answer[0].text)

    async def zalo_says(self, user: str, text: str) -> str:
        """A message to the Zalo bot; its answer."""
        before = len(self.zalo.bot_texts(user))
        self.zalo.inject_text(user, text)
        return str((await self.zalo.wait_for(lambda: self.zalo.bot_texts(user)[before:] or None, 10.0))[0])


@pytest.fixture
async def world(app_factory: Any, settings_factory: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    tg = FakeTelegram(chat_limit=(1, 0.02))  # Telegram's pace per chat, scaled down fifty-fold on both sides
    await tg.start()
    zalo = FakeZaloBot()
    await zalo.start()
    monkeypatch.setenv("EDUDESK_TELEGRAM_TOKEN", tg.token)
    monkeypatch.setenv("EDUDESK_ZALO_BOT_TOKEN", zalo.token)
    settings = settings_factory(
        web={"enabled": False}, smtpd={"enabled": False},
        telegram={"enabled": True, "api_server": tg.url, "office_chat_id": OFFICE_CHAT, "rate_chat_seconds": 0.02,
                  "rate_group_per_minute": 1000.0},
        zalo={"enabled": True, "api": "bot", "mode": "polling", "api_base": zalo.url, "messages_per_second": 50})
    app: App = await app_factory(settings, inline_analysis=True)
    now = app.clock.now()
    for role in ROLES:
        await Staff.create(name=f"Cán bộ {role or 'mới'}", roles=[role] if role else [], telegram_id=TG_USER[role],
                           zalo_id=ZALO_USER[role], email=f"{role or 'moi'}@hust.edu.vn", notify_via="email",
                           created_at=now)
        zalo.add_user(ZALO_USER[role])
    zalo.add_user(STRANGER_ZALO)
    request = await Request.create(kind="new_account", population="student", state="received",
                                   sender=f"{SID}@gmail.com", sender_name=NAME, received_at=now, updated_at=now,
                                   deadline=now + timedelta(hours=24))
    await RequestPerson.create(request=request, row=0, person_id=SID, full_name=NAME,
                               data={"full_name": NAME, "student_id": SID})
    async with in_transaction() as conn:
        await enqueue_cards(conn, app.queue, request.id, request.version, State.RECEIVED)
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    await tg.wait_for(lambda: any(NAME in m.text for m in tg.bot_messages(OFFICE_CHAT)), 15.0)
    yield World(app, tg, zalo, request)
    app.worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await tg.stop()
    await zalo.stop()


async def _denied(actor_key: str) -> list[str]:
    """What the person behind `actor_key` was refused, from the audit trail."""
    events = await AuditEvent.filter(action="access_denied")
    return [e.detail["what"] for e in events if e.actor == actor_key or e.actor.endswith(f"({actor_key})")]


def _reveals(text: str, request: Request) -> bool:
    return NAME in text or SID in text or f"YC-{request.id}" in text


async def test_telegram_commands_and_card_buttons_by_role(world: World) -> None:
    request, tg = world.request, world.tg
    card = next(m for m in tg.bot_messages(OFFICE_CHAT) if NAME in m.text)
    commands = {"/queue": DESK, f"/find {request.id}": DESK, "/find nguyen van an": DESK, "/report": DESK,
                "/login": {r for r in ROLES if r}, "/whoami": {*ROLES, None}}
    table = []
    for role in [*ROLES, None]:
        user = TG_USER[role] if role is not None else STRANGER_TG
        for command, allowed in commands.items():
            answer = await world.telegram(user, command)
            ok = role in allowed
            table.append((role, command, ok))
            if ok:
                assert "chưa được cấp quyền" not in answer and "chỉ dành cho" not in answer, (role, command, answer)
                if command in ("/queue", f"/find {request.id}", "/find nguyen van an"):
                    assert f"YC-{request.id}" in answer, (role, command, answer)
                continue
            assert not _reveals(answer, request), (role, command, answer)
            assert ("chỉ dành cho" in answer) if role else ("chưa được cấp quyền" in answer), (role, answer)
            assert command.split()[0] in await _denied(f"tg:{user}"), (role, command)
        # A card's page button shows the people: only to the roles that see requests.
        query = tg.inject_callback(OFFICE_CHAT, user, card.message_id, f"t:page:{request.id}:0:0", check_button=False)
        answer = await tg.wait_for(lambda q=query: tg.answers.get(q), 10.0)
        if role in DESK:
            assert not answer.show_alert, role
        else:
            assert answer.show_alert and not _reveals(answer.text or "", request), role
            assert f"tap:page:{request.id}" in await _denied(f"tg:{user}"), role
        # Approve: the service's own role check (office, head, admin) refuses the others, audited.
        if role not in ("office", "head", "admin"):
            query = tg.inject_callback(OFFICE_CHAT, user, card.message_id, f"t:approve:{request.id}:0:0",
                                       check_button=False)
            answer = await tg.wait_for(lambda q=query: tg.answers.get(q), 10.0)
            assert answer.show_alert, role
    assert (await Request.get(id=request.id)).state == "received"
    refused = await AuditEvent.filter(action="action_refused").count()
    assert refused >= 5  # technical, teacher, leader, no role, stranger tapping "Hợp lệ"


async def test_zalo_commands_by_role(world: World) -> None:
    request = world.request
    for role in [*ROLES, None]:
        user = ZALO_USER[role] if role is not None else STRANGER_ZALO
        todo = await world.zalo_says(user, "/danhsach")
        missing = await world.zalo_says(user, "/duyet 999999")  # a number that does not exist
        if role is None:  # not linked to anyone: told to link, nothing else
            assert "chưa liên kết" in todo and "chưa liên kết" in missing
            assert "/danhsach" in await _denied(f"zalo:{user}")
            continue
        if role in DESK:
            assert f"YC-{request.id}" in todo and NAME in todo, (role, todo)
            assert "Không có yêu cầu số 999999" in missing, (role, missing)
            continue
        # A teacher, a leader or someone without a role: no request, not even whether a number exists.
        assert not _reveals(todo, request), (role, todo)
        assert "999999" not in missing and ("chỉ dành cho" in missing or "chưa được cấp quyền" in missing), missing
        denied = await _denied(f"zalo:{user}")
        assert "/duyet" in denied, (role, denied)
        if not role:
            assert "chưa được cấp quyền" in todo and "/danhsach" in denied
        else:
            assert "Không có việc nào đang chờ" in todo, (role, todo)
        for command in ("/tuchoi 999999 sai", "/bosung 999999 thiếu", "/capphat 999999"):
            assert "999999" not in await world.zalo_says(user, command)
    assert (await Request.get(id=request.id)).state == "received"
