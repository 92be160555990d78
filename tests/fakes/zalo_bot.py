"""A fake Zalo Bot Platform API (`https://bot-api.zaloplatforms.com/bot<TOKEN>/<method>`) on 127.0.0.1.

Point the adapter's `api_base` at `fake.url`. Methods are case-sensitive and take query, form, multipart or
JSON parameters by GET or POST; answers are `{"ok": true, "result": ...}` or `{"ok": false, "error_code": N,
"description": "..."}`. Tests inject what users type with plain calls and read back what the bot sent.

Wire shapes and their sources:
- Methods, parameters, sample answers (getMe `id/account_name/account_type/can_join_groups`; setWebhook,
  getWebhookInfo, deleteWebhook `{url, updated_at}` in ms; send* `{message_id, date}`; sendChatAction
  `{"ok": true}` without result), text and caption 1-2,000 characters, secret_token 8-256 characters, the
  error table (400 bad request or bad method name, 401 bad token, 403, 404, 408 request timeout, 429 quota):
  the official docs as copied in XuanNguyenNB/QuanLyThuChi_Bot_Telegram_Zalom `docs/ZALO_BOT_API.md` and
  summarised in the Penny-Zalo `docs/zalo-bot-platform-reference.md` (snapshot of bot.zaloplatforms.com/docs).
- The update: `{"event_name", "message": {"from": {id, display_name, is_bot}, "chat": {id, chat_type},
  "text", "message_id", "date" (ms)}}`; image events carry `photo` and `caption`, sticker events `sticker`
  and `url` (docs' webhook page, same snapshot). The webhook body wraps it as `{"ok": true, "result": update}`.
- getUpdates hands out ONE update per call (the result is the update, not a list; there is no offset or
  acknowledgement), and a long poll that times out answers 408 "Request timeout": the official SDK
  python-zalo-bot 0.1.9 (`Bot.get_update`) and field code (lamdt1/ckvn-bot, a bot using @openclaw/zalo).
- getUpdates while a webhook is set: 400 "You cannot use this API while a webhook is set" (a field report in
  a public bot's comments; the docs only say it does not work).

Not published, and chosen here (mirroring the Telegram Bot API where it has an answer):
- the HTTP status equals `error_code` (the official SDK, a python-telegram-bot fork, dispatches on it);
- the description texts except "Request timeout"; a blocked user's error (`blocked_error`, 403 by default —
  the docs' table calls 403 "internal server error"); 400 "chat not found" for a chat that never wrote;
- buttons: the platform has no keyboards or callbacks, and whether it ignores `reply_markup` is unknown, so
  any markup or formatting parameter is refused with 400 (our code must not rely on it);
- webhook retries: a non-2xx answer or no answer within `webhook_timeout` is recorded in `webhook_failures`
  and retried with exponential backoff (`webhook_retry`), in order; after `webhook_max_attempts` the update is
  dropped; plain http is accepted only for loopback hosts (the platform wants https);
- no rate limit: the docs publish none (only a 429 "quota exceeded" code); `fail_next` injects one.
Text length is Python `len` (code points). The docs say "ký tự" without saying how they count; a JS client
counts UTF-16 units, so an emoji may count twice on the platform (unverified); NFC Vietnamese is one BMP code
point per letter either way, NFD text is longer.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from tests.fakes.server import FakeServer

DEFAULT_TOKEN = "1459232241454765289:fake-zalo-bot-access-token"
MAX_TEXT = 2000
SECRET_LENGTH = (8, 256)
CHAT_ACTIONS = {"typing", "upload_photo"}
MARKUP_PARAMS = {"reply_markup", "inline_keyboard", "keyboard", "buttons", "attachment", "template",
                 "quick_replies", "parse_mode", "entities"}
WEBHOOK_SET = "You cannot use this API while a webhook is set"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _new_id() -> str:
    """A Zalo-looking message or user id: 20 hex digits."""
    return secrets.token_hex(10)


@dataclass
class SentMessage:
    """One accepted send call (sendMessage, sendPhoto, sendSticker): `text` is the caption for a photo."""

    chat_id: str
    text: str
    time: float
    message_id: str
    method: str = "sendMessage"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoredMessage:
    """A message in a chat: from the user (an event) or from the bot (an accepted send)."""

    message_id: str
    chat_id: str
    from_bot: bool
    text: str
    date: int  # ms
    event_name: str = ""


@dataclass
class Refusal:
    """A call answered with an error: `kind` is a stable key tests can match, `description` what was answered."""

    method: str
    code: int
    kind: str
    description: str
    params: dict[str, Any]
    time: float


@dataclass
class WebhookAttempt:
    """One POST of an update to the webhook and how it went (status None: no HTTP answer)."""

    update: dict[str, Any]
    url: str
    attempt: int
    status: int | None
    error: str
    time: float
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An error answer of the platform."""

    def __init__(self, code: int, kind: str, description: str) -> None:
        super().__init__(description)
        self.code, self.kind, self.description = code, kind, description


