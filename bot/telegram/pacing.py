"""One shared sender pace for Telegram's limits: ~30 messages/s overall, 1/s per chat, 20/min per group.

Every message-producing call (send, edit) takes a slot first. The overall rate is evenly spaced (no two
slots closer than 1/rate s), so no one-second window ever holds more than the limit even with network
jitter; per chat a sliding window holds at most N in T seconds. A 429 anyway (another process with the
same token, a stricter server) pauses everything for `retry_after`, then the call is retried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram.exceptions import TelegramRetryAfter

from core.ports import ChatBusy

log = logging.getLogger(__name__)
T = TypeVar("T")
_MARGIN = 0.05  # seconds of safety on each window: the server's clock starts when the request arrives


class PacerBusy(ChatBusy):
    """The chat's next free slot is further away than the caller wants to wait (it retries later)."""


class Pacer:
    """Slots for outgoing Telegram calls; shared by everything that sends with one bot token."""

    def __init__(self, overall_per_second: float = 29.0, chat_seconds: float = 1.0,
                 group_per_minute: float = 20.0, *, max_retries: int = 5,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / overall_per_second if overall_per_second > 0 else 0.0
        self.chat_seconds = chat_seconds
        self.group_limit = (int(group_per_minute), 60.0) if group_per_minute > 0 else None
        self.max_retries = max_retries
        self.monotonic = monotonic
        self._next = 0.0
        self._paused_until = 0.0
        self._chat_next: dict[str, float] = {}
        self._group_sent: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = asyncio.Lock()
        self.retries = 0  # 429s seen (should stay 0)

    def _reserve(self, chat: str, is_group: bool, max_wait: float | None) -> float:
        """The moment this call may go out; books it at once so concurrent callers queue behind it.
        Raises PacerBusy (booking nothing) when that is more than `max_wait` seconds away."""
        now = self.monotonic()
        at = max(now, self._next, self._paused_until, self._chat_next.get(chat, 0.0))
        sent = self._group_sent[chat] if is_group and self.group_limit is not None else None
        if sent is not None and self.group_limit is not None:
            limit, window = self.group_limit
            while sent and sent[0] <= now - window - _MARGIN:
                sent.popleft()
            if len(sent) >= limit:
                at = max(at, sent[-limit] + window + _MARGIN)
        if max_wait is not None and at - now > max_wait:
            raise PacerBusy(at - now)
        if sent is not None:
            sent.append(at)
        self._next = at + self.interval
        self._chat_next[chat] = at + self.chat_seconds + (_MARGIN if self.chat_seconds else 0.0)
        return at

    async def run(self, chat: str | int, call: Callable[[], Awaitable[T]], *, max_wait: float | None = None) -> T:
        """Run one message-producing call in its slot; on 429 pause everyone and try again. With
        `max_wait`, a slot further away raises PacerBusy instead (a queued job frees its worker)."""
        key = str(chat)
        is_group = key.startswith("-")
        for attempt in range(self.max_retries + 1):
            async with self._lock:
                at = self._reserve(key, is_group, max_wait)
            delay = at - self.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                return await call()
            except TelegramRetryAfter as exc:
                self.retries += 1
                if attempt == self.max_retries:
                    raise
                log.warning("Telegram asked to wait %s s (chat %s)", exc.retry_after, key)
                self._paused_until = max(self._paused_until, self.monotonic() + exc.retry_after)
        raise AssertionError("unreachable")
