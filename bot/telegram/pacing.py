"""One shared sender pace for Telegram's limits: ~30 messages/s overall, 1/s per chat, 20/min per group.

Every message-producing call (send, edit) takes a slot in each window that applies: overall, its chat,
and its group. A window allows `limit` calls in any `period` seconds, judged by when earlier calls
*finished*: the server saw a request no later than its answer came back, so starting call n only
`period` after call n-limit finished keeps every server-side window within the limit whatever the
network latency or event-loop stalls. A 429 anyway (another process with the same token, a stricter
server) pauses everything for `retry_after`, then the call is retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram.exceptions import TelegramRetryAfter

from core.ports import ChatBusy

log = logging.getLogger(__name__)
T = TypeVar("T")


class PacerBusy(ChatBusy):
    """The chat's next free slot is further away than the caller wants to wait (it retries later)."""


class _Slot:
    __slots__ = ("done", "finished")

    def __init__(self) -> None:
        self.finished: float | None = None
        self.done = asyncio.Event()

    def finish(self, at: float) -> None:
        self.finished = at
        self.done.set()


class _Window:
    """At most `limit` calls in any `period` seconds (by the finish time of the earlier ones)."""

    def __init__(self, limit: int, period: float, monotonic: Callable[[], float]) -> None:
        self.limit = max(1, limit)
        self.period = period
        self.monotonic = monotonic
        self.slots: deque[_Slot] = deque(maxlen=self.limit)

    def free_at(self) -> float | None:
        """When the next call may start (None: the call it waits for is still in flight)."""
        if len(self.slots) < self.limit:
            return self.monotonic()
        oldest = self.slots[0]
        return None if oldest.finished is None else oldest.finished + self.period

    async def take(self) -> _Slot:
        """Wait for a free slot and take it (no await between the last check and the taking)."""
        while True:
            at = self.free_at()
            if at is None:
                await self.slots[0].done.wait()
                continue
            delay = at - self.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            slot = _Slot()
            self.slots.append(slot)
            return slot


class Pacer:
    """Slots for outgoing Telegram calls; shared by everything that sends with one bot token."""

    def __init__(self, overall_per_second: float = 29.0, chat_seconds: float = 1.0,
                 group_per_minute: float = 20.0, *, max_retries: int = 5,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self.overall = _Window(int(overall_per_second), 1.0, monotonic) if overall_per_second > 0 else None
        self.chat_seconds = chat_seconds
        self.group_per_minute = group_per_minute
        self.max_retries = max_retries
        self._paused_until = 0.0
        self._chats: dict[str, list[_Window]] = {}
        self.retries = 0  # 429s seen (should stay 0)

    def _windows(self, chat: str) -> list[_Window]:
        windows = self._chats.get(chat)
        if windows is None:
            windows = []
            if self.chat_seconds > 0:
                windows.append(_Window(1, self.chat_seconds, self.monotonic))
            if chat.startswith("-") and self.group_per_minute > 0:
                # Telegram's 20 per minute as a window of 20: the rate sets the period (20/min: 60 s),
                # so a test can scale time down without changing the burst size.
                windows.append(_Window(20, 1200.0 / self.group_per_minute, self.monotonic))
            self._chats[chat] = windows
        return windows

    async def run(self, chat: str | int, call: Callable[[], Awaitable[T]], *, max_wait: float | None = None) -> T:
        """Run one message-producing call in its slots; on 429 pause everyone and try again. With
        `max_wait`, a chat whose next slot is further away raises PacerBusy instead (a queued job
        frees its worker and comes back)."""
        key = str(chat)
        windows = self._windows(key)
        for attempt in range(self.max_retries + 1):
            if max_wait is not None:
                now = self.monotonic()
                wait = max([(w.free_at() or now) - now for w in windows] + [self._paused_until - now, 0.0])
                if wait > max_wait:
                    raise PacerBusy(wait)
            slots = [await w.take() for w in windows]
            pause = self._paused_until - self.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            if self.overall is not None:
                slots.append(await self.overall.take())
            try:
                return await call()
            except TelegramRetryAfter as exc:
                self.retries += 1
                if attempt == self.max_retries:
                    raise
                log.warning("Telegram asked to wait %s s (chat %s)", exc.retry_after, key)
                self._paused_until = max(self._paused_until, self.monotonic() + exc.retry_after)
            finally:
                end = self.monotonic()
                for slot in slots:
                    slot.finish(end)
        raise AssertionError("unreachable")
