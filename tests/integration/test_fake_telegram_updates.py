"""The fake Telegram Bot API against the real aiogram Bot: getUpdates long polling, a Dispatcher, webhooks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
)
from aiogram.filters import Command
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.fakes.telegram import FakeTelegram, fake_and_bot, fake_telegram_bot_fixture, fake_telegram_fixture  # noqa: F401 - fixtures

CHAT = 1001


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    """One row of callback buttons (text, data)."""
    return InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in buttons]])


@pytest.fixture
def bot(fake_telegram_bot: Bot) -> Bot:
    """The real aiogram Bot on the default fake."""
    return fake_telegram_bot


@asynccontextmanager
async def receiver(statuses: list[int]) -> AsyncIterator[tuple[str, list[tuple[dict[str, str], Any]]]]:
    """A small webhook receiver answering the given statuses in turn (then 200); yields its URL and what came."""
    seen: list[tuple[dict[str, str], Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((dict(request.headers), await request.json()))
        status = statuses.pop(0) if statuses else 200
        return web.json_response({}, status=status)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", seen
    finally:
        await runner.cleanup()


# ---- long polling --------------------------------------------------------------------------------------------


async def test_get_updates_offset_limit_and_long_poll(fake_telegram: FakeTelegram, bot: Bot) -> None:
    for n in range(3):
        fake_telegram.inject_message(CHAT, CHAT, f"m{n}")
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first if u.message] == ["m0", "m1"]
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["m2"]
    assert len(fake_telegram.pending_updates) == 1
    loop = asyncio.get_running_loop()
    loop.call_later(0.1, fake_telegram.inject_message, CHAT, CHAT, "late")
    started = loop.time()
    late = await bot.get_updates(offset=rest[-1].update_id + 1, timeout=5)
    assert [u.message.text for u in late if u.message] == ["late"] and loop.time() - started < 1.0
    assert await bot.get_updates(offset=late[-1].update_id + 1, allowed_updates=["callback_query"]) == []
    fake_telegram.inject_message(CHAT, CHAT, "filtered out")
    assert fake_telegram.pending_updates == [] and fake_telegram.dropped_updates


async def test_dispatcher_polling_handles_message_and_callback() -> None:
    router = Router()

    @router.message(Command("start"))
    async def start(message: Message) -> None:
        await message.answer("Choose", reply_markup=keyboard(("Accept", "accept"), ("Reject", "reject")))

    @router.callback_query(F.data == "accept")
    async def accept(callback: CallbackQuery) -> None:
        assert isinstance(callback.message, Message)
        await callback.message.edit_text(f"Accepted by {callback.from_user.first_name}")
        await callback.answer("Done", show_alert=True)

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    async with fake_and_bot(chat_limit=(5, 1.0)) as (fake, client):
        polling = asyncio.get_running_loop().create_task(
            dispatcher.start_polling(client, handle_signals=False, close_bot_session=False, polling_timeout=1)
        )
        try:
            fake.inject_message(CHAT, CHAT, "/start", first_name="Minh")
            sent = await fake.wait_for(lambda: fake.sent_calls("sendMessage", CHAT), timeout=3)
            assert sent[0].text == "Choose"
            query_id = fake.press(CHAT, CHAT, "Accept")
            answer = await fake.wait_for(lambda: fake.answers.get(query_id), timeout=3)
            assert answer.text == "Done" and answer.show_alert is True
            assert fake.messages(CHAT)[-1].text == "Accepted by Test" and fake.messages(CHAT)[-1].edited
            getupdates = [r for r in fake.requests_log if r.method == "getUpdates"]
            assert sorted(json.loads(getupdates[0].params["allowed_updates"])) == ["callback_query", "message"]
        finally:
            await dispatcher.stop_polling()
            await polling


async def test_second_poller_terminates_the_first(fake_telegram: FakeTelegram, bot: Bot) -> None:
    first = asyncio.get_running_loop().create_task(bot.get_updates(timeout=3))
    await fake_telegram.wait_for(lambda: fake_telegram.waiting_polls == 1, timeout=2)
    assert await bot.get_updates() == []
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first


# ---- webhooks ------------------------------------------------------------------------------------------------


async def test_webhook_delivery_with_secret_and_retries(fake_telegram: FakeTelegram, bot: Bot) -> None:
    async with receiver([500]) as (url, seen):
        with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
            await bot.set_webhook(url, secret_token="no spaces allowed")
        fake_telegram.inject_message(CHAT, CHAT, "queued before the webhook")
        assert await bot.set_webhook(url, secret_token="s3cret_-X")
        fake_telegram.inject_message(CHAT, CHAT, "after")
        await fake_telegram.wait_for(lambda: len(seen) == 3 and not fake_telegram.pending_updates, timeout=3)
        assert [body["message"]["text"] for _, body in seen] == ["queued before the webhook"] * 2 + ["after"]
        assert all(headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret_-X" for headers, _ in seen)
        assert [(d.attempt, d.status) for d in fake_telegram.webhook_deliveries] == [(1, 500), (2, 200), (1, 200)]
        info = await bot.get_webhook_info()
        assert info.url == url and info.pending_update_count == 0
        assert info.last_error_message and "500" in info.last_error_message
        with pytest.raises(TelegramConflictError, match="can't use getUpdates method while webhook is active"):
            await bot.get_updates()
        assert await bot.delete_webhook()
        fake_telegram.inject_message(CHAT, CHAT, "polled again")
        assert [u.message.text for u in await bot.get_updates() if u.message] == ["polled again"]


async def test_webhook_to_aiogram_handler_and_reply_in_response() -> None:
    router = Router()

    @router.message(Command("ping"))
    async def ping(message: Message) -> Any:
        return message.answer("pong")

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    async with fake_and_bot() as (fake, client):
        app = web.Application()
        SimpleRequestHandler(dispatcher, client, secret_token="hook-secret", handle_in_background=False).register(
            app, path="/tg"
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            url = f"http://127.0.0.1:{runner.addresses[0][1]}/tg"
            await client.set_webhook(url, secret_token="hook-secret")
            fake.inject_message(CHAT, CHAT, "/ping")
            await fake.wait_for(lambda: fake.sent_calls("sendMessage"), timeout=3)
            assert [m.text for m in fake.bot_messages(CHAT)] == ["pong"]
            assert fake.requests_log[-1].via == "webhook"
            await client.set_webhook(url, secret_token="wrong-secret")
            fake.inject_message(CHAT, CHAT, "/ping")
            await fake.wait_for(lambda: fake.webhook_deliveries[-1].status == 401, timeout=3)
            await client.delete_webhook(drop_pending_updates=True)
            assert fake.pending_updates == []
        finally:
            await runner.cleanup()


async def test_unreachable_webhook_is_retried_then_the_update_dropped() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with fake_and_bot(webhook_retry=(0.01, 0.02), webhook_max_attempts=3) as (fake, client):
        await client.set_webhook(f"http://127.0.0.1:{port}/nobody")
        update = fake.inject_message(CHAT, CHAT, "lost")
        await fake.wait_for(lambda: fake.dropped_updates, timeout=2)
        assert [(d.attempt, d.status) for d in fake.webhook_deliveries] == [(1, None), (2, None), (3, None)]
        assert fake.dropped_updates[0]["update_id"] == update["update_id"]
        info = await client.get_webhook_info()
        assert info.pending_update_count == 0 and "Connection failed" in (info.last_error_message or "")
