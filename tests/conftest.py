"""Shared fixtures: settings in a temp folder, a database (SQLite, or PostgreSQL when
EDUDESK_TEST_DATABASE_URL is set), the wired App, real SMTP and IMAP servers.

A fresh database is not migrated per test: the migrations run once per session (`fresh_database`) and each
test gets a copy of that schema (SQLite: a file copy of a migrated template; PostgreSQL: the migrated tables
emptied and their sequences restarted, or dropped and migrated again when a test changed the schema).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.config import Settings, load_settings
from edudesk.core.db import migrate_database
from edudesk.core.ports import FakeClock
from tests.hust import hust_overrides
from tests.servers.dovecot import dovecot_fixture  # noqa: F401
from tests.servers.slapd import slapd_fixture  # noqa: F401
from tests.servers.smtp_sink import SmtpSink, smtp_sink_fixture  # noqa: F401

PG_URL = os.environ.get("EDUDESK_TEST_DATABASE_URL", "")


async def reset_postgres(url: str) -> None:
    """Drop every table so each test migrates a clean schema."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


class _Schema:
    """What this session already migrated, for `fresh_database`."""

    template_dir: Path | None = None  # set by the app_factory fixture: a temp dir of this session
    sqlite_template: Path | None = None  # a migrated, checkpointed SQLite file
    pg_fingerprint: list[Any] | None = None  # the PostgreSQL schema right after migrating
    pg_clear: str = ""  # SQL that empties that schema's tables and restarts its sequences
    pg_truncate: str = ""  # the same for a user that may not turn foreign keys off (slower)


_PG_FINGERPRINT = """
SELECT 'c', table_name::text, column_name::text, data_type::text, is_nullable::text, column_default::text
  FROM information_schema.columns WHERE table_schema = 'public'
UNION ALL
SELECT 'i', tablename::text, indexname::text, indexdef::text, '', '' FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 's', sequence_name::text, '', '', '', '' FROM information_schema.sequences WHERE sequence_schema = 'public'
ORDER BY 1, 2, 3, 4
"""


async def _pg_fingerprint(conn: Any) -> list[Any]:
    rows = [tuple(r) for r in await conn.fetch(_PG_FINGERPRINT)]
    # Which migrations ran belongs to the schema too (tortoise's own table is not emptied between tests).
    tables = {r[1] for r in rows if r[0] == "c"}
    if "tortoise_migrations" in tables:
        rows += [tuple(r) for r in await conn.fetch("SELECT app, name FROM tortoise_migrations ORDER BY 1, 2")]
    return rows


async def _pg_fresh(url: str, scratch: Path) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        # A previous test's leftover connection must not hold locks on the rows about to go.
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        if _Schema.pg_fingerprint is not None and await _pg_fingerprint(conn) == _Schema.pg_fingerprint:
            try:
                await conn.execute(_Schema.pg_clear)
            except asyncpg.InsufficientPrivilegeError:  # session_replication_role wants a superuser
                _Schema.pg_clear = _Schema.pg_truncate
                await conn.execute(_Schema.pg_clear)
            return
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        await migrate_database(make_settings(scratch, database={"url": url}))
        tables = [r[0] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'tortoise_migrations'")]
        sequences = [r[0] for r in await conn.fetch(
            "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = 'public'")]
        # DELETE (foreign keys off for the session) is ten times faster than TRUNCATE on tables this small.
        _Schema.pg_clear = "".join(
            ["SET session_replication_role = replica;"] + [f'DELETE FROM "{t}";' for t in tables]
            + [f'ALTER SEQUENCE "{q}" RESTART;' for q in sequences] + ["RESET session_replication_role;"])
        quoted = ", ".join(f'"{t}"' for t in tables)
        _Schema.pg_truncate = f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"
        _Schema.pg_fingerprint = await _pg_fingerprint(conn)
    finally:
        await conn.close()


async def _sqlite_template() -> Path:
    if _Schema.sqlite_template is None:
        assert _Schema.template_dir is not None, "fresh_database needs the app_factory fixture's session dir"
        settings = make_settings(_Schema.template_dir)
        await migrate_database(settings)
        path = Path(settings.database_url.removeprefix("sqlite://"))
        # Everything into the main file, so that copying that one file copies the whole database.
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        _Schema.sqlite_template = path
    return _Schema.sqlite_template


async def fresh_database(settings: Settings, scratch: Path) -> None:
    """Make the database of `settings` a freshly migrated, empty one, without running the migrations again.

    SQLite: a copy of this session's migrated template, only where no database file is yet (an existing file
    is left alone). PostgreSQL: every table emptied. `scratch` is a temp dir of the test.
    """
    url = settings.database_url
    if url.startswith("postgres"):
        await _pg_fresh(url, scratch / "pg-migrate")
        return
    if not url.startswith("sqlite://") or url == "sqlite://:memory:":
        return
    path = Path(url.removeprefix("sqlite://"))
    if path.exists():
        return
    template = await _sqlite_template()
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    path.chmod(0o600)


@pytest.fixture(scope="session")
def _db_template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _Schema.template_dir = tmp_path_factory.mktemp("db-template")
    return _Schema.template_dir


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for one test: HUST's (tests/hust.py), data in tmp_path, SMTP listener on a free port, quiet
    defaults."""
    base: dict[str, Any] = hust_overrides(
        general={"data_dir": str(tmp_path / "data")},
        smtpd={"port": 0},
        jobs={"poll_interval_seconds": 0.05, "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2},
        intake={"parser_processes": 1},
    )
    if PG_URL:
        base["database"] = {"url": PG_URL}
    for section, values in overrides.items():
        base.setdefault(section, {}).update(values)
    return load_settings(None, overrides=base, environ=os.environ)  # secrets as a test set them


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Build settings with overrides per section."""
    return lambda **overrides: make_settings(tmp_path, **overrides)


@pytest.fixture
def clock() -> FakeClock:
    """A test clock (deadlines without sleeping)."""
    return FakeClock()


@pytest.fixture
async def app_factory(tmp_path: Path, _db_template_dir: Path) -> AsyncIterator[Callable[..., Any]]:
    """Open Apps on a clean database; closed at the end of the test."""
    opened: list[App] = []

    async def make(settings: Settings | None = None, **kwargs: Any) -> App:
        settings = settings or make_settings(tmp_path)
        if not opened or not settings.database_url.startswith("postgres"):
            # The first App of a test gets an empty database; replicas of it share that one.
            await fresh_database(settings, tmp_path)
        app = App(settings, **kwargs)
        await app.open()
        opened.append(app)
        return app

    yield make
    for app in opened:
        app.worker.stop()
        if app.web is not None:
            await app.web.stop()
        if app.smtp is not None:
            await app.smtp.stop()
        await app.close()


async def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll an (async) predicate until it returns a truthy value; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


__all__ = ["SmtpSink", "fresh_database", "make_settings", "reset_postgres", "wait_until"]
