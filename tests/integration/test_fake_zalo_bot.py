"""The fake Zalo Bot Platform through plain aiohttp calls: getMe, polling, webhooks, text limits, refusals."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.zalo_bot import DEFAULT_TOKEN, FakeZaloBot

USER = "6ede9afa66b88fe6d6a9"
SECRET = "edudesk-webhook-secret"


async def call(fake: FakeZaloBot, method: str, token: str | None = None, **params: Any) -> tuple[int, dict[str, Any]]:
    """POST one method as JSON the way the adapter will; (HTTP status, body)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{fake.url}/bot{token or fake.token}/{method}", json=params) as resp:
            return resp.status, dict(await resp.json())


@pytest.fixture
async def fake() -> AsyncIterator[FakeZaloBot]:
    """A started fake with quick webhook retries and a short webhook timeout."""
    async with FakeZaloBot(webhook_retry=(0.02, 0.1), webhook_timeout=0.5) as started:
        yield started
        assert started.errors == [], started.errors


@dataclass
class Receiver:
    """A webhook endpoint: what it got, and how it answers (statuses to answer first, a delay)."""

    url: str = ""
    got: list[tuple[dict[str, Any], dict[str, str]]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    delay: float = 0.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A tiny server on 127.0.0.1 playing our webhook."""
    hook = Receiver()

    async def handle(request: web.Request) -> web.Response:
        hook.got.append((json.loads(await request.text()), dict(request.headers)))
        if hook.delay:
            await asyncio.sleep(hook.delay)
        return web.Response(status=hook.answers.pop(0) if hook.answers else 200, text="ok")

    app = web.Application()
    app.router.add_post("/zalo/webhook", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook.url = f"http://127.0.0.1:{runner.addresses[0][1]}/zalo/webhook"
    yield hook
    await runner.cleanup()


async def test_get_me_names_the_bot_of_the_token(fake: FakeZaloBot) -> None:
    status, body = await call(fake, "getMe")
    assert status == 200 and body["ok"] is True
    assert body["result"] == {"id": DEFAULT_TOKEN.split(":")[0], "account_name": "bot.EduDesk",
                              "account_type": "BASIC", "can_join_groups": False}
    async with aiohttp.ClientSession() as http:  # GET and query strings work too
        async with http.get(f"{fake.url}/bot{fake.token}/getMe") as resp:
            assert (await resp.json())["ok"] is True


async def test_wrong_token_and_wrong_method_names_are_refused(fake: FakeZaloBot) -> None:
    fake.add_user(USER)
    status, body = await call(fake, "sendMessage", token="1459232241454765289:wrong", chat_id=USER, text="hi")
    assert status == 401 and body["ok"] is False and body["error_code"] == 401
    assert fake.sent == [] and [r.kind for r in fake.refused] == ["unauthorized"]
    status, body = await call(fake, "sendmessage", chat_id=USER, text="hi")  # names are case-sensitive
    assert status == 400 and body["error_code"] == 400 and fake.sent == []


async def test_get_updates_hands_out_injected_texts_one_per_call_in_order(fake: FakeZaloBot) -> None:
    for text in ("một", "hai", "ba"):
        fake.inject_text(USER, text, display_name="Nguyễn Văn An")
    results = [(await call(fake, "getUpdates", timeout="1"))[1]["result"] for _ in range(3)]
    assert [r["message"]["text"] for r in results] == ["một", "hai", "ba"]
    first = results[0]
    assert first["event_name"] == "message.text.received"
    message = first["message"]
    assert message["from"] == {"id": USER, "display_name": "Nguyễn Văn An", "is_bot": False}
    assert message["chat"] == {"id": USER, "chat_type": "PRIVATE"}
    assert re.fullmatch(r"[0-9a-f]{20}", message["message_id"])
    assert abs(message["date"] - time.time() * 1000) < 5000  # milliseconds
    started = time.monotonic()
    status, body = await call(fake, "getUpdates", timeout=0.2)  # nothing left: the long poll times out
    assert time.monotonic() - started >= 0.2
    assert status == 408 and body == {"ok": False, "error_code": 408, "description": "Request timeout"}


async def test_long_poll_wakes_when_a_user_writes(fake: FakeZaloBot) -> None:
    started = time.monotonic()
    async with asyncio.timeout(2), asyncio.TaskGroup() as group:
        poll = group.create_task(call(fake, "getUpdates", timeout=10))
        await asyncio.sleep(0.2)
        assert not poll.done()
        fake.inject_text(USER, "Xin chào")
    status, body = poll.result()
    assert status == 200 and body["result"]["message"]["text"] == "Xin chào"
    assert time.monotonic() - started < 2
    assert fake.pending_updates == []


async def test_webhook_gets_each_event_with_the_secret_and_polling_is_refused(
        fake: FakeZaloBot, receiver: Receiver) -> None:
    async with asyncio.timeout(2), asyncio.TaskGroup() as group:
        poll = group.create_task(call(fake, "getUpdates", timeout=10))
        await asyncio.sleep(0.1)
        status, body = await call(fake, "setWebhook", url=receiver.url, secret_token=SECRET)
    assert status == 200 and body["result"]["url"] == receiver.url and body["result"]["updated_at"] > 10**12
    assert poll.result()[0] == 400  # the long poll in progress ends, refused
    assert (await call(fake, "getWebhookInfo"))[1]["result"]["url"] == receiver.url
    fake.inject_text(USER, "đơn xin nghỉ")
    fake.inject_text(USER, "lần hai")
    await fake.wait_for(lambda: len(receiver.got) == 2)
    body, headers = receiver.got[0]
    assert headers["X-Bot-Api-Secret-Token"] == SECRET
    assert body["ok"] is True and body["result"]["event_name"] == "message.text.received"
    assert [b["result"]["message"]["text"] for b, _ in receiver.got] == ["đơn xin nghỉ", "lần hai"]
    status, body = await call(fake, "getUpdates", timeout=0)
    assert status == 400 and body["description"] == "You cannot use this API while a webhook is set"
    assert [r.kind for r in fake.refusals("webhook_set")] == ["webhook_set", "webhook_set"]


async def test_set_webhook_wants_https_and_a_secret_of_8_to_256_characters(fake: FakeZaloBot) -> None:
    for url, secret in [("https://edu.example.vn/zalo", "x" * 7), ("https://edu.example.vn/zalo", "x" * 257),
                        ("http://edu.example.vn/zalo", SECRET), ("https://edu.example.vn/zalo", None)]:
        status, _ = await call(fake, "setWebhook", url=url, secret_token=secret)
        assert status == 400, (url, secret)
    assert fake.webhook is None
    for secret in ("x" * 8, "x" * 256):
        assert (await call(fake, "setWebhook", url="https://edu.example.vn/zalo", secret_token=secret))[0] == 200


async def test_a_failing_or_slow_webhook_is_retried_later_in_order(fake: FakeZaloBot, receiver: Receiver) -> None:
    receiver.answers = [500, 503]
    await call(fake, "setWebhook", url=receiver.url, secret_token=SECRET)
    fake.inject_text(USER, "một")
    fake.inject_text(USER, "hai")
    await fake.wait_for(lambda: len(receiver.got) == 4)
    assert [b["result"]["message"]["text"] for b, _ in receiver.got] == ["một", "một", "một", "hai"]
    assert [f.status for f in fake.webhook_failures] == [500, 503]
    assert fake.webhook_failures[1].time - fake.webhook_failures[0].time >= 0.02  # backed off, not hammered
    receiver.delay = 1.0  # slower than the fake's 0.5 s webhook timeout: a failure, then retried
    fake.inject_text(USER, "ba")
    await fake.wait_for(lambda: len(fake.webhook_failures) == 3, timeout=3)
    assert fake.webhook_failures[-1].status is None and "0.5 s" in fake.webhook_failures[-1].error
    receiver.delay = 0.0
    await fake.wait_for(lambda: fake.webhook_deliveries[-1].status == 200
                        and fake.webhook_deliveries[-1].update["message"]["text"] == "ba", timeout=3)
    assert fake.pending_updates == [] and fake.dropped_updates == []


async def test_delete_webhook_returns_to_polling_with_what_was_not_delivered(
        fake: FakeZaloBot, receiver: Receiver) -> None:
    receiver.answers = [500] * 100
    await call(fake, "setWebhook", url=receiver.url, secret_token=SECRET)
    fake.inject_text(USER, "chưa tới")
    await fake.wait_for(lambda: fake.webhook_failures)
    status, body = await call(fake, "deleteWebhook")
    assert status == 200 and body["result"]["url"] == ""
    assert (await call(fake, "getWebhookInfo"))[1]["result"]["url"] == ""
    status, body = await call(fake, "getUpdates", timeout=1)
    assert status == 200 and body["result"]["message"]["text"] == "chưa tới"


async def test_send_message_takes_1_to_2000_characters(fake: FakeZaloBot) -> None:
    fake.inject_text(USER, "Xin chào")
    assert (await call(fake, "sendMessage", chat_id=USER, text=""))[0] == 400
    assert (await call(fake, "sendMessage", chat_id=USER))[0] == 400
    status, body = await call(fake, "sendMessage", chat_id=USER, text="ệ" * 2000)
    assert status == 200 and re.fullmatch(r"[0-9a-f]{20}", body["result"]["message_id"])
    assert body["result"]["date"] > 10**12
    status, body = await call(fake, "sendMessage", chat_id=USER, text="ệ" * 2001)
    assert status == 400 and body["ok"] is False and "2001" in body["description"]
    assert [(m.chat_id, m.text) for m in fake.sent] == [(USER, "ệ" * 2000)]
    assert fake.sent[0].time == pytest.approx(time.time(), abs=5)
    assert [r.kind for r in fake.refused] == ["text_empty", "text_empty", "text_too_long"]
    assert fake.bot_texts(USER) == ["ệ" * 2000]
    assert [m.from_bot for m in fake.messages(USER)] == [False, True]


async def test_buttons_and_formatting_are_refused(fake: FakeZaloBot) -> None:
    fake.add_user(USER)
    keyboard = {"inline_keyboard": [[{"text": "Duyệt", "callback_data": "approve:12"}]]}
    for extra in ({"reply_markup": keyboard}, {"buttons": [{"title": "Duyệt"}]}, {"parse_mode": "HTML"}):
        status, body = await call(fake, "sendMessage", chat_id=USER, text="Yêu cầu #12", **extra)
        assert status == 400 and "not supported" in body["description"], extra
    assert fake.sent == [] and len(fake.refusals("markup")) == 3


async def test_unknown_and_blocked_users_cannot_be_written_to(fake: FakeZaloBot) -> None:
    status, _ = await call(fake, "sendMessage", chat_id="0000aaaa0000aaaa0000", text="hi")
    assert status == 400 and fake.refusals("unknown_chat")
    fake.inject_text(USER, "hi")
    fake.block_user(USER)
    status, body = await call(fake, "sendMessage", chat_id=USER, text="Nhắc ký hồ sơ")
    assert status == 403 and body["error_code"] == 403 and fake.refusals("blocked")
    fake.block_user(USER, blocked=False)
    assert (await call(fake, "sendMessage", chat_id=USER, text="Nhắc ký hồ sơ"))[0] == 200
    assert fake.bot_texts(USER) == ["Nhắc ký hồ sơ"]


async def test_photo_chat_action_other_events_and_injected_quota_errors(fake: FakeZaloBot) -> None:
    fake.inject_image(USER, "https://photo.example/1.jpg", caption="giấy tờ")
    fake.inject_sticker(USER)
    fake.inject_unsupported(USER)
    names = [(await call(fake, "getUpdates", timeout=1))[1]["result"] for _ in range(3)]
    assert [n["event_name"] for n in names] == ["message.image.received", "message.sticker.received",
                                                "message.unsupported.received"]
    assert names[0]["message"]["photo"] == "https://photo.example/1.jpg" and "text" not in names[2]["message"]
    assert (await call(fake, "sendPhoto", chat_id=USER, photo="https://edu.example.vn/a.png", caption="Ảnh"))[0] == 200
    assert (await call(fake, "sendPhoto", chat_id=USER, photo="https://x/a.png", caption="c" * 2001))[0] == 400
    assert (await call(fake, "sendChatAction", chat_id=USER, action="typing")) == (200, {"ok": True})
    assert (await call(fake, "sendChatAction", chat_id=USER, action="dancing"))[0] == 400
    fake.fail_next("sendMessage", 429, "Quota exceeded")
    assert (await call(fake, "sendMessage", chat_id=USER, text="a"))[0] == 429
    assert (await call(fake, "sendMessage", chat_id=USER, text="a"))[0] == 200
    assert [m.method for m in fake.sent] == ["sendPhoto", "sendMessage"] and fake.chat_actions == [(USER, "typing")]
