"""Leadership among replicas: work that must run on one replica at a time (the IMAP watcher, the scheduler).

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on one dedicated connection for as
long as the replica leads — not one borrowed from tortoise's pool, which is shared and may be recycled.
When the process dies, its socket closes, PostgreSQL ends the session and frees the lock at once. A replica
that hangs without dying (a frozen process, a dead host, a network cut) is covered by the session's own
`idle_session_timeout`: the holder asks `SELECT 1` every `heartbeat` seconds, so a session idle for `stale`
seconds belongs to a holder that stopped; the server ends it and the lock is free. TCP keepalives (and
`tcp_user_timeout`) on the same session let the server notice a vanished peer even mid-query. The holder
itself notices a lost connection (terminated, or a heartbeat that gets no answer in time) and sets `lost`:
its work stops before another replica can take over (`stale` + `retry` < 30 s).

SQLite: one process by design, leadership is always granted and never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import asyncpg
from tortoise.backends.base.config_generator import expand_db_url

log = logging.getLogger(__name__)

# The two-key form of advisory locks: a space of its own, apart from `lock_for_transaction`'s one-key locks.
LOCK_SPACE = 0x6564  # "ed"
RETRY_SECONDS = 5.0  # how often a replica that does not lead asks again
HEARTBEAT_SECONDS = 5.0  # how often the leader proves it is alive (and checks its connection)
STALE_SECONDS = 20.0  # a leader silent this long has its session ended by the server (idle_session_timeout)
STOP_GRACE_SECONDS = 30.0  # how long stopped work may take to return before it is cancelled


class Leadership:
    """One named lead: `acquire` waits until this replica holds it, `lost` is set when it stops holding it."""

    def __init__(self, database_url: str, name: str, *, what: str = "", retry: float = RETRY_SECONDS,
                 heartbeat: float = HEARTBEAT_SECONDS, stale: float = STALE_SECONDS) -> None:
        self.database_url = database_url
        self.name = name
        self.what = what or name  # for the log: "IMAP watcher"
        self.retry, self.heartbeat, self.stale = retry, heartbeat, stale
        self.lost = asyncio.Event()
        self.held = False
        self._conn: Any = None  # asyncpg.Connection while PostgreSQL and held
        self._postgres = not database_url.startswith("sqlite")

    async def acquire(self) -> None:
        """Wait until this replica leads (asking again every `retry` seconds); logs once while another does."""
        told = False
        while True:
            if await self.try_acquire():
                if told:
                    log.info("%s: this replica leads now (%s)", self.what, self.name)
                return
            if not told:
                log.info("%s on another replica", self.what)
                told = True
            await asyncio.sleep(self.retry)

    async def try_acquire(self) -> bool:
        """Take the lead if nobody holds it; True when this replica leads."""
        if self.held:
            return True
        self.lost = asyncio.Event()
        if not self._postgres:
            self.held = True
            return True
        try:
            conn = await self._connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("%s: cannot reach the database to compete for the lead: %r", self.what, exc)
            return False
        try:
            won = await asyncio.wait_for(
                conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext($2))", LOCK_SPACE, self.name), self.stale)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("%s: asking for the lead failed: %r", self.what, exc)
            won = False
        if not won:
            conn.terminate()
            return False
        self._conn, self.held = conn, True
        conn.add_termination_listener(lambda _conn: self._drop("connection closed"))
        return True

    async def _connect(self) -> Any:
        creds = expand_db_url(self.database_url)["credentials"]
        settings = {
            "application_name": f"edudesk lead {self.name}"[:63],
            "idle_session_timeout": str(int(self.stale * 1000)),
            "tcp_keepalives_idle": "5", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3",
            "tcp_user_timeout": str(int(self.stale * 1000)),
        }
        return await asyncpg.connect(host=creds.get("host"), port=creds.get("port"), user=creds.get("user"),
                                     password=creds.get("password"), database=creds.get("database"),
                                     ssl=creds.get("ssl"), timeout=self.stale, server_settings=settings)

    async def watch(self) -> None:
        """While leading: prove it every `heartbeat` seconds; returns (with `lost` set) once the lead is gone."""
        while self.held:
            if self._conn is None:  # SQLite: nothing can take it away
                await self.lost.wait()
                return
            try:
                await asyncio.wait_for(self.lost.wait(), self.heartbeat)
            except TimeoutError:
                pass
            if not self.held:
                return
            try:
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), self.heartbeat)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                self._drop(f"heartbeat failed: {exc!r}")

    def _drop(self, why: str) -> None:
        if self.held:
            log.warning("%s: lost the lead (%s)", self.what, why)
        self.held = False
        self.lost.set()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()  # never keep a session that may still hold the lock unseen

    async def release(self) -> None:
        """Give the lead up (closing the session frees the lock)."""
        conn, self._conn = self._conn, None
        self.held = False
        self.lost.set()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()

    async def __aenter__(self) -> Leadership:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


async def while_leading(lead: Leadership, work: Callable[[], Coroutine[Any, Any, None]],
                        stop: Callable[[], None] | None = None, *, grace: float = STOP_GRACE_SECONDS) -> None:
    """For the supervisor: compete for `lead`; while held run `work()`; when lost, `stop()` it (or cancel
    it), wait for it to end, and compete again. Returns when the work itself returns; its errors propagate."""
    while True:
        await lead.acquire()
        try:
            async with asyncio.TaskGroup() as tg:
                running = tg.create_task(work(), name=f"lead:{lead.name}")
                watching = tg.create_task(lead.watch(), name=f"watch:{lead.name}")
                await asyncio.wait({running, watching}, return_when=asyncio.FIRST_COMPLETED)
                if running.done():
                    watching.cancel()
                    return
                # The lead is gone: stop the work before another replica can start its own.
                if stop is not None:
                    stop()
                    await asyncio.wait({running}, timeout=grace)
                running.cancel()
        except ExceptionGroup as group:  # the work failed: the supervisor logs and restarts it, as without a lead
            raise group.exceptions[0] if len(group.exceptions) == 1 else group from None
        finally:
            await lead.release()


class Stoppable(Protocol):
    """A long-lived service with a `close` that makes its `run` return (`ImapIntake`)."""

    async def run(self) -> None:
        """Serve until closed."""

    def close(self) -> None:
        """Ask `run` to return."""


async def lead_each(lead: Leadership, make: Callable[[], Stoppable]) -> None:
    """`while_leading` with a fresh service from `make()` for each term (a closed one does not start again)."""
    current: list[Stoppable] = []

    async def work() -> None:
        current[:] = [make()]
        await current[0].run()

    await while_leading(lead, work, lambda: current[0].close())
