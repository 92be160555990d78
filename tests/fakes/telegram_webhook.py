"""Webhook delivery of the fake Telegram: POST updates in order, secret header, backoff, webhook replies."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from tests.fakes.telegram_format import Params
from tests.fakes.telegram_types import WebhookDelivery


class WebhookSender:
    """Mixin: a background loop that delivers the queued updates to the webhook while one is set."""

    webhook_retry: tuple[float, float]
    webhook_max_attempts: int | None
    webhook_timeout: float
    webhook_deliveries: list[WebhookDelivery]
    errors: list[str]
    dropped_updates: list[dict[str, Any]]
    _clock: Callable[[], float]
    _closing: bool
    _webhook: dict[str, Any] | None
    _webhook_error: tuple[int, str] | None
    _pending: list[dict[str, Any]]
    _notify: Callable[[], None]
    _wait_change: Callable[[float | None], Awaitable[None]]
    call: Callable[..., Awaitable[tuple[int, dict[str, Any]]]]

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
                except Exception as exc:  # a bug in the fake: keep it for the test to see, do not stop delivering
                    self.errors.append(f"webhook delivery: {type(exc).__name__}: {exc}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.webhook_retry[1])

    async def _deliver(
        self, session: aiohttp.ClientSession, hook: dict[str, Any], update: dict[str, Any], attempt: int
    ) -> bool:
        """One POST of the update; True when the update is done with (delivered, or dropped after the last try)."""
        status, error, reply = await self._post_update(session, hook, update)
        self.webhook_deliveries.append(
            WebhookDelivery(
                update["update_id"], hook["url"], attempt, status, error, self._clock(), hook["secret_token"]
            )
        )
        done = status is not None and 200 <= status < 300
        if not done:
            self._webhook_error = (int(time.time()), error or f"Wrong response from the webhook: {status}")
        if not done and not (self.webhook_max_attempts and attempt >= self.webhook_max_attempts):
            self._notify()
            return False
        if self._pending and self._pending[0] is update:
            self._pending.pop(0)
        if not done:
            self.dropped_updates.append(update)
        self._notify()
        if reply is not None:
            await self.call(str(reply.pop("method")), reply, via="webhook")
        return True

    async def _post_update(
        self, session: aiohttp.ClientSession, hook: dict[str, Any], update: dict[str, Any]
    ) -> tuple[int | None, str | None, Params | None]:
        headers = {"Content-Type": "application/json"}
        if hook["secret_token"]:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook["secret_token"]
        try:
            timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
            async with session.post(hook["url"], data=json.dumps(update), headers=headers, timeout=timeout) as resp:
                if not 200 <= resp.status < 300:
                    return resp.status, f"Wrong response from the webhook: {resp.status} {resp.reason}", None
                return resp.status, None, await self._webhook_reply(resp)
        except TimeoutError:
            return None, "Read timeout expired", None
        except (aiohttp.ClientError, OSError) as exc:
            return None, f"Connection failed: {type(exc).__name__}: {exc}", None

    @staticmethod
    async def _webhook_reply(resp: aiohttp.ClientResponse) -> Params | None:
        """A method call the webhook answered with (JSON or multipart with a "method" field), if any."""
        fields: dict[str, Any] = {}
        if resp.content_type.startswith("multipart/"):
            reader = aiohttp.MultipartReader.from_response(resp)
            while (part := await reader.next()) is not None:
                if isinstance(part, aiohttp.BodyPartReader) and part.name:
                    fields[part.name] = await part.text()
        else:
            try:
                body = json.loads(await resp.read() or b"null")
            except ValueError:
                return None
            fields = body if isinstance(body, dict) else {}
        return Params(fields) if fields.get("method") else None
