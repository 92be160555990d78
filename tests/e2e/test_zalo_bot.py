"""Zalo Bot Platform end to end, against the fake platform (no buttons, 2,000 characters): a teacher links
their Zalo account with a one-time code, gets the sign-now message there, sends /ky and the signatures
land; an office member approves one request with /duyet N and another with the one-time link on the card,
and a replayed link does nothing (audited). Real database, jobs, signatures and web console."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edudesk.app import App
from edudesk.core.intake.domain import Population
from edudesk.core.models import AuditEvent
from edudesk.core.people.chatlinks import issue_link_code
from edudesk.core.people.models import Staff
from edudesk.core.people.registry import import_registry
from edudesk.core.requests.models import Request
from edudesk.core.signing.models import SignatureStep, Teacher
from edudesk.core.signing.pki import DemoPki
from tests.conftest import wait_until
from tests.fakes.zalo_bot import FakeZaloBot
from tests.mails import registry_xlsx, student_form_mail
from tests.records_kit import RecordsKit, records_settings, small_roster

pytestmark = [pytest.mark.db, pytest.mark.slow]

TEACHER_ZALO, OFFICE_ZALO = "7310000000000000001", "7310000000000000002"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    app: App
    fake: FakeZaloBot
    kit: RecordsKit
    office: Staff
    console: str

    async def say(self, user: str, text: str) -> str:
        """The person writes to the bot; the bot's next answer to them."""
        before = len(self.fake.bot_texts(user))
        self.fake.inject_text(user, text)

        def answer() -> str | None:  # the answer, not a card or a card's update that may come first
            return next((t for t in self.fake.bot_texts(user)[before:] if not t.startswith("YC-")), None)
        return str(await self.fake.wait_for(answer, 15.0))

    async def link(self, user: str, staff_id: int) -> None:
        code = await issue_link_code(staff_id, "zalo", self.app.settings, self.app.clock, issued_by="test")
        answer = await self.say(user, f"/lienket {code}")
        assert answer.startswith("✓ Đã liên kết"), answer


