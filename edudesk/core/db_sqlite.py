"""The SQLite engine for tortoise: a busy timeout, and transactions that take the write lock when they begin.

The service and the command line share one SQLite file; a writer waits for the other instead of failing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import OperationalError

BUSY_TIMEOUT_MS = 10_000  # how long a SQLite writer waits for another process (the CLI) to commit


class _ImmediateTransaction(SqliteTransactionWrapper):
    """A SQLite transaction that takes the write lock at BEGIN (waiting up to the busy timeout).

    A deferred transaction that reads and then writes fails at once with "database is locked" when another
    process committed in between (SQLITE_BUSY_SNAPSHOT: no busy handler can help); taking the lock first
    makes it wait its turn instead.
    """

    async def begin(self) -> None:
        """Start the transaction holding the write lock."""
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc


class _ImmediateContext(SqliteTransactionContext):
    """tortoise's context, except that a BEGIN that fails (busy past the timeout) releases the process lock."""

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


class ImmediateSqliteClient(SqliteClient):
    """tortoise's SQLite client whose transactions begin IMMEDIATE."""

    def _in_transaction(self) -> TransactionContext:
        return _ImmediateContext(_ImmediateTransaction(self), self._lock)


client_class = ImmediateSqliteClient  # this module is tortoise's "engine" for SQLite (its name must say sqlite)
