"""The intake bench's view of edudesk's database: a read-only SQLite file or a private PostgreSQL database.

`bench/intake.py` polls counts and reads the request/ack times through one of these, so the same run
measures both databases. The PostgreSQL one is made and dropped here (as `scripts/pg_test_db.py`).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

ADMIN = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


class BenchDb(Protocol):
    """What the bench reads from edudesk's database."""

    name: str
    url: str  # what [database].url is set to

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """All rows of one query (raises on a database error)."""
        ...

    def close(self) -> None:
        """Release the connection (and drop the database the bench made)."""
        ...


class SqliteBenchDb:
    """The default: edudesk's SQLite file in the temp data dir, read read-only."""

    name = "sqlite"

    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "data" / "edudesk.sqlite3"
        self.url = "sqlite://{data_dir}/edudesk.sqlite3"

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of `sql` from the file (read-only, one short connection)."""
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30) as conn:
                return list(conn.execute(sql).fetchall())
        except sqlite3.Error as exc:
            raise BenchDbError(str(exc)) from exc

    def close(self) -> None:
        """Nothing to release."""


class PostgresBenchDb:
    """A database of its own on the local PostgreSQL server, created now and dropped by `close`."""

    name = "postgres"

    def __init__(self) -> None:
        import asyncpg

        self._asyncpg = asyncpg
        self.db_name = f"edudesk_bench_{os.getpid()}_{secrets.token_hex(3)}"
        self._loop = asyncio.new_event_loop()
        self._admin(f'CREATE DATABASE "{self.db_name}"')
        host = ADMIN.split("://", 1)[1].rsplit("/", 1)[0]
        self.url = f"postgres://{host}/{self.db_name}"
        self._conn: Any = None

    def _admin(self, statement: str) -> None:
        async def run() -> None:
            conn = await self._asyncpg.connect(ADMIN)
            try:
                await conn.execute(statement)
            finally:
                await conn.close()
        self._loop.run_until_complete(run())

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of `sql` over one kept connection."""
        async def run() -> list[tuple[Any, ...]]:
            if self._conn is None:
                self._conn = await self._asyncpg.connect(self.url.replace("postgres://", "postgresql://", 1))
            return [tuple(r) for r in await self._conn.fetch(sql)]
        try:
            return self._loop.run_until_complete(run())
        except (self._asyncpg.PostgresError, OSError) as exc:
            raise BenchDbError(str(exc)) from exc

    def close(self) -> None:
        """Close the connection and drop the database."""
        if self._conn is not None:
            self._loop.run_until_complete(self._conn.close())
            self._conn = None
        self._admin(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        self._loop.close()


class BenchDbError(Exception):
    """The table is not there yet (before migrations) or the database refused the read."""


def timestamp(value: str | datetime | None) -> float | None:
    """Epoch seconds of a timestamp as either database returns it (ISO text on SQLite)."""
    if value is None:
        return None
    return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).timestamp()
