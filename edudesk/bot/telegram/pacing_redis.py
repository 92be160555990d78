"""Pacing windows in Redis, shared by every replica that sends with one bot token.

Each window is a sorted set: a call in flight is a member scored `now + lease` (it occupies the window
until its answer comes back, or the lease runs out if its replica died), a finished call is re-scored
with its finish time and leaves the window `period` seconds later. Times come from Redis's own clock
(TIME), so replicas with skewed clocks still agree.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from redis.asyncio import Redis

from edudesk.bot.telegram.pacing import PacerBusy

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local limit, period, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return {'wait', tostring(pause / 1000)} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil((period + lease) * 1000))
  return {'ok', '0'}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local score = tonumber(oldest[2])
if score > now then return {'inflight', tostring(math.min(score - now, 0.05))} end
return {'wait', tostring(score + period - now)}
"""
_FINISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return 1
"""


class RedisWindow:
    """One window in Redis."""

    def __init__(self, windows: RedisWindows, key: str, limit: int, period: float) -> None:
        self.windows = windows
        self.key = key
        self.limit = max(1, limit)
        self.period = period

    async def take(self, max_wait: float | None = None) -> str:
        """Wait for a free slot and take it; PacerBusy when it is further than `max_wait` away."""
        member = uuid.uuid4().hex
        while True:
            status, wait = await self.windows.redis.eval(  # type: ignore[misc]
                _TAKE, 2, self.key, self.windows.pause_key, self.limit, self.period, self.windows.lease, member)
            status = status.decode() if isinstance(status, bytes) else status
            delay = float(wait)
            if status == "ok":
                return member
            if max_wait is not None and status == "wait" and delay > max_wait:
                raise PacerBusy(delay)
            await asyncio.sleep(max(delay, 0.005))

    async def finish(self, slot: str) -> None:
        """Count the slot from Redis's now."""
        await self.windows.redis.eval(_FINISH, 1, self.key, slot, self.period + 1.0)  # type: ignore[misc]

    async def cancel(self, slot: str) -> None:
        """Give the slot back."""
        await self.windows.redis.zrem(self.key, slot)


class RedisWindows:
    """All windows of one bot token under `prefix` in Redis, and the shared 429 pause."""

    def __init__(self, redis: Redis, prefix: str, *, lease: float = 30.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.lease = lease  # an in-flight call of a replica that died stops counting after this
        self.pause_key = f"{prefix}:pause"
        self._windows: dict[str, RedisWindow] = {}

    def window(self, key: str, limit: int, period: float) -> RedisWindow:
        """The window named `key`."""
        w = self._windows.get(key)
        if w is None:
            w = self._windows[key] = RedisWindow(self, f"{self.prefix}:{key}", limit, period)
        return w

    async def pause(self, seconds: float) -> None:
        """Pause every replica's sender (the pause only ever grows)."""
        ms = max(1, int(seconds * 1000))
        current = await self.redis.pttl(self.pause_key)
        if current is None or current < ms:
            await self.redis.set(self.pause_key, b"1", px=ms)

    async def paused_for(self) -> float:
        """Seconds of the shared pause left."""
        ms = await self.redis.pttl(self.pause_key)
        return max(0.0, ms / 1000) if ms and ms > 0 else 0.0

    async def close(self) -> None:
        """Close the connection pool."""
        await self.redis.aclose()


def redis_windows(url: str, token: str) -> tuple[RedisWindows, Any]:
    """Windows for a bot token (the prefix names the bot by its id, never by the secret part)."""
    redis = Redis.from_url(url)
    bot_id = token.split(":", 1)[0]
    return RedisWindows(redis, f"edudesk:tg:{bot_id}"), redis
