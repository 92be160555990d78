"""A fake Zalo Official Account API (consultation messages) and its OAuth v4 token endpoint on 127.0.0.1.

One server answers both hosts, `/v3.0/oa/message/cs` (openapi.zalo.me) and `/v4/oa/access_token`
(oauth.zaloapp.com): point the adapter's `api_base` and `oauth_base` at `fake.url`. OA answers are HTTP 200,
`{"error": 0, "message": "Success", "data": {...}}` or `{"error": <negative>, "message": "..."}`; the token
endpoint takes a form with the app's `secret_key` header and answers `{"access_token", "refresh_token",
"expires_in": "90000"}` (25 h; refresh tokens last three months and work once). A tap on an oa.query.* button
reaches the webhook as an ordinary signed `user_send_text` event whose text is the payload. Sources: chatwoot
`app/models/channel/zalo_oa.rb`, `app/jobs/webhooks/zalo_events_job.rb`; Zalo's error table as copied in
hoangnd25/monorepo `wip/zalo-platform-integration.md`. Chosen, not confirmed: `OAUTH_ERRORS` and the texts
of -201/-210 refusals.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from edudesk.core.ports import Clock, SystemClock
from tests.fakes.server import FakeServer

MAX_TEXT = 2000
MAX_BUTTONS = 5
MAX_BUTTON_TITLE = 100
MAX_QUERY_PAYLOAD = 1000
QUERY_BUTTONS = {"oa.query.show", "oa.query.hide"}
BUTTON_TYPES = QUERY_BUTTONS | {"oa.open.url", "oa.open.phone", "oa.open.sms"}
ACCESS_SECONDS = 90_000  # 25 h, answered as the string "90000"
REFRESH_LIFETIME = timedelta(days=90)
CODE_LIFETIME = timedelta(minutes=10)
INTERACTION_WINDOW = timedelta(days=7)

INVALID_TOKEN = (-216, "Access token is invalid")
EXPIRED_TOKEN = (-216, "Access token has expired")  # what message/cs answered in the field; docs list -220
NOT_INTERACTED = (-230, "User has not interacted with the OA in the past 7 days")
OAUTH_ERRORS = {
    "app_id": (-14001, "Invalid app_id"),
    "secret_key": (-14002, "Invalid secret_key"),
    "parameter": (-14003, "Invalid parameter"),
    "refresh_token": (-14014, "Invalid refresh token"),
    "code": (-14019, "Invalid authorization code"),
    "code_verifier": (-14020, "Invalid code verifier"),
}


def event_mac(app_id: str, body: str, timestamp: str, oa_secret_key: str) -> str:
    """The X-ZEvent-Signature value Zalo sends with a webhook event."""
    return "mac=" + hashlib.sha256(f"{app_id}{body}{timestamp}{oa_secret_key}".encode()).hexdigest()


def code_challenge(verifier: str) -> str:
    """PKCE S256: base64url(SHA-256(verifier)) without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


@dataclass
class SentMessage:
    """One consultation message the OA sent (accepted by the fake)."""

    message_id: str
    user_id: str
    text: str
    buttons: list[dict[str, Any]]
    time: datetime
    body: dict[str, Any]


@dataclass
class Refusal:
    """A request the fake answered with an error."""

    endpoint: str
    code: int
    reason: str
    time: datetime
    body: Any = None


@dataclass
class RefreshCall:
    """One call of the token endpoint."""

    grant_type: str
    token: str  # the refresh token or authorization code presented
    ok: bool
    error: str = ""
    time: datetime | None = None


@dataclass
class WebhookDelivery:
    """One event POSTed to the webhook: exact body and headers, and how the receiver answered."""

    event: dict[str, Any]
    body: str
    headers: dict[str, str]
    status: int | None = None
    error: str = ""
    receipt: list[str] = field(default_factory=list)


