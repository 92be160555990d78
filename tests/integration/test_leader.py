"""Leadership among replicas on a real PostgreSQL: one holder at a time, the next takes over when it goes."""

from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import pytest

from edudesk.core.leader import LOCK_SPACE, Leadership, while_leading
from tests.conftest import PG_URL, wait_until

pytestmark = pytest.mark.db
needs_pg = pytest.mark.skipif(not PG_URL, reason="replicas share a PostgreSQL database; SQLite has one process")


def _name() -> str:
    return f"test:{secrets.token_hex(4)}"


async def holder_pid(name: str) -> int | None:
    """The backend holding the lead `name`, read from pg_locks as an operator would."""
    conn = await asyncpg.connect(PG_URL)
    try:
        return await conn.fetchval(
            "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = $1::int::oid AND l.objid = (hashtext($2)::bigint & 4294967295)::text::oid",
            LOCK_SPACE, name)
    finally:
        await conn.close()


async def terminate(pid: int) -> None:
    conn = await asyncpg.connect(PG_URL)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@needs_pg
async def test_only_one_replica_leads_and_the_other_takes_over_when_its_session_is_terminated() -> None:
    name = _name()
    first, second = Leadership(PG_URL, name, heartbeat=0.2), Leadership(PG_URL, name, heartbeat=0.2)
    try:
        assert await first.try_acquire()
        assert not await second.try_acquire()
        pid = await holder_pid(name)
        assert pid is not None
        watching = asyncio.get_running_loop().create_task(first.watch())  # noqa: TID251 - test harness
        await terminate(pid)  # what PostgreSQL does to the session of a process that died
        await asyncio.wait_for(first.lost.wait(), 10)
        await asyncio.wait_for(watching, 10)
        assert not first.held
        await asyncio.wait_for(second.acquire(), 10)
        assert await holder_pid(name) not in (None, pid)
    finally:
        await first.release()
        await second.release()


@needs_pg
async def test_releasing_the_lead_lets_the_next_replica_take_it_at_its_next_try() -> None:
    name = _name()
    first, second = Leadership(PG_URL, name), Leadership(PG_URL, name, retry=0.1)
    try:
        async with first:
            assert not await second.try_acquire()
        assert await holder_pid(name) is None  # the session is gone, the lock with it
        await asyncio.wait_for(second.acquire(), 10)
        assert second.held
    finally:
        await second.release()


@needs_pg
async def test_a_frozen_leader_loses_the_lead_to_the_server_within_its_stale_time() -> None:
    # The leader acquires and then never answers again (no heartbeat): a process stopped by SIGSTOP, a hung host.
    name = _name()
    frozen = Leadership(PG_URL, name, stale=2.0)
    waiting = Leadership(PG_URL, name, retry=0.1)
    try:
        assert await frozen.try_acquire()
        started = time.monotonic()
        await asyncio.wait_for(waiting.acquire(), 20)
        took = time.monotonic() - started
        print(f"a silent leader's lead passed on after {took:.1f} s")
        assert 1.5 <= took < 10
    finally:
        await frozen.release()
        await waiting.release()


@needs_pg
async def test_work_stops_when_the_lead_is_lost_and_starts_again_when_it_is_won_back() -> None:
    name = _name()
    lead = Leadership(PG_URL, name, retry=0.1, heartbeat=0.2)
    runs: list[str] = []
    stop = asyncio.Event()

    async def work() -> None:
        runs.append("start")
        stop.clear()
        await stop.wait()
        runs.append("stopped")

    task = asyncio.get_running_loop().create_task(while_leading(lead, work, stop.set))  # noqa: TID251 - test harness
    try:
        await wait_until(lambda: runs == ["start"], timeout=10)
        pid = await holder_pid(name)
        assert pid is not None
        await terminate(pid)
        await wait_until(lambda: runs == ["start", "stopped", "start"], timeout=15)
        new_pid = await holder_pid(name)
        assert new_pid not in (None, pid)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await wait_until(lambda: _released(name), timeout=10)  # cancelled with the service: the lock goes too


async def _released(name: str) -> bool:
    return await holder_pid(name) is None


@needs_pg
async def test_work_that_fails_releases_the_lead_and_its_error_reaches_the_supervisor() -> None:
    name = _name()
    lead = Leadership(PG_URL, name)

    async def work() -> None:
        raise RuntimeError("IMAP set-up is wrong")

    with pytest.raises(RuntimeError, match="set-up"):
        await while_leading(lead, work)
    assert await holder_pid(name) is None


async def test_on_sqlite_the_single_process_always_leads() -> None:
    lead = Leadership("sqlite:///tmp/unused.sqlite3", "imap:x")
    async with lead:
        assert lead.held
    assert not lead.held
