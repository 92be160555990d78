"""A fake Telegram Bot API server on 127.0.0.1 that a real aiogram Bot talks to, and the `fake_telegram` fixture.

Point aiogram at it with `AiohttpSession(api=TelegramAPIServer.from_base(fake.url))` (or `fake.make_bot()`).
It speaks the wire format (form, multipart or JSON in; {"ok": ..., "result"/"error_code"} out), keeps chats and
messages, enforces Telegram's flood limits, long-polls getUpdates and delivers to webhooks. Tests inject user
messages and button presses with plain method calls and inspect what the bot sent.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from tests.fakes.server import FakeServer
from tests.fakes.telegram_format import ApiError, Params, command_entities
from tests.fakes.telegram_inspect import Inspection
from tests.fakes.telegram_limits import FloodControl, Limit
from tests.fakes.telegram_methods import BotApiMethods
from tests.fakes.telegram_types import (
    CallbackAnswer,
    ChatState,
    IssuedCallback,
    RequestRecord,
    SentCall,
    WebhookDelivery,
)
from tests.fakes.telegram_webhook import WebhookSender

__all__ = [
    "DEFAULT_TOKEN",
    "FakeTelegram",
    "FastAiohttpSession",
    "fake_and_bot",
    "fake_telegram_bot_fixture",
    "fake_telegram_fixture",
]

DEFAULT_TOKEN = "123456:TEST-TOKEN"
NOT_BY_DEFAULT = {"chat_member", "message_reaction", "message_reaction_count"}
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
POLL_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"


class FastAiohttpSession(AiohttpSession):
    """aiogram's AiohttpSession, minus the 0.25 s sleep in close() that is meant for TLS connections."""

    async def close(self) -> None:
        """Close the aiohttp session at once."""
        if self._session is not None and not self._session.closed:
            await self._session.close()


