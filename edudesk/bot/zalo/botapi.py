"""Zalo Bot Platform (`{api_base}/bot<TOKEN>/<method>`, Telegram-like, no buttons): the `ChatPort` and the
receiver of people's messages.

Every message a person sends is stored as a durable `zalo_event` job before anything else happens — in
webhook mode before the 200 goes back (the platform gets its answer at once; slow answers make it back
off), in polling mode before the next getUpdates — so a crash loses no command and a redelivery runs
none twice (the job key is the message id). The job runs the command (`bot.textcommands`) and answers.

The token is part of every URL: errors and logs name the method, never the URL.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web

from edudesk.bot.textcommands import TextContext, handle
from edudesk.bot.zalo.chat import NOT_TEXT, ZaloChat, answer_event
from edudesk.bot.zalo.render import LIMIT
from edudesk.core.config import Settings
from edudesk.core.jobs import Job, JobKind, JobQueue
from edudesk.core.ops import CHAT_COUNTS
from edudesk.core.people.staff import actor_for_zalo
from edudesk.core.ports import ChatBusy, ChatDown, ChatRefused, Clock

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Bot-Api-Secret-Token"
TEXT_EVENT = "message.text.received"


class ZaloApiError(Exception):
    """The platform answered ok=false."""

    def __init__(self, method: str, code: int, description: str) -> None:
        super().__init__(f"{method}: {code} {description}")
        self.code = code
        self.description = description


class ZaloBotClient:
    """The Bot Platform's HTTP API, one method per call; `pace` keeps sends apart."""

    def __init__(self, api_base: str, token: str, *, messages_per_second: float = 5.0) -> None:
        self._base = api_base.rstrip("/")
        self._token = token
        self._session: aiohttp.ClientSession | None = None
        self._interval = 1.0 / max(messages_per_second, 0.1)
        self._next = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ZaloBotClient({self._base!r})"  # never the token

    async def call(self, method: str, http_timeout: float = 15.0, **params: Any) -> Any:
        """POST one method; the result, or ZaloApiError / ChatDown."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(f"{self._base}/bot{self._token}/{method}", json=params,
                                          timeout=aiohttp.ClientTimeout(total=http_timeout)) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except ValueError:
                    body = {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChatDown(f"Zalo {method}: {type(exc).__name__}") from None
        if not isinstance(body, dict):
            body = {}
        if status >= 500 or (status >= 400 and not body):
            raise ChatDown(f"Zalo {method}: HTTP {status}")
        if not body.get("ok"):
            raise ZaloApiError(method, int(body.get("error_code") or status), str(body.get("description", "")))
        return body.get("result")

    async def send(self, chat_id: str, text: str, buttons: list[tuple[str, str]] | None = None) -> str:
        """sendMessage, paced; the message id. A person who blocked the bot is ChatRefused. The platform
        has no buttons: a card's actions are in its text (`bot.zalo.render`)."""
        if buttons:
            raise ValueError("the Zalo Bot Platform shows no buttons")
        async with self._lock:
            wait = self._next - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next = time.monotonic() + self._interval
        try:
            result = await self.call("sendMessage", chat_id=chat_id, text=text[:LIMIT])
        except ZaloApiError as exc:
            if exc.code == 429:
                CHAT_COUNTS.throttled("zalo")  # /metrics: edudesk_chat_throttled_total
                raise ChatBusy(5.0) from None
            if exc.code in (401,):
                raise ChatDown(str(exc)) from None
            text = exc.description.lower()
            if exc.code == 403 or "block" in text or "chat not found" in text or "user not found" in text:
                raise ChatRefused(str(exc)) from None  # that person; a wrong address stays a channel failure
            raise
        CHAT_COUNTS.sent("zalo")
        return str((result or {}).get("message_id", "")) if isinstance(result, dict) else ""

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def updates_of(result: Any) -> list[dict[str, Any]]:
    """getUpdates answers one update or a list of them (the docs show one)."""
    if isinstance(result, list):
        return [u for u in result if isinstance(u, dict)]
    return [result] if isinstance(result, dict) and result else []