class _Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class FakeZaloOa(FakeServer):
    """The fake OA: one app (app_id, secret_key), one OA (oa_id, oa_secret_key), its tokens, users and messages."""

    def __init__(self, *, clock: Clock | None = None, require_interaction: bool = False,
                 expired_error: tuple[int, str] = EXPIRED_TOKEN, refresh_latency: float = 0.0,
                 webhook_timeout: float = 5.0) -> None:
        self.clock = clock or SystemClock()
        self.app_id = "4318532176845010042"
        self.oa_id = "1783605433298374517"
        self.secret_key = secrets.token_urlsafe(15)
        self.oa_secret_key = secrets.token_urlsafe(15)
        self.require_interaction = require_interaction
        self.expired_error = expired_error
        self.refresh_latency = refresh_latency  # server time after the token is consumed, for races
        self.webhook_timeout = webhook_timeout
        self.webhook_url: str | None = None
        self.sent: list[SentMessage] = []
        self.refused: list[Refusal] = []
        self.refresh_calls: list[RefreshCall] = []
        self.deliveries: list[WebhookDelivery] = []
        self.errors: list[str] = []
        self._access: dict[str, datetime] = {}
        self._refresh: dict[str, datetime] = {}
        self._used_refresh: set[str] = set()
        self._codes: dict[str, tuple[str | None, datetime]] = {}
        self._interacted: dict[str, datetime] = {}
        self._changed = asyncio.Event()

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The fake's HTTP API."""
        app.router.add_post("/v3.0/oa/message/cs", self._send)
        app.router.add_post("/v4/oa/access_token", self._token)

    # ---- the test's side: tokens, users, clock -----------------------------------------------------------------

    def issue_tokens(self) -> tuple[str, str]:
        """A fresh (access token, refresh token) pair, as if the OA admin had just authorised the app."""
        now = self.clock.now()
        access, refresh = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
        self._access[access] = now + timedelta(seconds=ACCESS_SECONDS)
        self._refresh[refresh] = now + REFRESH_LIFETIME
        return access, refresh

    def authorize(self, challenge: str | None = None) -> str:
        """The OA admin grants permission: an authorization code (10 min, once), bound to a PKCE challenge."""
        code = secrets.token_urlsafe(32)
        self._codes[code] = (challenge, self.clock.now() + CODE_LIFETIME)
        return code

    def expire_access_token(self, token: str | None = None) -> None:
        """Make one access token (or all of them) expired from now on; refresh tokens keep working."""
        past = self.clock.now() - timedelta(seconds=1)
        for key in [token] if token else list(self._access):
            if key in self._access:
                self._access[key] = past

    def access_token_valid(self, token: str) -> bool:
        """Whether the API would accept this access token now."""
        expiry = self._access.get(token)
        return expiry is not None and self.clock.now() < expiry

    def add_user(self, user_id: str) -> None:
        """A follower who has just interacted with the OA (opens the 7-day window)."""
        self._interacted[user_id] = self.clock.now()

    def set_webhook(self, url: str | None) -> None:
        """The webhook URL configured in the developer console (there is no API for it)."""
        self.webhook_url = url

    def messages(self, user_id: str) -> list[SentMessage]:
        """What the OA sent to one user, oldest first."""
        return [m for m in self.sent if m.user_id == user_id]

    # ---- OA API: consultation message ----------------------------------------------------------------------------

    def _refuse(self, endpoint: str, fail: _Fail, body: Any) -> web.Response:
        self.refused.append(Refusal(endpoint, fail.code, fail.message, self.clock.now(), body))
        self._notify()
        return web.json_response({"error": fail.code, "message": fail.message})

    async def _send(self, request: web.Request) -> web.Response:
        body: Any = None
        try:
            token = request.headers.get("access_token", "")
            if token not in self._access:
                raise _Fail(*INVALID_TOKEN)
            if not self.access_token_valid(token):
                raise _Fail(*self.expired_error)
            try:
                body = json.loads(await request.text())
            except ValueError:
                raise _Fail(-201, "body is invalid!") from None
            message = self._accept(body)
        except _Fail as fail:
            return self._refuse("message/cs", fail, body)
        except Exception as exc:  # a bug in the fake: keep it for the test to see
            self.errors.append(f"message/cs: {type(exc).__name__}: {exc}")
            return web.json_response({"error": -1, "message": f"fake error: {exc}"}, status=500)
        self.sent.append(message)
        self._notify()
        return web.json_response({"error": 0, "message": "Success",
                                  "data": {"message_id": message.message_id, "user_id": message.user_id}})

    def _accept(self, body: Any) -> SentMessage:
        if not isinstance(body, dict):
            raise _Fail(-201, "body is invalid!")
        recipient, message = body.get("recipient"), body.get("message")
        user_id = recipient.get("user_id") if isinstance(recipient, dict) else None
        if not isinstance(user_id, str) or not user_id.isdigit():
            raise _Fail(-201, "user_id is invalid!")
        if not isinstance(message, dict):
            raise _Fail(-201, "message is invalid!")
        text = message.get("text", "")
        buttons: list[dict[str, Any]] = []
        attachment = message.get("attachment")
        if attachment is not None:
            text, buttons = self._template(attachment, text)
        if not isinstance(text, str) or (not text and not buttons):
            raise _Fail(-201, "text is invalid!")
        if len(text) > MAX_TEXT:
            raise _Fail(-210, f"Parameter exceeds allowable limit: text ({len(text)} > {MAX_TEXT} characters)")
        if self.require_interaction:
            last = self._interacted.get(user_id)
            if last is None or self.clock.now() - last > INTERACTION_WINDOW:
                raise _Fail(*NOT_INTERACTED)
        return SentMessage(secrets.token_hex(10), user_id, text, buttons, self.clock.now(), body)

    @staticmethod
    def _template(attachment: Any, text: Any) -> tuple[Any, list[dict[str, Any]]]:
        """A button template: message.text (or payload.text with template_type "button") and 1..5 buttons."""
        if not isinstance(attachment, dict) or attachment.get("type") != "template":
            raise _Fail(-201, "attachment.type is invalid!")
        payload = attachment.get("payload")
        if not isinstance(payload, dict) or payload.get("template_type") not in (None, "button"):
            raise _Fail(-201, "attachment.payload.template_type is invalid! (the fake knows button templates)")
        if payload.get("template_type") == "button" and not text:
            text = payload.get("text", "")
        buttons = payload.get("buttons")
        if not isinstance(buttons, list) or not buttons:
            raise _Fail(-201, "buttons is invalid!")
        if len(buttons) > MAX_BUTTONS:
            raise _Fail(-210, f"Parameter exceeds allowable limit: buttons ({len(buttons)} > {MAX_BUTTONS})")
        for i, button in enumerate(buttons):
            FakeZaloOa._button(i, button)
        return text, [dict(b) for b in buttons]

    @staticmethod
    def _button(i: int, button: Any) -> None:
        if not isinstance(button, dict) or button.get("type") not in BUTTON_TYPES:
            raise _Fail(-201, f"buttons[{i}].type is invalid!")
        title, kind, payload = button.get("title"), button["type"], button.get("payload")
        if not isinstance(title, str) or not title.strip():
            raise _Fail(-201, f"buttons[{i}].title is invalid!")
        if len(title) > MAX_BUTTON_TITLE:
            raise _Fail(-210, f"Parameter exceeds allowable limit: buttons[{i}].title")
        if kind in QUERY_BUTTONS:
            if not isinstance(payload, str) or not payload:
                raise _Fail(-201, f"buttons[{i}].payload is invalid!")
            if len(payload) > MAX_QUERY_PAYLOAD:
                raise _Fail(-210, f"Parameter exceeds allowable limit: buttons[{i}].payload "
                                  f"({len(payload)} > {MAX_QUERY_PAYLOAD} characters)")
            return
        need = {"oa.open.url": ("url",), "oa.open.phone": ("phone_code",), "oa.open.sms": ("content", "phone_code")}
        if not isinstance(payload, dict) or not all(isinstance(payload.get(k), str) and payload[k] for k in need[kind]):
            raise _Fail(-201, f"buttons[{i}].payload is invalid!")
        if kind == "oa.open.url" and not payload["url"].startswith(("http://", "https://")):
            raise _Fail(-201, f"buttons[{i}].payload.url is invalid!")

    # ---- OAuth v4 token endpoint ---------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = str(form.get("grant_type", ""))
        presented = str(form.get("refresh_token" if grant == "refresh_token" else "code", ""))
        call = RefreshCall(grant, presented, ok=False, time=self.clock.now())
        self.refresh_calls.append(call)
        try:
            if form.get("app_id") != self.app_id:
                raise _Fail(*OAUTH_ERRORS["app_id"])
            if request.headers.get("secret_key") != self.secret_key:
                raise _Fail(*OAUTH_ERRORS["secret_key"])
            if grant == "refresh_token":
                self._use_refresh(presented)  # consumed before any await: of two racing calls one wins
            elif grant == "authorization_code":
                self._use_code(presented, str(form.get("code_verifier", "")))
            else:
                raise _Fail(*OAUTH_ERRORS["parameter"])
        except _Fail as fail:
            call.error = fail.message
            self.refused.append(Refusal("oauth/access_token", fail.code, fail.message, self.clock.now(), dict(form)))
            self._notify()
            return web.json_response({"error": fail.code, "error_name": fail.message,
                                      "error_reason": fail.message, "error_description": fail.message})
        access, refresh = self.issue_tokens()
        call.ok = True
        if self.refresh_latency:
            await asyncio.sleep(self.refresh_latency)
        self._notify()
        return web.json_response({"access_token": access, "refresh_token": refresh, "expires_in": str(ACCESS_SECONDS)})

    def _use_refresh(self, token: str) -> None:
        expiry = self._refresh.pop(token, None)
        if expiry is None or self.clock.now() >= expiry:
            reason = "already used" if token in self._used_refresh else "expired" if expiry else "unknown"
            name = OAUTH_ERRORS["refresh_token"]
            raise _Fail(name[0], f"{name[1]} ({reason})")
        self._used_refresh.add(token)

    def _use_code(self, code: str, verifier: str) -> None:
        held = self._codes.pop(code, None)
        if held is None or self.clock.now() >= held[1]:
            raise _Fail(*OAUTH_ERRORS["code"])
        if held[0] is not None and code_challenge(verifier) != held[0]:
            raise _Fail(*OAUTH_ERRORS["code_verifier"])

    # ---- webhook: user events ----------------------------------------------------------------------------------

    async def inject_text(self, user_id: str, text: str) -> WebhookDelivery:
        """The user types a message to the OA: a signed `user_send_text` event POSTed to the webhook."""
        self._interacted[user_id] = self.clock.now()
        timestamp = str(int(self.clock.now().timestamp() * 1000))
        event = {"app_id": self.app_id, "user_id_by_app": user_id, "event_name": "user_send_text",
                 "timestamp": timestamp, "sender": {"id": user_id}, "recipient": {"id": self.oa_id},
                 "message": {"text": text, "msg_id": secrets.token_hex(16)}}
        return await self._deliver(event, timestamp)

    async def press(self, user_id: str, button_title: str, *, message_id: str | None = None) -> WebhookDelivery:
        """The user taps a query button on the newest message to them having it: its payload comes back as text."""
        for message in reversed(self.messages(user_id)):
            if message_id is not None and message.message_id != message_id:
                continue
            for button in message.buttons:
                if button.get("title") == button_title:
                    if button["type"] not in QUERY_BUTTONS:
                        raise ValueError(f"{button_title!r} is {button['type']}: it sends no event to the OA")
                    return await self.inject_text(user_id, button["payload"])
        raise ValueError(f"no button {button_title!r} in messages to {user_id}")

    async def _deliver(self, event: dict[str, Any], timestamp: str) -> WebhookDelivery:
        if not self.webhook_url:
            raise RuntimeError("no webhook URL: call set_webhook(url) first")
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
        headers = {"Content-Type": "application/json",
                   "X-ZEvent-Signature": event_mac(self.app_id, body, timestamp, self.oa_secret_key)}
        delivery = WebhookDelivery(event, body, headers)
        self.deliveries.append(delivery)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.webhook_timeout)) as http:
                async with http.post(self.webhook_url, data=body.encode(), headers=headers) as resp:
                    delivery.status = resp.status
                    delivery.receipt.append(await resp.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        self._notify()
        return delivery

    # ---- waiting -------------------------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until predicate() holds (checked on every change of the fake); TimeoutError otherwise."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()


@pytest.fixture(name="fake_zalo_oa")
async def fake_zalo_oa_fixture() -> AsyncIterator[FakeZaloOa]:
    """A started FakeZaloOa on the real clock; asserts on exit that the fake had no bug."""
    async with FakeZaloOa() as fake:
        yield fake
        assert fake.errors == [], fake.errors