@pytest.fixture
async def world(app_factory: Any, settings_factory: Any, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    fake = FakeZaloBot()
    await fake.start()
    port = free_port()
    monkeypatch.setenv("EDUDESK_ZALO_BOT_TOKEN", fake.token)
    monkeypatch.setenv("EDUDESK_TEST_ISSUER_PASS", "issuer-pass")
    pki = DemoPki.create()
    settings = settings_factory(
        records=records_settings(tmp_path, pki, notice_delay_seconds=0.2),
        web={"enabled": True, "port": port, "public_url": f"http://127.0.0.1:{port}"},
        zalo={"enabled": True, "api": "bot", "mode": "polling", "api_base": fake.url, "messages_per_second": 50})
    app: App = await app_factory(settings, inline_analysis=True)
    await import_registry(registry_xlsx(tmp_path / "sv.xlsx", [
        ("20201234", "Nguyễn Văn An", "05/03/2003", "CNTT-01 K65", ""),
        ("20205678", "Trần Thị Bình", "07/08/2003", "CNTT-02 K65", "")]), Population.STUDENT, settings, app.clock)
    kit = RecordsKit(app, pki, app.clock, small_roster(3))  # type: ignore[arg-type]
    await kit.load()
    office = await Staff.create(name="Lê Văn Phòng", email="phong@hust.edu.vn", roles=["office"],
                                notify_via="zalo", created_at=app.clock.now())
    for user in (TEACHER_ZALO, OFFICE_ZALO):
        fake.add_user(user)
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    await wait_until(lambda: _up(port), 10.0)
    yield World(app, fake, kit, office, f"http://127.0.0.1:{port}")
    app.worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await fake.stop()


async def _up(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


async def test_teacher_linked_on_zalo_signs_in_the_console_with_the_pin(world: World) -> None:
    from edudesk.core.signing.models import SignSession
    from edudesk.core.signing.spec import Stage
    from tests.records_kit import PIN

    kit, fake = world.kit, world.fake
    teacher = await Teacher.get(code="GV01")
    assert teacher.staff_id is not None
    assert "chưa liên kết" in await world.say(TEACHER_ZALO, "/ky")
    await world.link(TEACHER_ZALO, teacher.staff_id)
    await kit.app.records.start_class(kit.class_id)
    notice = await fake.wait_for(lambda: next((t for t in fake.bot_texts(TEACHER_ZALO) if "Mời Thầy/Cô ký" in t),
                                              None), 15.0)
    assert "10A1" in notice and "Toán, Tin học" in notice and "mã PIN" in notice
    page = f"{world.console}/records?class={kit.class_id}&stage=1"
    assert f"Ký ngay: {page}#turns" in notice  # the key is held by the server: the button only opens the page
    assert f"{world.console}/a/" not in notice and "/ky 10A1" not in notice
    assert len(notice) <= 2000 and "<b>" not in notice
    answer = await world.say(TEACHER_ZALO, "/ky")
    assert "mã PIN" in answer and page in answer and "Đang ký" not in answer, answer
    assert not await SignSession.exists(), "a chat command never signs with a key the server holds"
    await kit.app.records.start_signing(await kit.actor("GV01"), kit.class_id, Stage.SUBJECT, pin=PIN)  # the console
    await wait_until(lambda: _signed("gvbm_gv01", 3), 60.0)
    assert "Không có học bạ nào đang chờ" in await world.say(TEACHER_ZALO, "/ky")
    assert len([t for t in fake.bot_texts(TEACHER_ZALO) if "Mời Thầy/Cô ký" in t]) == 1, "one sign-now message"
    assert not [r for r in fake.refused if r.method == "sendMessage"], fake.refused


async def _signed(field: str, count: int) -> bool:
    return await SignatureStep.filter(field=field, state="signed").count() == count


async def test_office_approves_with_a_command_and_with_the_one_time_link(world: World,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    app, fake = world.app, world.fake
    await world.link(OFFICE_ZALO, world.office.id)
    for sid, name, mid in (("20201234", "Nguyễn Văn An", "<z1@gmail.com>"),
                           ("20205678", "Trần Thị Bình", "<z2@gmail.com>")):
        await app.ledger.store(student_form_mail(name=name, sid=sid, message_id=mid), source="smtp")
    cards = await fake.wait_for(lambda: [t for t in fake.bot_texts(OFFICE_ZALO) if "YC-" in t and "/duyet" in t]
                                if len([t for t in fake.bot_texts(OFFICE_ZALO) if "/duyet" in t]) >= 2 else None, 20.0)
    first, second = sorted(await Request.all().order_by("id"), key=lambda r: r.id)
    card = next(t for t in cards if f"/duyet {first.id}" in t)
    assert f"/tuchoi {first.id} <lý do>" in card and len(card) <= 2000

    # /duyet N
    answer = await world.say(OFFICE_ZALO, f"/duyet {first.id}")
    assert answer == f"✓ YC-{first.id}: đã ghi nhận «Hợp lệ».", answer
    assert (await Request.get(id=first.id)).state == "approved"
    assert "đã" in await world.say(OFFICE_ZALO, f"/duyet {first.id}")  # twice: the service says who acted

    # The one-time link on the second card: GET shows, POST acts, a second POST is refused.
    card = next(t for t in fake.bot_texts(OFFICE_ZALO) if f"/duyet {second.id}" in t)
    link = next(w for w in card.split() if w.startswith(f"{world.console}/a/"))
    token = link.rsplit("/", 1)[1]
    async with aiohttp.ClientSession() as http:
        async with http.get(link) as page:
            assert page.status == 200 and f"YC-{second.id}" in await page.text()
        assert (await Request.get(id=second.id)).state == "received"  # looking does not act
        form = {"token": token}
        async with http.post(f"{world.console}/a/", data=form, headers={"Origin": world.console}) as done:
            assert "Đã thực hiện" in await done.text()
        assert (await Request.get(id=second.id)).state == "approved"
        async with http.post(f"{world.console}/a/", data=form, headers={"Origin": world.console}) as again:
            assert "đã được dùng" in await again.text()
        async with http.get(f"{world.console}/a/not-a-real-token") as forged:
            assert forged.status == 404
    assert token not in caplog.text, "the access log shows /a/…, never the token"
    refused = [e.detail["reason"] for e in await AuditEvent.filter(action="action_token_refused")]
    assert refused == ["replayed", "forged"]
    used = await AuditEvent.filter(action="action_token_used")
    assert [e.detail["target"] for e in used] == [second.id]
    approvals = await AuditEvent.filter(request_id=second.id, actor__startswith="Lê Văn Phòng (link:").count()
    assert approvals == 1, "the link acted as its owner, once"


async def test_unlinked_people_and_wrong_codes(world: World) -> None:
    assert "chưa liên kết" in await world.say("7319999999999999999", "/duyet 1")
    for _ in range(5):
        assert "không đúng" in await world.say("7319999999999999999", "/lienket 000000")
    assert "quá nhiều lần" in await world.say("7319999999999999999", "/lienket 123456")
    assert "quá nhiều lần" in await world.say("7319999999999999999", "/lienket ai.do@example.com")
    answer = await world.say("7318888888888888888", "/lienket ai.do@example.com")
    assert "Nếu đây là địa chỉ e-mail" in answer  # the same answer for unknown addresses


async def test_a_code_mailed_to_the_institutional_address_links_the_account(world: World) -> None:
    import email
    import re

    from edudesk.core.requests.models import OutgoingMail

    answer = await world.say(OFFICE_ZALO, "/lienket Phong@HUST.edu.vn")
    assert "Nếu đây là địa chỉ e-mail" in answer
    await wait_until(lambda: OutgoingMail.filter(template="link_code", recipient="phong@hust.edu.vn",
                                                 state="sent").exists(), 15.0)
    outbox = world.app.settings.path(world.app.settings.outgoing.maildir)
    [raw] = [f.read_bytes() for f in outbox.rglob("*") if f.is_file() and b"/lienket" in f.read_bytes()]
    message = email.message_from_bytes(raw)
    text = next(part.get_payload(decode=True).decode() for part in message.walk()
                if part.get_content_type() == "text/plain")
    code = re.search(r"/lienket (\d{6})", text)
    assert code, text
    answer = await world.say(OFFICE_ZALO, f"/lienket {code.group(1)}")
    assert answer.startswith("✓ Đã liên kết tài khoản Zalo với Lê Văn Phòng"), answer


async def test_a_blocked_zalo_chat_falls_back_to_e_mail(world: World) -> None:
    from edudesk.core.requests.models import OutgoingMail

    kit, fake = world.kit, world.fake
    teacher = await Teacher.get(code="GV01")
    assert teacher.staff_id is not None
    await world.link(TEACHER_ZALO, teacher.staff_id)
    fake.block_user(TEACHER_ZALO)
    staff = await Staff.get(id=teacher.staff_id)
    mails = OutgoingMail.filter(template="chat_notice", recipient=staff.email)
    before = await mails.count()
    await kit.app.records.start_class(kit.class_id)
    await wait_until(lambda: _more(mails, before), 20.0)
    assert fake.refusals("blocked"), "Zalo was tried first"
    assert not [t for t in fake.bot_texts(TEACHER_ZALO) if "Mời Thầy/Cô ký" in t]


async def _more(query: Any, before: int) -> bool:
    return await query.count() > before


async def test_webhook_mode_checks_the_secret(app_factory: Any, settings_factory: Any, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeZaloBot()
    await fake.start()
    port = free_port()
    monkeypatch.setenv("EDUDESK_ZALO_BOT_TOKEN", fake.token)
    monkeypatch.setenv("EDUDESK_ZALO_WEBHOOK_SECRET", "bi-mat-cua-webhook-123")
    settings = settings_factory(web={"enabled": False}, zalo={
        "enabled": True, "api": "bot", "mode": "webhook", "api_base": fake.url, "webhook_port": port,
        "webhook_url": f"http://127.0.0.1:{port}/zalo/webhook"})
    app: App = await app_factory(settings, inline_analysis=True)
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    try:
        await fake.wait_for(lambda: fake.webhook is not None, 10.0)
        assert fake.webhook and fake.webhook["secret_token"] == "bi-mat-cua-webhook-123"
        fake.add_user(OFFICE_ZALO)
        fake.inject_text(OFFICE_ZALO, "/giup")
        await fake.wait_for(lambda: any("/duyet" in t for t in fake.bot_texts(OFFICE_ZALO)), 15.0)
        assert all(d.headers.get("X-Bot-Api-Secret-Token") == "bi-mat-cua-webhook-123"
                   for d in fake.webhook_deliveries)
        async with aiohttp.ClientSession() as http:
            body = {"ok": True, "result": {"event_name": "message.text.received", "message": {
                "from": {"id": OFFICE_ZALO}, "chat": {"id": OFFICE_ZALO}, "text": "/duyet 1", "message_id": "f"}}}
            async with http.post(f"http://127.0.0.1:{port}/zalo/webhook", json=body,
                                 headers={"X-Bot-Api-Secret-Token": "doan-bua"}) as response:
                assert response.status == 401
    finally:
        app.worker.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fake.stop()


async def test_one_office_member_blocking_the_bot_does_not_stop_the_others(world: World) -> None:
    from edudesk.core.chats.models import ChatCard
    from edudesk.core.models import Job

    app, fake = world.app, world.fake
    second = await Staff.create(name="Phạm Thu Hà", email="ha@hust.edu.vn", roles=["office"], notify_via="zalo",
                                created_at=app.clock.now())
    await world.link(OFFICE_ZALO, world.office.id)
    fake.add_user(TEACHER_ZALO)
    await world.link(TEACHER_ZALO, second.id)
    fake.block_user(TEACHER_ZALO)
    await app.ledger.store(student_form_mail(message_id="<zb3@gmail.com>"), source="smtp")
    await fake.wait_for(lambda: any("/duyet" in t for t in fake.bot_texts(OFFICE_ZALO)), 20.0)
    request = await Request.get()
    await wait_until(lambda: ChatCard.filter(surface="zalo", chat=TEACHER_ZALO, message_ref="refused").exists(), 10.0)
    await world.say(OFFICE_ZALO, f"/duyet {request.id}")
    await wait_until(lambda: _no_pending_cards(), 10.0)
    assert not await Job.filter(kind="refresh_cards", state="dead").exists()
    assert fake.refusals("blocked")


async def _no_pending_cards() -> bool:
    from edudesk.core.models import Job

    return not await Job.filter(kind="refresh_cards", state__in=["pending", "running"]).exists()


async def test_a_failed_answer_is_sent_again_without_running_the_command_again(world: World) -> None:
    fake = world.fake
    code = await issue_link_code(world.office.id, "zalo", world.app.settings, world.app.clock, issued_by="test")
    fake.fail_next("sendMessage", code=502, description="Bad Gateway", times=2)  # Zalo down for a moment
    answer = await world.say(OFFICE_ZALO, f"/lienket {code}")
    assert answer.startswith("✓ Đã liên kết"), answer  # not "wrong code": the link ran once
    assert await AuditEvent.filter(action="chat_linked").count() == 1
    assert not await AuditEvent.filter(action="chat_link_refused").exists()


async def test_one_person_in_two_roles_gets_each_roles_card(world: World) -> None:
    app, fake = world.app, world.fake
    await Staff.filter(id=world.office.id).update(roles=["office", "technical"])
    await world.link(OFFICE_ZALO, world.office.id)
    await app.ledger.store(student_form_mail(message_id="<zb4@gmail.com>"), source="smtp")
    await fake.wait_for(lambda: any("/duyet" in t for t in fake.bot_texts(OFFICE_ZALO)), 20.0)
    request = await Request.get()
    await world.say(OFFICE_ZALO, f"/duyet {request.id}")
    await fake.wait_for(lambda: any(f"/capphat {request.id}" in t for t in fake.bot_texts(OFFICE_ZALO)), 20.0)
