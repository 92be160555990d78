"""One shared sender pace for Telegram's limits: ~30 messages/s overall, 1/s per chat, 20/min per group.

Every message-producing call (send, edit) takes a slot in each window that applies: overall, its chat,
and its group. A window allows `limit` calls in any `period` seconds, judged by when earlier calls
*finished*: the server saw a request no later than its answer came back, so starting call n only
`period` after call n-limit finished keeps every server-side window within the limit whatever the
network latency or event-loop stalls. A 429 anyway (another process with the same token, a stricter
server) pauses everything for `retry_after`, then the call is retried.

Windows live in this process (`LocalWindows`, one replica) or in Redis (`bot.telegram.pacing_redis`,
shared by every replica using the same bot token).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiogram.exceptions import TelegramRetryAfter

from edudesk.core.ops import CHAT_COUNTS
from edudesk.core.ports import ChatBusy

log = logging.getLogger(__name__)
T = TypeVar("T")


class PacerBusy(ChatBusy):
    """The chat's next free slot is further away than the caller wants to wait (it retries later)."""


class Window(Protocol):
    """At most `limit` calls in any `period` seconds, counted by when earlier calls finished."""

    async def take(self, max_wait: float | None = None) -> Any:
        """Wait for a slot and take it; raises PacerBusy (taking nothing) if that is over `max_wait` s."""
        ...

    async def finish(self, slot: Any) -> None:
        """The call in `slot` has its answer: the slot counts from now until `period` has passed."""
        ...

    async def cancel(self, slot: Any) -> None:
        """The call in `slot` never went out."""
        ...


class Windows(Protocol):
    """Where windows and the 429 pause are kept."""

    def window(self, key: str, limit: int, period: float) -> Window:
        """The window named `key` ("overall", "chat:<id>", "group:<id>")."""
        ...

    async def pause(self, seconds: float) -> None:
        """Pause every sender for `seconds` (the server answered 429)."""
        ...

    async def paused_for(self) -> float:
        """Seconds left of a pause (0 when none)."""
        ...


class _Slot:
    __slots__ = ("done", "finished")

    def __init__(self) -> None:
        self.finished: float | None = None
        self.done = asyncio.Event()


class LocalWindow:
    """A window in this process."""

    def __init__(self, limit: int, period: float, monotonic: Callable[[], float]) -> None:
        self.limit = max(1, limit)
        self.period = period
        self.monotonic = monotonic
        self.slots: deque[_Slot] = deque()

    def _free_at(self) -> float | None:
        while len(self.slots) > self.limit:  # cancelled slots leave gaps; keep only the newest `limit`
            self.slots.popleft()
        if len(self.slots) < self.limit:
            return self.monotonic()
        oldest = self.slots[0]
        return None if oldest.finished is None else oldest.finished + self.period

    async def take(self, max_wait: float | None = None) -> _Slot:
        """Wait for a free slot and take it (no await between the last check and the taking)."""
        while True:
            at = self._free_at()
            if at is None:
                if max_wait is not None and max_wait <= 0:
                    raise PacerBusy(0.05)
                await self.slots[0].done.wait()
                continue
            delay = at - self.monotonic()
            if max_wait is not None and delay > max_wait:
                raise PacerBusy(delay)
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            slot = _Slot()
            self.slots.append(slot)
            return slot

    async def finish(self, slot: _Slot) -> None:
        """Count the slot from now."""
        slot.finished = self.monotonic()
        slot.done.set()

    async def cancel(self, slot: _Slot) -> None:
        """Give the slot back."""
        try:
            self.slots.remove(slot)
        except ValueError:
            pass
        slot.done.set()


class LocalWindows:
    """Windows kept in this process (the embedded default: one replica)."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self._windows: dict[str, LocalWindow] = {}
        self._paused_until = 0.0

    def window(self, key: str, limit: int, period: float) -> LocalWindow:
        """The window named `key`, made on first use."""
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = LocalWindow(limit, period, self.monotonic)
        return w

    async def pause(self, seconds: float) -> None:
        """Pause every sender of this process."""
        self._paused_until = max(self._paused_until, self.monotonic() + seconds)

    async def paused_for(self) -> float:
        """Seconds of pause left."""
        return max(0.0, self._paused_until - self.monotonic())


class Pacer:
    """Slots for outgoing Telegram calls; shared by everything that sends with one bot token."""

    def __init__(self, overall_per_second: float = 29.0, chat_seconds: float = 1.0,
                 group_per_minute: float = 20.0, *, max_retries: int = 5, windows: Windows | None = None,
                 overall_period: float = 1.0) -> None:
        self.windows: Windows = windows or LocalWindows()
        self.overall = (int(overall_per_second * overall_period), overall_period) if overall_per_second > 0 else None
        self.chat_seconds = chat_seconds
        self.group_per_minute = group_per_minute
        self.max_retries = max_retries
        self.retries = 0  # 429s seen (should stay 0)

    def _windows_for(self, chat: str) -> list[Window]:
        found: list[Window] = []
        if self.chat_seconds > 0:
            found.append(self.windows.window(f"chat:{chat}", 1, self.chat_seconds))
        if chat.startswith("-") and self.group_per_minute > 0:
            # Telegram's 20 per minute as a window of 20: the rate sets the period (20/min: 60 s), so a
            # test can scale time down without changing the burst size.
            found.append(self.windows.window(f"group:{chat}", 20, 1200.0 / self.group_per_minute))
        if self.overall is not None:
            found.append(self.windows.window("overall", *self.overall))
        return found

    async def run(self, chat: str | int, call: Callable[[], Awaitable[T]], *, max_wait: float | None = None) -> T:
        """Run one message-producing call in its slots; on 429 pause everyone and try again. With
        `max_wait`, a chat whose next slot is further away raises PacerBusy instead (a queued job
        frees its worker and comes back)."""
        key = str(chat)
        windows = self._windows_for(key)
        for attempt in range(self.max_retries + 1):
            taken: list[tuple[Window, Any]] = []
            try:
                for i, w in enumerate(windows):
                    # The overall window is short (a second): only the chat's own windows may send a job away.
                    limit = max_wait if i < len(windows) - 1 or self.overall is None else None
                    taken.append((w, await w.take(limit)))
                pause = await self.windows.paused_for()
                if pause > 0:
                    await asyncio.sleep(pause)
            except BaseException:
                for w, slot in taken:
                    await w.cancel(slot)
                raise
            try:
                result = await call()
                CHAT_COUNTS.sent("telegram")  # /metrics: edudesk_chat_sends_total
                return result
            except TelegramRetryAfter as exc:
                self.retries += 1
                CHAT_COUNTS.throttled("telegram")
                if attempt == self.max_retries:
                    raise
                log.warning("Telegram asked to wait %s s (chat %s)", exc.retry_after, key)
                await self.windows.pause(exc.retry_after)
            finally:
                for w, slot in taken:
                    await w.finish(slot)
        raise AssertionError("unreachable")
