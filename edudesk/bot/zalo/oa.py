"""Zalo Official Account API: messages with hidden query buttons, the OA webhook, and the OAuth token that
every replica shares.

Tokens. The access token lasts about 25 h; the refresh token is SINGLE-USE. The pair lives in the database
(sealed with the secret key), with a generation number. A refresh happens in one transaction holding a
named lock (PostgreSQL advisory lock; SQLite has one writer): the replica re-reads the row inside it and
only calls Zalo when the generation is still the one it saw expire — every other replica finds the fresh
pair and uses it. So two replicas seeing the token expire together spend the refresh token once. The first
refresh token comes from the environment (`[zalo].refresh_token_env`); after that the database holds it.

Buttons. `oa.query.hide` buttons carry "#a <token>": a one-time action token of the person the message
goes to (`core.people.chatlinks`); the tap comes back as an ordinary text event from that person, and the token
must be theirs. Webhook events are checked against `X-ZEvent-Signature` (sha256 of app id + body +
timestamp + OA secret key), stored as `zalo_event` jobs, and answered 200 at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from tortoise.transactions import in_transaction

from edudesk.bot.textcommands import TextContext, handle
from edudesk.bot.zalo.chat import NOT_TEXT, ZaloChat, answer_event
from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.jobs import Job, JobKind, JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.ops import CHAT_COUNTS
from edudesk.core.people.linkmodels import OAuthToken
from edudesk.core.people.staff import actor_for_zalo
from edudesk.core.ports import ChatDown, ChatRefused, Clock
from edudesk.core.secrets import SecretBox

log = logging.getLogger(__name__)
TOKEN_ERRORS = (-216, -220)  # invalid / expired access token (both are seen for an expired one)
NOT_FOLLOWING = (-230, -213)  # the person has not interacted with the OA lately / does not follow it


class OaError(Exception):
    """Zalo answered an error code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code


