"""Two replicas with one bot token share one Telegram pace through the real Redis server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from edudesk.bot.telegram.pacing import LocalWindows, Pacer
from edudesk.bot.telegram.pacing_redis import RedisWindows
from tests.fakes.telegram import FakeTelegram

REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except OSError as exc:  # the machine kind runs Redis before every session and CI run
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {exc}")
    yield client
    await client.aclose()


async def burst(fake: FakeTelegram, pacers: list[Pacer], per_pacer: int) -> None:
    """Each 'replica' sends to its own distinct chats at once, through its own bot and pacer."""
    bots = [fake.make_bot() for _ in pacers]

    async def one(bot: Any, pacer: Pacer, chat: int) -> None:
        await pacer.run(chat, lambda: bot.send_message(chat_id=chat, text=f"Thông báo {chat}"))

    try:
        await asyncio.gather(*(one(bot, pacer, 1000 * (i + 1) + n)
                               for i, (bot, pacer) in enumerate(zip(bots, pacers, strict=True))
                               for n in range(per_pacer)))
    finally:
        for bot in bots:
            await bot.session.close()


def replica(windows: Any) -> Pacer:
    # 10 per half second each: exactly the fake's overall limit, so two replicas pacing alone exceed it.
    return Pacer(20.0, 0.0, 0.0, windows=windows, overall_period=0.5, max_retries=10)


async def test_two_replicas_sharing_redis_windows_never_exceed_the_overall_limit(redis: Redis) -> None:
    prefix = f"edudesk:test:{uuid.uuid4().hex}"
    async with FakeTelegram(global_limit=(10, 0.5), chat_limit=None, group_limit=None) as fake:
        pacers = [replica(RedisWindows(redis, prefix)), replica(RedisWindows(redis, prefix))]
        await burst(fake, pacers, 25)
        assert len(fake.sent_calls("sendMessage")) == 50
        assert fake.count_429 == 0
        times = sorted(c.time for c in fake.sent_calls("sendMessage"))
        assert (len(times) - 1) / (times[-1] - times[0]) > 0.8 * 20  # and close to the limit, not crawling


async def test_two_replicas_pacing_alone_get_429s(redis: Redis) -> None:
    async with FakeTelegram(global_limit=(10, 0.5), chat_limit=None, group_limit=None) as fake:
        pacers = [replica(LocalWindows()), replica(LocalWindows())]
        await burst(fake, pacers, 25)
        assert len(fake.sent_calls("sendMessage")) == 50  # delivered anyway, after pausing
        assert fake.count_429 > 0  # which is why several replicas need the Redis windows


async def test_a_429_seen_by_one_replica_pauses_the_other(redis: Redis) -> None:
    prefix = f"edudesk:test:{uuid.uuid4().hex}"
    a, b = RedisWindows(redis, prefix), RedisWindows(redis, prefix)
    await a.pause(1.5)
    assert 1.0 < await b.paused_for() <= 1.5
    await b.pause(0.2)  # a shorter pause never shortens the one in force
    assert await a.paused_for() > 1.0


async def test_a_slot_of_a_replica_that_died_is_freed_after_its_lease(redis: Redis) -> None:
    prefix = f"edudesk:test:{uuid.uuid4().hex}"
    dead = RedisWindows(redis, prefix, lease=0.3).window("chat:5", 1, 0.1)
    await dead.take()  # taken, never finished: the replica died mid-call
    alive = RedisWindows(redis, prefix, lease=0.3).window("chat:5", 1, 0.1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(alive.take(), 3)
    assert 0.3 <= loop.time() - began < 1.5