class FakeZaloBot(FakeServer):
    """The fake platform for one bot: its chats, the event queue, long polling, webhook delivery, inspection."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, account_name: str = "bot.EduDesk",
                 webhook_timeout: float = 5.0, webhook_retry: tuple[float, float] = (0.05, 1.0),
                 webhook_max_attempts: int | None = 10,
                 blocked_error: tuple[int, str] = (403, "Forbidden: the user has blocked the bot"),
                 clock: Callable[[], float] = time.time) -> None:
        self.token = token
        self.bot_id = token.split(":", 1)[0]
        self.account_name = account_name
        self.webhook_timeout = webhook_timeout
        self.webhook_retry = webhook_retry
        self.webhook_max_attempts = webhook_max_attempts
        self.blocked_error = blocked_error
        self.clock = clock
        self.sent: list[SentMessage] = []
        self.chat_actions: list[tuple[str, str]] = []
        self.refused: list[Refusal] = []
        self.calls: list[tuple[str, dict[str, Any], int]] = []
        self.webhook_deliveries: list[WebhookAttempt] = []
        self.webhook_failures: list[WebhookAttempt] = []
        self.dropped_updates: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._users: dict[str, str] = {}
        self._blocked: set[str] = set()
        self._chats: dict[str, list[StoredMessage]] = {}
        self._pending: list[dict[str, Any]] = []
        self._webhook: dict[str, Any] | None = None
        self._webhook_updated = 0
        self._failures: dict[str, list[tuple[int, str]]] = {}
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
        task = asyncio.get_running_loop().create_task(self._webhook_worker(), name="fake-zalo-bot-webhook")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stopping(self) -> None:
        """Answer pending long polls and stop delivering."""
        self._closing = True
        self._notify()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- HTTP front ------------------------------------------------------------------------------------------

    async def _not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _handle(self, request: web.Request) -> web.Response:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.body_exists:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body = None
                if not isinstance(body, dict):
                    error = {"ok": False, "error_code": 400, "description": "Bad Request: body is not a JSON object"}
                    return web.json_response(error, status=400)
                params.update(body)
            else:
                for key, value in (await request.post()).items():
                    params[key] = value if isinstance(value, str) else f"<file {getattr(value, 'filename', key)}>"
        status, payload = await self.call(request.match_info["method"], params, token=request.match_info["token"])
        return web.json_response(payload, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))

    async def call(self, method: str, params: dict[str, Any] | None = None, *,
                   token: str | None = None) -> tuple[int, dict[str, Any]]:
        """Run one method as the platform would; returns (HTTP status, JSON body) and logs the call."""
        params = dict(params or {})
        try:
            if token is not None and token != self.token:
                raise ApiError(401, "unauthorized", "Unauthorized: the bot token is invalid or expired")
            handler = getattr(self, f"_api_{method}", None)  # case-sensitive, as the platform's names are
            if handler is None:
                raise ApiError(400, "unknown_method", f"Bad Request: no such API: {method}")
            queued = self._failures.get(method)
            if queued:
                code, description = queued.pop(0)
                raise ApiError(code, "injected", description)
            result = await handler(params)
            payload: dict[str, Any] = {"ok": True} if result is None else {"ok": True, "result": result}
            status = 200
        except ApiError as exc:
            status = exc.code
            payload = {"ok": False, "error_code": exc.code, "description": exc.description}
            self.refused.append(Refusal(method, exc.code, exc.kind, exc.description, params, self.clock()))
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test to see
            self.errors.append(f"{method}: {type(exc).__name__}: {exc}")
            status, payload = 500, {"ok": False, "error_code": 500, "description": f"fake error: {exc}"}
        self.calls.append((method, params, status))
        self._notify()
        return status, payload

    # ---- methods ---------------------------------------------------------------------------------------------

    async def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.bot_id, "account_name": self.account_name, "account_type": "BASIC",
                "can_join_groups": False}

    async def _api_getUpdates(self, params: dict[str, Any]) -> dict[str, Any]:
        try:
            timeout = max(float(params.get("timeout", 30)), 0.0)  # a String of seconds in the docs
        except (TypeError, ValueError):
            raise ApiError(400, "bad_request", "Bad Request: timeout must be a number of seconds") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self._webhook:
                raise ApiError(400, "webhook_set", WEBHOOK_SET)
            if self._pending:
                return self._pending.pop(0)
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                raise ApiError(408, "timeout", "Request timeout")
            await self._wait_change(remaining)

    async def _api_setWebhook(self, params: dict[str, Any]) -> dict[str, Any]:
        url, secret = params.get("url"), params.get("secret_token")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or not parts.hostname or not (
                parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
            raise ApiError(400, "bad_request", "Bad Request: url must be an HTTPS address")
        if not isinstance(secret, str) or not SECRET_LENGTH[0] <= len(secret) <= SECRET_LENGTH[1]:
            raise ApiError(400, "bad_request", "Bad Request: secret_token must be 8-256 characters")
        self._webhook = {"url": url, "secret_token": secret}
        self._webhook_updated = self._ms()
        return {"url": url, "updated_at": self._webhook_updated}

    async def _api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": self._webhook["url"] if self._webhook else "", "updated_at": self._webhook_updated}

    async def _api_deleteWebhook(self, params: dict[str, Any]) -> dict[str, Any]:
        self._webhook = None
        self._webhook_updated = self._ms()
        return {"url": "", "updated_at": self._webhook_updated}

    async def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._target(params)
        return self._send("sendMessage", chat_id, self._text(params, "text", required=True), params)

    async def _api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._target(params)
        photo = params.get("photo")
        if not isinstance(photo, str) or not photo.startswith(("http://", "https://")):
            raise ApiError(400, "bad_request", "Bad Request: photo must be the address of an image")
        return self._send("sendPhoto", chat_id, self._text(params, "caption", required=False), params)

    async def _api_sendSticker(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._target(params)
        if not isinstance(params.get("sticker"), str) or not params["sticker"]:
            raise ApiError(400, "bad_request", "Bad Request: sticker is required")
        return self._send("sendSticker", chat_id, "", params)

    async def _api_sendChatAction(self, params: dict[str, Any]) -> None:
        chat_id = self._target(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "bad_request", f"Bad Request: action must be one of {sorted(CHAT_ACTIONS)}")
        self.chat_actions.append((chat_id, str(params["action"])))

    def _target(self, params: dict[str, Any]) -> str:
        """The checked chat_id of a send call: present, no markup asked for, a chat that exists, not blocked."""
        if params.get("chat_id") in (None, ""):
            raise ApiError(400, "bad_request", "Bad Request: chat_id is required")
        markup = sorted(MARKUP_PARAMS & set(params))
        if markup:
            raise ApiError(400, "markup", f"Bad Request: {', '.join(markup)} not supported: Zalo bots send plain "
                                          "text, without buttons, keyboards or formatting")
        chat_id = str(params["chat_id"])
        if chat_id not in self._users:
            raise ApiError(400, "unknown_chat", "Bad Request: chat not found")
        if chat_id in self._blocked:
            raise ApiError(self.blocked_error[0], "blocked", self.blocked_error[1])
        return chat_id

    @staticmethod
    def _text(params: dict[str, Any], name: str, *, required: bool) -> str:
        value = params.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value:
            raise ApiError(400, "text_empty", f"Bad Request: {name} must be 1-{MAX_TEXT} characters (got none)")
        if len(value) > MAX_TEXT:
            raise ApiError(400, "text_too_long", f"Bad Request: {name} must be 1-{MAX_TEXT} characters "
                                                 f"(got {len(value)})")
        return value

    def _send(self, method: str, chat_id: str, text: str, params: dict[str, Any]) -> dict[str, Any]:
        message_id, date = _new_id(), self._ms()
        self.sent.append(SentMessage(chat_id, text, self.clock(), message_id, method, dict(params)))
        self._chats[chat_id].append(StoredMessage(message_id, chat_id, True, text, date))
        return {"message_id": message_id, "date": date}

    # ---- the test's side: users and their events -------------------------------------------------------------

    def _ms(self) -> int:
        return int(self.clock() * 1000)

    def add_user(self, user_id: str, display_name: str = "Người dùng Zalo") -> None:
        """A user who has opened a chat with the bot (so the bot may write to them)."""
        self._users[user_id] = display_name
        self._chats.setdefault(user_id, [])

    def _inject(self, user_id: str, event_name: str, display_name: str | None,
                **fields: Any) -> dict[str, Any]:
        if display_name is not None or user_id not in self._users:
            self.add_user(user_id, display_name or "Người dùng Zalo")
        message_id, date = _new_id(), self._ms()
        message = {"from": {"id": user_id, "display_name": self._users[user_id], "is_bot": False},
                   "chat": {"id": user_id, "chat_type": "PRIVATE"}, **fields,
                   "message_id": message_id, "date": date}
        self._chats[user_id].append(StoredMessage(message_id, user_id, False, str(fields.get("text", "")), date,
                                                  event_name))
        update = {"event_name": event_name, "message": message}
        self._pending.append(update)
        self._notify()
        return copy.deepcopy(update)

    def inject_text(self, user_id: str, text: str, *, display_name: str | None = None) -> dict[str, Any]:
        """The user types a text: queued for getUpdates or the webhook; returns the update."""
        return self._inject(user_id, "message.text.received", display_name, text=text)

    def inject_image(self, user_id: str, photo: str, caption: str | None = None, *,
                     display_name: str | None = None) -> dict[str, Any]:
        """The user sends a picture (its address, and a caption if any)."""
        extra = {"caption": caption} if caption is not None else {}
        return self._inject(user_id, "message.image.received", display_name, photo=photo, **extra)

    def inject_sticker(self, user_id: str, sticker: str = "0e078a2fb66a5f34067b", *,
                       display_name: str | None = None) -> dict[str, Any]:
        """The user sends a sticker."""
        url = f"https://stickers.zaloapp.com/{sticker}"
        return self._inject(user_id, "message.sticker.received", display_name, sticker=sticker, url=url)

    def inject_unsupported(self, user_id: str, *, display_name: str | None = None) -> dict[str, Any]:
        """A message the platform will not pass on (e.g. from a protected user): no content, only the event."""
        return self._inject(user_id, "message.unsupported.received", display_name)

    def block_user(self, user_id: str, blocked: bool = True) -> None:
        """Make sends to the user fail with `blocked_error` (they blocked the bot), or undo it."""
        self.add_user(user_id, self._users.get(user_id, "Người dùng Zalo"))
        (self._blocked.add if blocked else self._blocked.discard)(user_id)

    def fail_next(self, method: str, code: int = 429, description: str = "Quota exceeded", times: int = 1) -> None:
        """Answer the next `times` calls of a method with this error (e.g. 429 quota exceeded)."""
        self._failures.setdefault(method, []).extend([(code, description)] * times)

    # ---- inspection ------------------------------------------------------------------------------------------

    def messages(self, chat_id: str) -> list[StoredMessage]:
        """The chat's messages, both ways, oldest first."""
        return list(self._chats.get(chat_id, []))

    def bot_texts(self, chat_id: str) -> list[str]:
        """The texts (and captions) the bot sent to the chat, oldest first."""
        return [m.text for m in self._chats.get(chat_id, []) if m.from_bot]

    def refusals(self, kind: str) -> list[Refusal]:
        """Refused calls of one kind (text_too_long, text_empty, unknown_chat, markup, webhook_set, blocked, ...)."""
        return [r for r in self.refused if r.kind == kind]

    @property
    def webhook(self) -> dict[str, Any] | None:
        """The webhook set now (url, secret_token), None in polling mode."""
        return dict(self._webhook) if self._webhook else None

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet handed to getUpdates or delivered to the webhook."""
        return copy.deepcopy(self._pending)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_change(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until predicate() is truthy (checked on every change and every 50 ms); returns its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (value := predicate()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"fake Zalo bot: condition not met within {timeout} s")
            await self._wait_change(min(remaining, 0.05))
        return value

    # ---- webhook delivery ------------------------------------------------------------------------------------

    async def _webhook_worker(self) -> None:
        """Deliver queued updates in order while a webhook is set; back off and retry on failures."""
        async with aiohttp.ClientSession() as session:
            current: dict[str, Any] | None = None
            attempt, delay = 0, self.webhook_retry[0]
            while not self._closing:
                hook = self._webhook
                if hook is None or not self._pending:
                    await self._wait_change(None)
                    continue
                if self._pending[0] is not current:
                    current, attempt, delay = self._pending[0], 0, self.webhook_retry[0]
                attempt += 1
                try:
                    if await self._deliver(session, hook, current, attempt):
                        continue
                except Exception as exc:  # a bug in the fake: keep it for the test to see, keep delivering
                    self.errors.append(f"webhook delivery: {type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.webhook_retry[1])

    async def _deliver(self, session: aiohttp.ClientSession, hook: dict[str, Any], update: dict[str, Any],
                       attempt: int) -> bool:
        """One POST; True when the update is done with (delivered, or dropped after the last attempt)."""
        headers = {"Content-Type": "application/json", "X-Bot-Api-Secret-Token": hook["secret_token"]}
        body = json.dumps({"ok": True, "result": update}, ensure_ascii=False).encode()
        status, error = None, ""
        try:
            timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
            async with session.post(hook["url"], data=body, headers=headers, timeout=timeout) as resp:
                status = resp.status
                await resp.read()
                if not 200 <= status < 300:
                    error = f"Wrong response from the webhook: {status} {resp.reason}"
        except TimeoutError:
            error = f"no answer within {self.webhook_timeout} s"
        except (aiohttp.ClientError, OSError) as exc:
            error = f"connection failed: {type(exc).__name__}: {exc}"
        record = WebhookAttempt(copy.deepcopy(update), hook["url"], attempt, status, error, self.clock(), headers)
        self.webhook_deliveries.append(record)
        if error:
            self.webhook_failures.append(record)
            if not (self.webhook_max_attempts and attempt >= self.webhook_max_attempts):
                self._notify()
                return False
            self.dropped_updates.append(update)
        if self._pending and self._pending[0] is update:
            self._pending.pop(0)
        self._notify()
        return True


@pytest.fixture(name="fake_zalo_bot")
async def fake_zalo_bot_fixture() -> AsyncIterator[FakeZaloBot]:
    """A started FakeZaloBot with the default token; asserts on exit that the fake had no bug."""
    async with FakeZaloBot() as fake:
        yield fake
        assert fake.errors == [], fake.errors
