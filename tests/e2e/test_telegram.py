"""Mail in over SMTP -> card in the (fake) Telegram office chat -> approve -> card in the technical chat ->
provision -> "done" mail in the SMTP sink; with the real aiogram bot polling a fake Bot API server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.chats.models import ChatCard
from edudesk.core.intake.domain import Population
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.registry import import_registry
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import Request
from edudesk.core.requests.overdue import send_reminders
from tests.conftest import wait_until
from tests.e2e.test_smtp_intake import send
from tests.fakes.telegram import FakeTelegram
from tests.mails import mail, registry_xlsx, student_form_mail
from tests.servers.smtp_sink import SmtpSink

pytestmark = pytest.mark.db

OFFICE_CHAT, TECH_CHAT, HEAD_CHAT = -1001001, -1001002, -1001003
OFFICE_USER, TECH_USER, HEAD_USER, STRANGER = 101, 202, 303, 909


class Bot:
    """The app with its Telegram bot running against the fake, plus the SMTP sink."""

    def __init__(self, app: App, fake: FakeTelegram, sink: SmtpSink) -> None:
        self.app, self.fake, self.sink = app, fake, sink

    async def mail_in(self, raw: bytes) -> float:
        """Send a mail over SMTP; returns the moment the listener said 250."""
        assert self.app.smtp is not None
        await asyncio.to_thread(send, self.app.smtp.port, raw)
        return time.monotonic()

    async def card(self, chat: int, text: str, timeout: float = 10.0) -> Any:
        return await self.fake.wait_for(
            lambda: next((m for m in self.fake.bot_messages(chat) if text in m.text), None), timeout
        )

    async def tap(self, chat: int, user: int, label: str, **kwargs: Any) -> Any:
        """Press a button and wait for the bot's answer to the callback."""
        query = self.fake.press(chat, user, label, **kwargs)
        return await self.fake.wait_for(lambda: self.fake.answers.get(query), 5.0)


@pytest.fixture
async def bot(
    app_factory: Any, settings_factory: Any, smtp_sink: SmtpSink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Bot]:
    # Telegram's limits scaled down five-fold in time, on both sides, so the test runs in seconds.
    fake = FakeTelegram(chat_limit=(1, 0.2), group_limit=(20, 12.0))
    await fake.start()
    monkeypatch.setenv("EDUDESK_TELEGRAM_TOKEN", fake.token)
    settings = settings_factory(
        outgoing={"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": smtp_sink.port},
        web={"enabled": False},
        provisioning={"delivery": "mail"},  # no console here: the password comes in the result mail
        telegram={
            "enabled": True,
            "api_server": fake.url,
            "office_chat_id": OFFICE_CHAT,
            "technical_chat_id": TECH_CHAT,
            "head_chat_id": HEAD_CHAT,
            "rate_chat_seconds": 0.2,
            "rate_group_per_minute": 100.0,
        },
        roles={"office": [f"tg:{OFFICE_USER}"], "technical": [f"tg:{TECH_USER}"], "head": [f"tg:{HEAD_USER}"]},
    )
    app = await app_factory(settings, inline_analysis=False)  # the parser processes, as in production
    await app.analyser.start()  # as `edudesk run` does before it listens
    await import_registry(
        registry_xlsx(tmp_path / "sv.xlsx", [("20201234", "Nguyễn Văn An", "05/03/2003", "CNTT-01 K65", "")]),
        Population.STUDENT,
        settings,
        app.clock,
    )
    assert app.smtp is not None
    await app.smtp.start()
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    yield Bot(app, fake, smtp_sink)
    app.worker.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await fake.stop()