class FakeTelegram(FakeServer, BotApiMethods, WebhookSender, Inspection):
    """The fake Bot API server: state, HTTP front, update queue, webhook delivery, injection and inspection."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        global_limit: Limit = (30, 1.0),
        chat_limit: Limit = (1, 1.0),
        group_limit: Limit = (20, 60.0),
        callback_timeout: float | None = 15.0,
        strict_chats: bool = False,
        webhook_retry: tuple[float, float] = (0.05, 1.0),
        webhook_max_attempts: int | None = 10,
        webhook_timeout: float = 5.0,
        bot_first_name: str = "Test Bot",
        bot_username: str = "test_bot",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.bot_user = {"id": int(token.split(":", 1)[0]), "is_bot": True, "first_name": bot_first_name}
        self.bot_user["username"] = bot_username
        self.strict_chats = strict_chats
        self.callback_timeout = callback_timeout
        self.webhook_retry = webhook_retry
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_timeout = webhook_timeout
        self._clock = clock
        self._flood = FloodControl(clock, global_limit, chat_limit, group_limit)
        self.sent: list[SentCall] = []
        self.requests_log: list[RequestRecord] = []
        self.answers: dict[str, CallbackAnswer] = {}
        self.webhook_deliveries: list[WebhookDelivery] = []
        self.dropped_updates: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._chats: dict[int, ChatState] = {}
        self._callbacks: dict[str, IssuedCallback] = {}
        self._commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self._webhook: dict[str, Any] | None = None
        self._webhook_error: tuple[int, str] | None = None
        self._pending: list[dict[str, Any]] = []
        self._allowed_updates: list[str] | None = None
        self._next_update_id = 1
        self._next_callback = 1
        self._poll_generation = 0
        self.waiting_polls = 0
        self._changed = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The fake's HTTP API."""
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)

    async def started(self) -> None:
        """Start the webhook deliverer."""
        self._closing = False
        task = asyncio.get_running_loop().create_task(self._webhook_worker(), name="fake-telegram-webhook")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stopping(self) -> None:
        """Answer pending long polls and stop delivering."""
        self._closing = True
        self._notify()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def make_bot(self, **kwargs: Any) -> Bot:
        """A real aiogram Bot talking to this fake; close it with `await bot.session.close()`."""
        return Bot(self.token, session=FastAiohttpSession(api=TelegramAPIServer.from_base(self.url)), **kwargs)

    # ---- HTTP front ------------------------------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _handle(self, request: web.Request) -> web.Response:
        params = Params(request.query)
        if request.method == "POST" and request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    return web.json_response(ApiError(400, "Bad Request: can't parse JSON").payload(), status=400)
                params.update(body)
            else:
                for key, value in (await request.post()).items():
                    params[key] = value if isinstance(value, str) else f"<file {getattr(value, 'filename', key)}>"
        status, payload = await self.call(request.match_info["method"], params, token=request.match_info["token"])
        self.requests_log[-1].content_type = request.content_type if request.body_exists else ""
        return web.json_response(payload, status=status)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, token: str | None = None, via: str = "http"
    ) -> tuple[int, dict[str, Any]]:
        """Run one Bot API method as the server would; returns (HTTP status, JSON body) and logs the call."""
        params = Params(params or {})
        try:
            if token is not None and token != self.token:
                raise ApiError(401, "Unauthorized")
            handler = getattr(self, f"api_{method.lower()}", None)
            if handler is None:
                raise ApiError(404, "Not Found: method not found")
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
            status, payload = 200, {"ok": True, "result": result}
        except ApiError as exc:
            status, payload = exc.code, exc.payload()
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test to see
            self.errors.append(f"{method}: {type(exc).__name__}: {exc}")
            status, payload = 500, {"ok": False, "error_code": 500, "description": f"Internal Server Error: {exc}"}
        self.requests_log.append(RequestRecord(method, dict(params), status, payload, self._clock(), via))
        self._notify()
        return status, payload

    # ---- updates: queue, long polling ------------------------------------------------------------------------

    def _notify(self) -> None:
        """Wake everyone waiting for a change of state."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float | None) -> None:
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Make an update; queue it unless allowed_updates excludes its kind."""
        update = {"update_id": self._next_update_id, kind: payload}
        self._next_update_id += 1
        allowed = kind in self._allowed_updates if self._allowed_updates else kind not in NOT_BY_DEFAULT
        if allowed:
            self._pending.append(update)
        else:
            self.dropped_updates.append(update)
        self._notify()
        return copy.deepcopy(update)

    async def api_getupdates(self, params: Params) -> list[dict[str, Any]]:
        """getUpdates: offset confirms earlier updates, limit 1..100, timeout long-polls (fractions allowed)."""
        if self._webhook:
            raise ApiError(409, WEBHOOK_CONFLICT)
        offset = params.integer("offset", 0) or 0
        limit = min(max(params.integer("limit", 100) or 100, 1), 100)
        timeout = min(max(params.number("timeout", 0.0), 0.0), 50.0)
        allowed = params.obj("allowed_updates")
        if allowed is not None:
            self._allowed_updates = [str(kind) for kind in allowed]
        if offset > 0:
            self._pending[:] = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending[:] = self._pending[offset:]
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.waiting_polls += 1
        try:
            while True:
                if generation != self._poll_generation:
                    raise ApiError(409, POLL_CONFLICT)
                if self._webhook:
                    raise ApiError(409, WEBHOOK_CONFLICT)
                batch = self._pending[:limit]
                remaining = deadline - loop.time()
                if batch or remaining <= 0 or self._closing:
                    return copy.deepcopy(batch)
                await self._wait_change(remaining)
        finally:
            self.waiting_polls -= 1

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed (polling) or delivered (webhook)."""
        return copy.deepcopy(self._pending)

    # ---- injection -------------------------------------------------------------------------------------------

    @staticmethod
    def _user(user_id: int, first_name: str, username: str | None, last_name: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        return user

    def inject_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        chat_type: str | None = None,
        chat_title: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any]:
        """A user's text message (a leading /command gets its bot_command entity); returns the Update."""
        user = self._user(user_id, first_name, username, last_name)
        chat = self._new_chat(chat_id, chat_type, user, chat_title)
        reply_to = None
        if reply_to_message_id is not None:
            reply_to = chat.messages[reply_to_message_id].to_api(with_reply=False)
        message = self._store(chat, user, text, entities=command_entities(text), reply_to=reply_to)
        return self._enqueue("message", message.to_api())

    def inject_callback(
        self,
        chat_id: int,
        user_id: int,
        message_id: int,
        data: str,
        *,
        first_name: str = "Test",
        last_name: str | None = None,
        username: str | None = None,
        check_button: bool = True,
    ) -> str:
        """A press of an inline button under a stored message; returns the callback query id."""
        message = self._chats[chat_id].messages[message_id]
        if check_button and not any(b.get("callback_data") == data for b in message.buttons()):
            raise ValueError(f"message {message_id} in chat {chat_id} has no button with callback_data {data!r}")
        query_id = f"{self.bot_user['id']}{self._next_callback:012d}"
        self._next_callback += 1
        query = {
            "id": query_id,
            "from": self._user(user_id, first_name, username, last_name),
            "message": message.to_api(),
            "chat_instance": str(abs(chat_id) * 7919 + 1),
            "data": data,
        }
        self._callbacks[query_id] = IssuedCallback(query=query, issued_at=self._clock())
        self._enqueue("callback_query", query)
        return query_id

    def press(self, chat_id: int, user_id: int, button_text: str, *, message_id: int | None = None) -> str:
        """Press the callback button with this text on the newest bot message having it; returns the query id."""
        for message in reversed(self.messages(chat_id)):
            if message_id is not None and message.message_id != message_id:
                continue
            for button in message.buttons():
                if button.get("text") == button_text and "callback_data" in button:
                    return self.inject_callback(chat_id, user_id, message.message_id, button["callback_data"])
        raise ValueError(f"no callback button {button_text!r} in chat {chat_id}")

    def block_chat(self, chat_id: int, blocked: bool = True) -> None:
        """Make sends to the chat fail with 403 (user blocked the bot / bot kicked from the group)."""
        self._new_chat(chat_id).blocked = blocked


@asynccontextmanager
async def fake_and_bot(**kwargs: Any) -> AsyncIterator[tuple[FakeTelegram, Bot]]:
    """A started FakeTelegram(**kwargs) and a real aiogram Bot on it; on exit asserts the fake had no bug."""
    async with FakeTelegram(**kwargs) as fake:
        bot = fake.make_bot()
        try:
            yield fake, bot
        finally:
            await bot.session.close()
        assert fake.errors == [], fake.errors


@pytest.fixture(name="fake_telegram")
async def fake_telegram_fixture() -> AsyncIterator[FakeTelegram]:
    """A started FakeTelegram with the default token and Telegram's default limits."""
    async with FakeTelegram() as fake:
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture(name="fake_telegram_bot")
async def fake_telegram_bot_fixture(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    """A real aiogram Bot pointed at the `fake_telegram` fixture."""
    bot = fake_telegram.make_bot()
    yield bot
    await bot.session.close()