async def store_event(queue: JobQueue, update: dict[str, Any]) -> bool:
    """One update as a durable `zalo_event` job (key: the message id); False for what is not a message."""
    message = update.get("message") if isinstance(update.get("message"), dict) else None
    if message is None:
        return False
    sender = message.get("from") or {}
    user_id = str(sender.get("id") or (message.get("chat") or {}).get("id") or "")[:64]
    if not user_id or sender.get("is_bot"):
        return False
    key = str(message.get("message_id") or f"{user_id}:{message.get('date')}")[:200]
    await queue.enqueue(JobKind.ZALO_EVENT, f"zalo:{key}", {
        "user_id": user_id, "name": str(sender.get("display_name") or "")[:100],
        "event": str(update.get("event_name", ""))[:64], "text": str(message.get("text") or "")[:4000]})
    queue.wake()
    return True


class ZaloBotReceiver:
    """People's messages in: long polling or a webhook, each stored as a job; the job answers."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, client: ZaloBotClient, chat: ZaloChat,
                 text: TextContext) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.client = client
        self.chat = chat
        self.text = text
        self._runner: web.AppRunner | None = None

    async def event(self, job: Job) -> None:
        """Job handler `zalo_event`: run the person's command once and answer in their chat."""
        payload = job.payload

        async def run() -> str:
            if payload.get("event") not in ("", TEXT_EVENT) or not payload.get("text"):
                return NOT_TEXT
            actor = await actor_for_zalo(payload["user_id"], payload.get("name", ""), self.settings)
            return await handle(self.text, actor, payload["user_id"], payload["text"])

        await answer_event(job, self.chat, run)

    async def poll(self) -> None:
        """Long polling (the webhook removed first: the platform refuses getUpdates while one is set)."""
        await self.client.call("deleteWebhook")
        backoff = 1.0
        while True:
            try:
                result = await self.client.call("getUpdates", http_timeout=40.0, timeout=30)
                for update in updates_of(result):
                    await self._keep(update)
                backoff = 1.0
            except ZaloApiError as exc:
                if exc.code == 408:  # the long poll ended with nothing to hand out
                    continue
                log.warning("Zalo getUpdates failed (%s); again in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)
            except ChatDown as exc:
                log.warning("Zalo getUpdates failed (%s); again in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 60.0)

    async def _keep(self, update: dict[str, Any]) -> None:
        """Store an update handed out by getUpdates, however long the database takes: the platform has no
        offset to fetch it again, so it is held here until it is stored."""
        delay = 0.5
        while True:
            try:
                await store_event(self.queue, update)
                return
            except Exception:  # noqa: BLE001 - the database away for a while must not lose the message
                log.exception("Zalo update not stored yet; again in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def start_webhook(self) -> None:
        """Serve the webhook and tell the platform its address and secret."""
        secret = self.settings.secret(self.settings.zalo.webhook_secret_env)
        if not 8 <= len(secret) <= 256:
            raise ValueError(f"{self.settings.zalo.webhook_secret_env} must hold a secret of 8-256 characters")
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post(self.settings.zalo.webhook_path, self._webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.settings.zalo.webhook_host, self.settings.zalo.webhook_port).start()
            await self.client.call("setWebhook", url=self.settings.zalo.webhook_url, secret_token=secret)
        except BaseException:
            await self._runner.cleanup()  # free the port for the supervisor's next try
            self._runner = None
            raise

    @property
    def webhook_port(self) -> int:
        """The port the webhook listens on (0 in config: a free one)."""
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def _webhook(self, request: web.Request) -> web.Response:
        secret = self.settings.secret(self.settings.zalo.webhook_secret_env)
        given = request.headers.get(SECRET_HEADER, "")
        if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
            log.warning("Zalo webhook call without the right secret refused")
            return web.Response(status=401)
        try:
            update = await request.json()
        except ValueError:
            return web.Response(status=400)
        if isinstance(update, dict):
            await store_event(self.queue, update.get("result", update) if "ok" in update else update)
        return web.json_response({"ok": True})

    async def stop(self) -> None:
        """Stop the webhook server and close the client."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.client.close()
