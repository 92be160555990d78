"""Database set-up: tortoise config from settings, connection, and schema migrations."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from edudesk.core.config import Settings
from edudesk.core.db_sqlite import BUSY_TIMEOUT_MS
from edudesk.core.statefiles import protect_state_files

log = logging.getLogger(__name__)

# Every module holding tables of the one tortoise app `models` (each feature keeps its own).
MODEL_MODULES = [
    "edudesk.core.models",  # the audit trail, the job queue
    "edudesk.core.intake.models",
    "edudesk.core.requests.models",
    "edudesk.core.chats.models",
    "edudesk.core.people.models",
    "edudesk.core.people.linkmodels",
    "edudesk.core.accounts.models",
    "edudesk.core.signing.models",
    "edudesk.core.signing.sendmodels",  # records sent to the receiving portal
    "edudesk.core.signing.lifemodels",  # archived revisions of records, withdrawals and adjustments
    "edudesk.core.reports.models",  # the archive of reports made (never purged)
]


def tortoise_config(database_url: str) -> dict[str, Any]:
    """The tortoise-orm config for one database URL (sqlite://path or postgres://...)."""
    if database_url.startswith("sqlite://") and database_url != "sqlite://:memory:":
        path = Path(database_url.removeprefix("sqlite://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        credentials: dict[str, Any] = {
            "file_path": str(path),
            # WAL lets readers run beside the writer. Each commit is still on disk before it returns (what
            # makes "stored before 250" hold across a power cut, not just a crash), but by a group fsync of the
            # WAL after the connection is let go, not inside COMMIT (db_sqlite.py): NORMAL, not FULL.
            "journal_mode": "WAL",
            "journal_size_limit": 64 * 1024 * 1024,
            "synchronous": "NORMAL",
            "foreign_keys": "ON",
            "busy_timeout": BUSY_TIMEOUT_MS,
        }
        connection: Any = {"engine": "edudesk.core.db_sqlite", "credentials": credentials}
    else:
        connection = database_url
    return {
        "connections": {"default": connection},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "edudesk.core.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


def dialect() -> str:
    """"sqlite" or "postgres" for the open default connection."""
    return str(get_connection("default").capabilities.dialect)


@asynccontextmanager
async def within_transaction() -> AsyncIterator[BaseDBAsyncClient]:
    """The transaction (or savepoint) this task is already in, else a new transaction.

    `in_transaction()` inside a transaction opens a savepoint: two more statements (SAVEPOINT, RELEASE) that buy
    nothing where the caller's own transaction or savepoint already takes back every write on an error. Only
    for code whose writes belong wholly to the caller's unit of work: an exception here still goes up to it.
    """
    current = get_connection("default")
    if isinstance(current, TransactionalDBClient):
        yield current
        return
    async with in_transaction() as conn:
        yield conn


async def lock_for_transaction(conn: BaseDBAsyncClient, name: str) -> None:
    """Serialise transactions that take the same named lock until they end, across processes.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, its writes already run one
    transaction at a time (tortoise keeps one connection per process, and edudesk one writing process).
    """
    if dialect() == "postgres":
        await conn.execute_query("SELECT pg_advisory_xact_lock(hashtext($1))", [name])


async def migrate_database(settings: Settings) -> None:
    """Apply pending schema migrations (tortoise-orm's own migration engine)."""
    from tortoise.migrations.api import migrate

    protect_state_files(settings)
    await migrate(config=tortoise_config(settings.database_url))
    await Tortoise.close_connections()


async def open_database(settings: Settings, *, migrate_first: bool = True) -> BaseDBAsyncClient:
    """Migrate, then open the connections for the service; returns the default client."""
    if migrate_first:
        await migrate_database(settings)
    else:
        protect_state_files(settings)
    await Tortoise.init(config=tortoise_config(settings.database_url))
    return get_connection("default")


async def close_database(client: BaseDBAsyncClient | None = None) -> None:
    """Close all connections, and `client` too.

    tortoise keeps connections per context: a caller that closes from another context than the one
    that opened (a test fixture's teardown, say) passes the client it was given, or its SQLite worker
    thread would outlive the process's other threads and keep the interpreter from exiting.
    """
    if client is not None:
        await client.close()
    await Tortoise.close_connections()


# For `tortoise makemigrations` (make migrations): the schema does not depend on the database URL.
MIGRATIONS_CONFIG = tortoise_config("sqlite:///tmp/edudesk-makemigrations.sqlite3")