class OaTokens:
    """The OA's access token, refreshed once across replicas (see the module docstring)."""

    def __init__(self, settings: Settings, clock: Clock, box: SecretBox) -> None:
        self.settings = settings
        self.clock = clock
        self.box = box
        self.name = f"zalo_oa:{settings.zalo.app_id}"[:64]
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def access(self) -> tuple[str, int]:
        """A valid access token and its generation (refreshed when it expires within `refresh_before_minutes`)."""
        row = await OAuthToken.get_or_none(name=self.name)
        margin = timedelta(minutes=self.settings.zalo.refresh_before_minutes)
        if row is not None and _aware(row.expires_at) - margin > self.clock.now():
            return self.box.open(row.access_sealed), row.generation
        await self.refresh(row.generation if row is not None else -1)
        fresh = await OAuthToken.get(name=self.name)
        return self.box.open(fresh.access_sealed), fresh.generation

    async def refresh(self, seen: int) -> str:
        """Refresh unless another replica already did (its generation is newer than `seen`). Shielded: once
        Zalo has spent the old refresh token, a cancelled caller (a restart, a timeout) must not keep the new
        pair from being stored."""
        return await asyncio.shield(self._refresh(seen))

    async def _refresh(self, seen: int) -> str:
        async with self._lock, in_transaction() as conn:
            await lock_for_transaction(conn, f"edudesk:{self.name}")
            row = await OAuthToken.filter(name=self.name).using_db(conn).first()
            if row is not None and row.generation != seen and _aware(row.expires_at) > self.clock.now():
                return self.box.open(row.access_sealed)  # refreshed meanwhile: use it
            refresh = self.box.open(row.refresh_sealed) if row is not None else \
                self.settings.secret(self.settings.zalo.refresh_token_env)
            if not refresh:
                raise ChatDown(f"Zalo OA: no refresh token ({self.settings.zalo.refresh_token_env} is empty)")
            answer = await self._call(refresh)
            now = self.clock.now()
            values = {"access_sealed": self.box.seal(answer["access_token"]),
                      "refresh_sealed": self.box.seal(answer["refresh_token"]),
                      "expires_at": now + timedelta(seconds=float(answer.get("expires_in") or 90000)),
                      "generation": (row.generation if row is not None else 0) + 1, "updated_at": now}
            if row is None:
                await OAuthToken.create(name=self.name, using_db=conn, **values)
            else:
                await OAuthToken.filter(name=self.name).using_db(conn).update(**values)
            await AuditEvent.create(at=now, actor="system", action="oauth_refreshed", using_db=conn,
                                    detail={"name": self.name, "generation": values["generation"]})
            return str(answer["access_token"])

    async def _call(self, refresh: str) -> dict[str, Any]:
        z = self.settings.zalo
        if self._session is None:
            self._session = aiohttp.ClientSession()
        form = {"app_id": z.app_id, "grant_type": "refresh_token", "refresh_token": refresh}
        try:
            async with self._session.post(f"{z.oauth_base.rstrip('/')}/v4/oa/access_token", data=form,
                                          headers={"secret_key": self.settings.secret(z.app_secret_env)},
                                          timeout=aiohttp.ClientTimeout(total=20)) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ChatDown(f"Zalo OAuth: {type(exc).__name__}") from None
        if not isinstance(body, dict) or not body.get("access_token") or not body.get("refresh_token"):
            detail = body.get("error_description") or body.get("error_name") if isinstance(body, dict) else ""
            log.error("Zalo OA token refresh refused: %s", detail)  # the token itself is never logged
            raise ChatDown(f"Zalo OAuth refused the refresh: {detail}")
        return body

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class OaClient:
    """message/cs with the shared access token (refreshed once and retried when Zalo says it expired)."""

    def __init__(self, settings: Settings, tokens: OaTokens) -> None:
        self.settings = settings
        self.tokens = tokens
        self._session: aiohttp.ClientSession | None = None

    async def send(self, user_id: str, text: str, buttons: list[tuple[str, str]] | None = None) -> str:
        """Send one message (text, and hidden query buttons); the message id."""
        message: dict[str, Any] = {"text": text}
        if buttons:
            message["attachment"] = {"type": "template", "payload": {"buttons": [
                {"title": title, "type": "oa.query.hide", "payload": payload} for title, payload in buttons]}}
        body = {"recipient": {"user_id": user_id}, "message": message}
        for attempt in (0, 1):
            token, generation = await self.tokens.access()
            try:
                data = await self._post(body, token)
            except OaError as exc:
                if exc.code in TOKEN_ERRORS and attempt == 0:
                    # Refused this generation: refresh unless another send or replica already has.
                    await self.tokens.refresh(generation)
                    continue
                if exc.code in NOT_FOLLOWING:
                    raise ChatRefused(str(exc)) from None
                if exc.code in TOKEN_ERRORS:
                    raise ChatDown(f"Zalo OA token refused: {exc}") from None
                raise
            CHAT_COUNTS.sent("zalo")  # /metrics: edudesk_chat_sends_total
            return str(data.get("message_id", ""))
        raise ChatDown("Zalo OA: token refused twice")

    async def _post(self, body: dict[str, Any], token: str) -> dict[str, Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.settings.zalo.oa_api_base.rstrip('/')}/v3.0/oa/message/cs"
        try:
            async with self._session.post(url, data=json.dumps(body, ensure_ascii=False).encode(),
                                          headers={"access_token": token, "Content-Type": "application/json"},
                                          timeout=aiohttp.ClientTimeout(total=15)) as response:
                if response.status >= 500:
                    raise ChatDown(f"Zalo OA: HTTP {response.status}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ChatDown(f"Zalo OA: {type(exc).__name__}") from None
        if not isinstance(answer, dict) or answer.get("error") != 0:
            code = int(answer.get("error", -1)) if isinstance(answer, dict) else -1
            raise OaError(code, str(answer.get("message", "")) if isinstance(answer, dict) else "")
        return answer.get("data") or {}

    async def close(self) -> None:
        """Close the HTTP sessions."""
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.tokens.close()


def event_mac(app_id: str, body: str, timestamp: str, oa_secret: str) -> str:
    """The X-ZEvent-Signature value Zalo computes for an OA event."""
    return "mac=" + hashlib.sha256(f"{app_id}{body}{timestamp}{oa_secret}".encode()).hexdigest()


class OaReceiver:
    """The OA webhook: signed events stored as `zalo_event` jobs; the job answers the person."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, chat: ZaloChat, text: TextContext) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.chat = chat
        self.text = text
        self._runner: web.AppRunner | None = None

    async def event(self, job: Job) -> None:
        """Job handler `zalo_event`: run the person's command once and answer."""
        payload = job.payload

        async def run() -> str:
            if payload.get("event") != "user_send_text" or not payload.get("text"):
                return NOT_TEXT
            actor = await actor_for_zalo(payload["user_id"], "", self.settings)
            return await handle(self.text, actor, payload["user_id"], payload["text"])

        await answer_event(job, self.chat, run)

    async def start_webhook(self) -> None:
        """Serve the webhook (its address is set in Zalo's developer console)."""
        if not self.settings.secret(self.settings.zalo.oa_secret_env):
            # Without it the signature is sha256 of public values: anyone could act as a linked person.
            raise ValueError(f"[zalo] api = \"oa\" needs the OA secret key in {self.settings.zalo.oa_secret_env}")
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post(self.settings.zalo.webhook_path, self._webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.settings.zalo.webhook_host, self.settings.zalo.webhook_port).start()

    @property
    def webhook_port(self) -> int:
        """The port the webhook listens on."""
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def _webhook(self, request: web.Request) -> web.Response:
        body = await request.text()
        try:
            event = json.loads(body)
        except ValueError:
            return web.Response(status=400)
        if not isinstance(event, dict):
            return web.Response(status=400)
        z = self.settings.zalo
        oa_secret = self.settings.secret(z.oa_secret_env)
        expected = event_mac(z.app_id, body, str(event.get("timestamp", "")), oa_secret)
        given = request.headers.get("X-ZEvent-Signature", "").encode()
        if not oa_secret or not hmac.compare_digest(given, expected.encode()):
            log.warning("Zalo OA event with a wrong signature refused")
            await AuditEvent.create(at=self.clock.now(), actor="zalo_oa", action="zalo_event_refused",
                                    detail={"reason": "signature", "event": str(event.get("event_name"))[:64]})
            return web.Response(status=401)
        sender = str((event.get("sender") or {}).get("id") or "")[:64]
        raw = event.get("message")
        message: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if sender and str(event.get("app_id")) == z.app_id:
            key = str(message.get("msg_id") or f"{sender}:{event.get('timestamp')}")[:200]
            await self.queue.enqueue(JobKind.ZALO_EVENT, f"zalo:{key}", {
                "user_id": sender, "event": str(event.get("event_name", ""))[:64],
                "text": str(message.get("text") or "")[:4000]})
            self.queue.wake()
        return web.Response(text="ok")

    async def stop(self) -> None:
        """Stop the webhook server and close the client."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.chat.client.close()
