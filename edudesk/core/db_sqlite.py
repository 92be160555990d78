"""The SQLite engine for tortoise: a busy timeout, transactions that take the write lock when they begin, and
group commit (each commit durable before it returns, one fsync shared by the commits that finish together).

The service and the command line share one SQLite file; a writer waits for the other instead of failing.

Durability: a commit returns only once its data is on disk, as with `synchronous = FULL`, which is what makes
"stored before 250" hold across a power cut and not just a crash. FULL fsyncs the WAL inside each COMMIT,
while the process's one connection is held, so every writer queued behind it (SMTP sessions storing mail,
jobs claiming and completing) waited ~4.4 ms per commit on this disk, one after the other. Here the database
runs `synchronous = NORMAL` (in WAL mode: consistent after a power cut, and each commit already in the
operating system's cache, which survives kill -9), and the commit then waits, *after* letting go of the
connection, for an fsync of the WAL file that began after its COMMIT (`WalSync.barrier`). The next writer
runs meanwhile, and every commit that ends while one fsync runs shares the next one.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import OperationalError

BUSY_TIMEOUT_MS = 10_000  # how long a SQLite writer waits for another process (the CLI) to commit
READS = ("SELECT", "PRAGMA", "EXPLAIN")  # statements that change nothing (no fsync after them)
_CARRIED: ContextVar[bool] = ContextVar("edudesk_sqlite_carried", default=False)


@contextmanager
def carried_by_a_later_commit() -> Iterator[None]:
    """The writes this task makes inside do not wait for their own fsync; a later durable commit carries them.

    The WAL is written and synced in order, so a commit is on disk once any commit after it is. A crash
    (kill -9) loses nothing either way: the commit is in the operating system's cache. Only a power cut
    between this commit and the next durable one can undo it, so this is only for writes whose undoing leaves
    a state the code already handles, followed by a durable commit of the same work. A job handler's
    writes are that (the job's completion is committed durably after them, and a job not marked done runs
    again, idempotently); `mailer/delivery.py` uses it for an acknowledgement's slot and sent state. Each
    thread hop to wait for an fsync costs more CPU than the statement it follows.
    """
    token = _CARRIED.set(True)
    try:
        yield
    finally:
        _CARRIED.reset(token)


def _must_sync() -> bool:
    return not _CARRIED.get()


class WalSync:
    """Group fsync of a database's WAL file: `barrier()` returns once an fsync that began after the call has
    finished, so everything committed before the call is on disk. Callers that arrive while one fsync runs
    share the next. The first fsync of a process also syncs the folder (the WAL file's own entry)."""

    def __init__(self, database: str) -> None:
        self.wal = Path(f"{database}-wal")
        self.started = 0  # fsyncs begun
        self.done = 0  # fsyncs finished (in order: one at a time)
        self._task: asyncio.Task[None] | None = None
        self._folder_synced = False

    async def barrier(self) -> None:
        """Wait until what was committed before this call is durable (raises if the fsync failed)."""
        needed = self.started + 1
        while self.done < needed:
            task = self._task
            if task is None or task.get_loop() is not asyncio.get_running_loop():
                self.started += 1
                # Not background work: every caller awaits it; shielded so that one caller cancelled (an SMTP
                # client gone) does not cancel the fsync the others wait for.
                task = self._task = asyncio.get_running_loop().create_task(self._sync(self.started))
            await asyncio.shield(task)

    async def _sync(self, number: int) -> None:
        try:
            await asyncio.to_thread(self._fsync)
            self.done = max(self.done, number)
        finally:
            self._task = None

    def _fsync(self) -> None:
        try:
            fd = os.open(self.wal, os.O_RDONLY)
        except FileNotFoundError:  # no WAL yet (nothing written since the last checkpoint closed it)
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        if not self._folder_synced:
            folder = os.open(self.wal.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
            self._folder_synced = True


class _ImmediateTransaction(SqliteTransactionWrapper):
    """A SQLite transaction that takes the write lock at BEGIN (waiting up to the busy timeout).

    A deferred transaction that reads and then writes fails at once with "database is locked" when another
    process committed in between (SQLITE_BUSY_SNAPSHOT: no busy handler can help); taking the lock first
    makes it wait its turn instead.
    """

    async def begin(self) -> None:
        """Start the transaction holding the write lock."""
        try:
            if self._connection.in_transaction:  # one left open by a failed finish: tortoise commits it first
                await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc
        self.changes_at_begin = self._connection.total_changes


class _ImmediateContext(SqliteTransactionContext):
    """tortoise's context, except that a BEGIN that fails (busy past the timeout) releases the process lock,
    and that a transaction that wrote waits for its group fsync once it has let go of the connection."""

    async def __aenter__(self) -> Any:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            self._trxlock.release()
            raise
        return self.connection

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        conn = self.connection
        try:
            wrote = conn._connection.total_changes != getattr(conn, "changes_at_begin", None)
        except Exception:  # noqa: BLE001 - a connection closed meanwhile: tortoise's exit must still run
            wrote = True
        await super().__aexit__(exc_type, exc_val, exc_tb)
        if exc_type is None and wrote and _must_sync():
            await conn._parent.wal_sync.barrier()


class ImmediateSqliteClient(SqliteClient):
    """tortoise's SQLite client whose transactions begin IMMEDIATE and whose commits are group-synced."""

    def __init__(self, file_path: str, **kwargs: Any) -> None:
        super().__init__(file_path, **kwargs)
        self.wal_sync = WalSync(file_path)

    def _in_transaction(self) -> TransactionContext:
        return _ImmediateContext(_ImmediateTransaction(self), self._lock)

    async def _durable(self, query: str) -> None:
        if not query.lstrip()[:7].upper().startswith(READS) and _must_sync():
            await self.wal_sync.barrier()

    async def execute_insert(self, query: str, values: list) -> int:
        """tortoise's, durable before it returns."""
        result = await super().execute_insert(query, values)
        if _must_sync():
            await self.wal_sync.barrier()
        return result

    async def execute_many(self, query: str, values: list[list]) -> None:
        """tortoise's, durable before it returns."""
        await super().execute_many(query, values)
        if _must_sync():
            await self.wal_sync.barrier()

    async def execute_query(self, query: str, values: list | None = None) -> tuple[int, Sequence[dict]]:
        """tortoise's; a statement that may write is durable before it returns."""
        result = await super().execute_query(query, values)
        await self._durable(query)
        return result

    async def execute_script(self, query: str) -> None:
        """tortoise's, durable before it returns."""
        await super().execute_script(query)
        await self.wal_sync.barrier()


client_class = ImmediateSqliteClient  # this module is tortoise's "engine" for SQLite (its name must say sqlite)
