"""Sliding-window flood limits of the fake Telegram Bot API (per bot, per private chat, per group)."""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable

Limit = tuple[int, float] | None


class SlidingWindow:
    """At most `count` events in any window of `seconds`; remembers the times of the accepted ones."""

    def __init__(self, count: int, seconds: float) -> None:
        if count < 1 or seconds <= 0:
            raise ValueError(f"bad limit ({count}, {seconds})")
        self.count = count
        self.seconds = seconds
        self.times: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more event fits (0.0 when it fits now)."""
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        if len(self.times) < self.count:
            return 0.0
        return self.times[0] + self.seconds - now

    def record(self, now: float) -> None:
        """Count one accepted event at `now`."""
        self.times.append(now)


class FloodControl:
    """Telegram's limits for message-producing calls: overall per bot, per private chat, per group chat."""

    def __init__(
        self,
        clock: Callable[[], float],
        global_limit: Limit = (30, 1.0),
        chat_limit: Limit = (1, 1.0),
        group_limit: Limit = (20, 60.0),
    ) -> None:
        self.clock = clock
        self.global_limit = global_limit
        self.chat_limit = chat_limit
        self.group_limit = group_limit
        self._global = SlidingWindow(*global_limit) if global_limit else None
        self._chats: dict[int, SlidingWindow] = {}
        self.count_429 = 0
        self.count_429_per_chat: Counter[int] = Counter()

    def _window_for(self, chat_id: int, chat_type: str) -> SlidingWindow | None:
        limit = self.chat_limit if chat_type == "private" else self.group_limit
        if chat_type == "channel":
            limit = None
        if limit is None:
            return None
        if chat_id not in self._chats:
            self._chats[chat_id] = SlidingWindow(*limit)
        return self._chats[chat_id]

    def acquire(self, chat_id: int, chat_type: str) -> int:
        """Count one send to the chat and return 0, or return retry_after (int >= 1) and count nothing."""
        now = self.clock()
        windows = [w for w in (self._global, self._window_for(chat_id, chat_type)) if w is not None]
        wait = max((w.wait(now) for w in windows), default=0.0)
        if wait > 0:
            self.count_429 += 1
            self.count_429_per_chat[chat_id] += 1
            return max(1, math.ceil(wait))
        for window in windows:
            window.record(now)
        return 0

    def reset(self) -> None:
        """Forget every counted send (not the 429 counters)."""
        if self._global is not None:
            self._global.times.clear()
        self._chats.clear()
