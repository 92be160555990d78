"""Shared fixtures: settings in a temp folder, a database (SQLite, or PostgreSQL when
EDUDESK_TEST_DATABASE_URL is set), the wired App, real SMTP and IMAP servers."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from core.config import Settings, load_settings
from core.ports import FakeClock
from main import App
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


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for one test: data in tmp_path, SMTP listener on a free port, quiet defaults."""
    base: dict[str, Any] = {
        "general": {"data_dir": str(tmp_path / "data")},
        "smtpd": {"port": 0},
        "jobs": {"poll_interval_seconds": 0.05, "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2},
        "intake": {"parser_processes": 1},
    }
    if PG_URL:
        base["database"] = {"url": PG_URL}
    for section, values in overrides.items():
        base.setdefault(section, {}).update(values)
    return load_settings(None, overrides=base)


@pytest.fixture
def settings_factory(tmp_path: Path) -> Callable[..., Settings]:
    """Build settings with overrides per section."""
    return lambda **overrides: make_settings(tmp_path, **overrides)


@pytest.fixture
def clock() -> FakeClock:
    """A test clock (deadlines without sleeping)."""
    return FakeClock()


@pytest.fixture
async def app_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Open Apps on a clean database; closed at the end of the test."""
    opened: list[App] = []

    async def make(settings: Settings | None = None, **kwargs: Any) -> App:
        if PG_URL and not opened:
            await reset_postgres(PG_URL)
        app = App(settings or make_settings(tmp_path), **kwargs)
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


__all__ = ["SmtpSink", "make_settings", "reset_postgres", "wait_until"]