async def test_mail_to_card_to_approval_to_provisioning_to_done_mail(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    accepted = await bot.mail_in(student_form_mail(message_id="<tg-flow@gmail.com>"))
    card = await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    card_latency = time.monotonic() - accepted
    request = await Request.get()
    assert f"YC-{request.id}" in card.text and "an.nguyenvan@sis.hust.edu.vn" in card.text
    assert "✓" in card.text  # registry findings per field
    assert card_latency < 2.0, f"card reached the chat {card_latency:.2f} s after the 250"
    print(f"card in the office chat {card_latency * 1000:.0f} ms after the SMTP 250")

    tapped = time.monotonic()
    answer = await bot.tap(OFFICE_CHAT, OFFICE_USER, "Hợp lệ")
    assert answer.time - tapped < 1.0 and "Đã ghi nhận" in (answer.text or "")
    print(f"tap answered {(answer.time - tapped) * 1000:.0f} ms after it was made")
    tech_card = await bot.card(TECH_CHAT, f"YC-{request.id}")
    # The office card is edited in place: who approved, no buttons left.
    office = await bot.fake.wait_for(
        lambda: next(
            (m for m in bot.fake.bot_messages(OFFICE_CHAT) if m.message_id == card.message_id and "Hợp lệ —" in m.text),
            None,
        )
    )
    assert not office.buttons()

    answer = await bot.tap(TECH_CHAT, TECH_USER, "Cấp tài khoản", message_id=tech_card.message_id)
    assert "Đã ghi nhận" in (answer.text or "")
    done = await bot.sink.wait_for(lambda m: "Đã cấp tài khoản" in m.subject, timeout=15)
    body = done.message.get_body(("plain",)).get_content()
    assert "an.nguyenvan@sis.hust.edu.vn" in body
    password = body.split("Mật khẩu tạm thời: ")[1].split()[0]
    await wait_until(lambda: Request.filter(id=request.id, state="done").exists())
    await bot.fake.wait_for(lambda: any("Đã thực hiện" in m.text for m in bot.fake.bot_messages(TECH_CHAT)))

    actions = [e.action for e in await AuditEvent.filter(request_id=request.id).order_by("id")]
    for expected in ("mail_request_created", "request_approve", "request_provision", "request_provisioned"):
        assert expected in actions

    async def both_mails_sent() -> bool:
        return await AuditEvent.filter(request_id=request.id, action="mail_sent").count() == 2

    await wait_until(both_mails_sent)
    # The password is in the mail to the requester, and nowhere else.
    assert all(password not in t for t in bot.fake.all_texts())
    # (aiosmtpd's "mail.log" lines here are the sink's: the requester's mail server receiving the result.)
    assert password not in "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    assert password not in str([(e.actor, e.detail) for e in await AuditEvent.all()])
    assert password.encode() not in await database_dump(bot.app)
    assert bot.fake.count_429 == 0


async def database_dump(app: App) -> bytes:
    """Every row of every table, as the database hands it out."""
    from tortoise import Tortoise

    conn = Tortoise.get_connection("default")
    out = []
    for model in Tortoise.apps["models"].values():
        _, rows = await conn.execute_query(f'SELECT * FROM "{model._meta.db_table}"')
        out.append(repr([dict(r) for r in rows]).encode())
        for r in rows:
            out += [v for v in dict(r).values() if isinstance(v, bytes)]
    return b"\n".join(out)


async def test_a_tap_by_someone_without_the_role_is_refused_with_an_alert(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-role@gmail.com>"))
    await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    answer = await bot.tap(OFFICE_CHAT, STRANGER, "Hợp lệ")
    assert answer.show_alert and "không có quyền" in (answer.text or "")
    answer = await bot.tap(OFFICE_CHAT, TECH_USER, "Hợp lệ")
    assert answer.show_alert
    assert (await Request.get()).state == "received"
    assert await AuditEvent.filter(action="action_refused").count() == 2


async def test_forged_and_stale_callbacks_are_answered_and_change_nothing(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-forged@gmail.com>"))
    card = await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    request = await Request.get()
    for data in (f"t:approve:{request.id + 50}:0:0", "t:drop:1:0:0", "garbage-\u0000", f"t:approve:{request.id}:7:0"):
        query = bot.fake.inject_callback(OFFICE_CHAT, OFFICE_USER, card.message_id, data, check_button=False)
        answer = await bot.fake.wait_for(lambda q=query: bot.fake.answers.get(q), 5.0)
        assert answer.show_alert, data
    assert (await Request.get()).state == "received"
    assert await AuditEvent.filter(action="action_refused").count() == 4


async def test_two_office_members_tapping_at_once_exactly_one_wins(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-double@gmail.com>"))
    card = await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    await Staff.create(name="Phạm Thị Hai", telegram_id=102, roles=["office"], created_at=bot.app.clock.now())
    q1 = bot.fake.press(OFFICE_CHAT, OFFICE_USER, "Hợp lệ", message_id=card.message_id)
    q2 = bot.fake.press(OFFICE_CHAT, 102, "Hợp lệ", message_id=card.message_id)
    a1 = await bot.fake.wait_for(lambda: bot.fake.answers.get(q1), 5.0)
    a2 = await bot.fake.wait_for(lambda: bot.fake.answers.get(q2), 5.0)
    assert sorted([a1.show_alert, a2.show_alert]) == [False, True]
    loser = a1 if a1.show_alert else a2
    assert "đã được" in (loser.text or "")
    assert await AuditEvent.filter(action="request_approve").count() == 1


async def test_reject_with_a_preset_reason_mails_the_requester(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-reject@gmail.com>"))
    card = await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    await bot.tap(OFFICE_CHAT, OFFICE_USER, "Từ chối", message_id=card.message_id)
    reason = bot.app.settings.chat.reject_reasons[1]
    await bot.fake.wait_for(
        lambda: any(b.get("text") == reason for m in bot.fake.bot_messages(OFFICE_CHAT) for b in m.buttons())
    )
    await bot.tap(OFFICE_CHAT, OFFICE_USER, reason, message_id=card.message_id)
    rejected = await bot.sink.wait_for(lambda m: "chưa được chấp thuận" in m.subject, timeout=15)
    assert reason in rejected.message.get_body(("plain",)).get_content()
    assert (await Request.get()).state == "rejected"


async def test_typed_reason_for_more_information(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-typed@gmail.com>"))
    card = await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    await bot.tap(OFFICE_CHAT, OFFICE_USER, "Yêu cầu bổ sung", message_id=card.message_id)
    await bot.fake.wait_for(
        lambda: any(
            b.get("text") == "Nội dung khác…" for m in bot.fake.bot_messages(OFFICE_CHAT) for b in m.buttons()
        )
    )
    await bot.tap(OFFICE_CHAT, OFFICE_USER, "Nội dung khác…", message_id=card.message_id)
    prompt = await bot.card(OFFICE_CHAT, "nhập nội dung cần bổ sung")
    bot.fake.inject_message(
        OFFICE_CHAT, OFFICE_USER, "Đề nghị gửi ảnh thẻ sinh viên", reply_to_message_id=prompt.message_id
    )
    asked = await bot.sink.wait_for(lambda m: "bổ sung" in m.subject, timeout=15)
    assert "Đề nghị gửi ảnh thẻ sinh viên" in asked.message.get_body(("plain",)).get_content()
    assert (await Request.get()).state == "need_info"
    # The requester answers: the request re-opens, the office is told, and the card offers the buttons again.
    await bot.mail_in(mail(subject=f"Re: {asked.subject}", body="Em gửi bổ sung ảnh thẻ.",
                           headers={"In-Reply-To": asked.message["Message-ID"]}))
    await bot.card(OFFICE_CHAT, "người gửi đã bổ sung thông tin")
    await wait_until(lambda: Request.filter(state="received").exists())
    await bot.fake.wait_for(lambda: any(m.message_id == card.message_id and "Chờ kiểm tra" in m.text and m.buttons()
                                        for m in bot.fake.bot_messages(OFFICE_CHAT)))


async def test_overdue_reminder_then_escalation_to_the_head(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-late@gmail.com>"))
    await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    request = await Request.get()
    assert request.deadline is not None
    later = FakeClock(request.deadline + timedelta(minutes=5))
    assert await send_reminders(bot.app.settings, later, bot.app.queue) == (1, 0)
    assert await send_reminders(bot.app.settings, later, bot.app.queue) == (0, 0)  # once per step
    await bot.card(OFFICE_CHAT, "đã quá hạn")
    later.advance(timedelta(hours=bot.app.settings.chat.escalate_after_hours, minutes=-4))
    assert await send_reminders(bot.app.settings, later, bot.app.queue) == (0, 1)
    notice = await bot.card(HEAD_CHAT, f"YC-{request.id}")
    assert any(b.get("text") == "Giao lại" for b in notice.buttons())
    assert await AuditEvent.filter(action="request_escalated").count() == 1



async def test_commands_answer_staff_and_refuse_strangers(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-cmd@gmail.com>"))
    await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    request = await Request.get()
    bot.fake.inject_message(OFFICE_USER, OFFICE_USER, "/queue")
    await bot.card(OFFICE_USER, f"YC-{request.id}")
    bot.fake.inject_message(OFFICE_USER, OFFICE_USER, "/find nguyen van an")
    await bot.fake.wait_for(
        lambda: len([m for m in bot.fake.bot_messages(OFFICE_USER) if f"YC-{request.id}" in m.text]) == 2
    )
    bot.fake.inject_message(OFFICE_USER, OFFICE_USER, "/report")
    await bot.card(OFFICE_USER, "Hôm nay: nhận 1")
    bot.fake.inject_message(OFFICE_USER, OFFICE_USER, "/whoami")
    await bot.card(OFFICE_USER, "Văn phòng")
    bot.fake.inject_message(STRANGER, STRANGER, "/queue")
    await bot.card(STRANGER, "chưa được cấp quyền")
    refused = await AuditEvent.get(action="access_denied")
    assert refused.detail["what"] == "/queue" and refused.actor.endswith(f"(tg:{STRANGER})")
    assert await ChatCard.filter(chat=str(OFFICE_CHAT)).count() == 1


async def test_webhook_mode_takes_updates_pushed_with_the_secret_and_refuses_others(
    app_factory: Any, settings_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp

    from tests.servers.smtp_sink import free_port

    fake = FakeTelegram()
    await fake.start()
    port = free_port()
    monkeypatch.setenv("EDUDESK_TELEGRAM_TOKEN", fake.token)
    monkeypatch.setenv("EDUDESK_TELEGRAM_WEBHOOK_SECRET", "s3cret-webhook_token")
    url = f"http://127.0.0.1:{port}/telegram/webhook"
    settings = settings_factory(
        web={"enabled": False}, smtpd={"enabled": False},
        telegram={"enabled": True, "api_server": fake.url, "mode": "webhook", "webhook_url": url,
                  "webhook_port": port},
        roles={"office": [f"tg:{OFFICE_USER}"]},
    )
    app = await app_factory(settings, inline_analysis=True)
    task = asyncio.get_running_loop().create_task(app.supervisor().run())  # noqa: TID251 - test harness
    try:
        await fake.wait_for(lambda: fake.webhook and fake.webhook.get("url") == url)
        assert fake.webhook["secret_token"] == "s3cret-webhook_token"
        fake.inject_message(OFFICE_USER, OFFICE_USER, "/whoami")
        answer = await fake.wait_for(
            lambda: next((m for m in fake.bot_messages(OFFICE_USER) if "Văn phòng" in m.text), None))
        assert answer is not None
        assert [d.status for d in fake.webhook_deliveries] == [200]
        async with aiohttp.ClientSession() as http:
            forged = {"update_id": 99, "message": {"message_id": 1, "date": 0, "text": "/whoami",
                                                   "chat": {"id": 5, "type": "private"}}}
            async with http.post(url, json=forged, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}) as resp:
                assert resp.status == 401
            async with http.post(url, json=forged) as resp:
                assert resp.status == 401
        assert not fake.bot_messages(5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fake.stop()


async def test_only_a_reply_to_the_prompt_is_taken_as_the_typed_reason(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-prompt@gmail.com>"))
    card = await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    # A display name with HTML in it must not break the prompt (it is escaped).
    await bot.tap(OFFICE_CHAT, OFFICE_USER, "Từ chối", message_id=card.message_id)
    await bot.fake.wait_for(lambda: any(b.get("text") == "Lý do khác…" for m in bot.fake.bot_messages(OFFICE_CHAT)
                                        for b in m.buttons()))
    query = bot.fake.inject_callback(OFFICE_CHAT, OFFICE_USER, card.message_id,
                                     next(b["callback_data"] for m in bot.fake.bot_messages(OFFICE_CHAT)
                                          for b in m.buttons() if b.get("text") == "Lý do khác…"),
                                     first_name="Lan <3")
    await bot.fake.wait_for(lambda: bot.fake.answers.get(query))
    prompt = await bot.card(OFFICE_CHAT, "nhập lý do từ chối")
    assert prompt.text.startswith("Lan <3:")
    bot.fake.inject_message(OFFICE_CHAT, OFFICE_USER, "/queue")  # not a reply to the prompt
    bot.fake.inject_message(OFFICE_CHAT, OFFICE_USER, "ai ăn trưa không?")  # nor this
    await bot.card(OFFICE_CHAT, "Yêu cầu đang mở")  # /queue was answered as a command
    assert (await Request.get()).state == "received"
    bot.fake.inject_message(OFFICE_CHAT, OFFICE_USER, "Sai mẫu phiếu", reply_to_message_id=prompt.message_id)
    await wait_until(lambda: Request.filter(state="rejected").exists())
    rejected = await AuditEvent.get(action="request_reject")
    assert rejected.detail["reason"] == "Sai mẫu phiếu"


async def test_strangers_cannot_page_through_a_card_and_huge_ids_are_answered(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-page@gmail.com>"))
    card = await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    request = await Request.get()
    for user, data in ((STRANGER, f"t:page:{request.id}:0:0"), (OFFICE_USER, f"t:approve:{2**70}:0:0"),
                       (HEAD_USER, f"t:reassign:{request.id}:0:{2**64}")):
        query = bot.fake.inject_callback(OFFICE_CHAT, user, card.message_id, data, check_button=False)
        answer = await bot.fake.wait_for(lambda q=query: bot.fake.answers.get(q), 5.0)
        assert answer.show_alert, data
    assert (await Request.get()).state == "received"


async def test_a_new_form_in_a_reply_to_an_approved_request_goes_back_to_the_office(bot: Bot) -> None:
    await bot.mail_in(student_form_mail(message_id="<tg-swap@gmail.com>"))
    card = await bot.card(OFFICE_CHAT, "Nguyễn Văn An")
    ack = await bot.sink.wait_for(lambda m: "Đã tiếp nhận" in m.subject, timeout=15)
    await bot.tap(OFFICE_CHAT, OFFICE_USER, "Hợp lệ", message_id=card.message_id)
    await wait_until(lambda: Request.filter(state="approved").exists())
    swapped = student_form_mail(name="Trần Thị Bình", sid="20205678", message_id="<tg-swap-2@gmail.com>",
                                subject=f"Re: {ack.subject}", headers={"In-Reply-To": ack.message["Message-ID"]})
    await bot.mail_in(swapped)
    await bot.card(OFFICE_CHAT, "người gửi đã trả lời lại")
    request = await wait_until(lambda: Request.filter(state="received").first())
    from edudesk.core.requests.models import RequestPerson

    assert [p.full_name for p in await RequestPerson.filter(request_id=request.id)] == ["Trần Thị Bình"]
    # The card is back in the office's hands with the new person; the technical card lost its button.
    await bot.fake.wait_for(lambda: any(m.message_id == card.message_id and "Trần Thị Bình" in m.text and m.buttons()
                                        for m in bot.fake.bot_messages(OFFICE_CHAT)))
    await bot.fake.wait_for(lambda: all(not m.buttons() for m in bot.fake.bot_messages(TECH_CHAT)))


async def test_login_sends_a_one_time_web_link_in_private_only(bot: Bot) -> None:
    from edudesk.core.people.webauth import consume_login

    await bot.fake.wait_for(lambda: bot.fake.commands())
    assert {c["command"] for c in bot.fake.commands()} >= {"queue", "find", "report", "whoami", "login"}
    bot.fake.inject_message(OFFICE_CHAT, OFFICE_USER, "/login")
    await bot.card(OFFICE_CHAT, "hãy nhắn /login riêng cho bot")
    bot.fake.inject_message(OFFICE_USER, OFFICE_USER, "/login", first_name="Lê Văn Phòng")
    message = await bot.card(OFFICE_USER, "/login/")
    token = message.text.split("/login/")[1].split()[0]
    staff_id = await consume_login(token, bot.app.clock)
    assert (await Staff.get(id=staff_id)).telegram_id == OFFICE_USER
    bot.fake.inject_message(STRANGER, STRANGER, "/login")
    await bot.card(STRANGER, "chưa được cấp quyền")
    assert await AuditEvent.filter(action="web_login_link").count() == 1


def test_webhook_mode_refuses_to_start_without_a_secret(settings_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from edudesk.bot.telegram import TelegramBot
    from edudesk.core.errors import ConfigError

    monkeypatch.setenv("EDUDESK_TELEGRAM_TOKEN", "123456:TEST-TOKEN")
    monkeypatch.delenv("EDUDESK_TELEGRAM_WEBHOOK_SECRET", raising=False)
    settings = settings_factory(telegram={"enabled": True, "mode": "webhook", "webhook_url": "https://x/y"})
    with pytest.raises(ConfigError, match="EDUDESK_TELEGRAM_WEBHOOK_SECRET"):
        TelegramBot(settings, None, None)  # type: ignore[arg-type]
