"""Issue #13, the SMTP listener: a database that is locked or gone means "retry later" (4xx), never a
5xx that bounces the mail; input that can never be stored (a NUL in the envelope or the Message-ID)
is refused once, for good (5xx), never deferred forever. Real listener, real smtplib client, real SQLite.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from edudesk.app import App
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent
from tests.conftest import PG_URL
from tests.mails import student_form_mail

pytestmark = pytest.mark.db
OFFICE = "office-bknic@hust.edu.vn"
SENDER = "an.nv2003@gmail.com"
LEAKS = ("database", "sqlite", "locked", "operationalerror", "error:", "exception", "traceback")


def attempt(port: int, raw: bytes, sender: str = SENDER, rcpt: str = OFFICE) -> tuple[str, int, str]:
    """One SMTP transaction step by step: (the step that ended it, its code, its text)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.ehlo("client.test")
        code, text = client.mail(sender)
        if code != 250:
            return "MAIL", code, text.decode()
        code, text = client.rcpt(rcpt)
        if code != 250:
            return "RCPT", code, text.decode()
        code, text = client.data(raw)
        return "DATA", code, text.decode()


class Listener:
    """The App's SMTP listener; its SQLite file can be locked by another connection."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.db_path = Path(app.settings.database_url.removeprefix("sqlite://"))

    @property
    def port(self) -> int:
        assert self.app.smtp is not None
        return self.app.smtp.port

    async def attempt(self, raw: bytes, **kwargs: Any) -> tuple[str, int, str]:
        await asyncio.sleep(0.15)  # past the listener's cached backlog count: every MAIL asks the database
        return await asyncio.to_thread(attempt, self.port, raw, **kwargs)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Another process's connection holds an EXCLUSIVE lock (a backup, a hung migration)."""
        other = sqlite3.connect(self.db_path, isolation_level=None, timeout=0)
        other.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()


@pytest.fixture
async def listener(app_factory: Any, settings_factory: Any) -> AsyncIterator[Listener]:
    app = await app_factory(settings_factory(), inline_analysis=True)  # no worker: stored mail stays pending
    assert app.smtp is not None
    await app.smtp.start()
    yield Listener(app)


def assert_temporary(step: tuple[str, int, str], where: str) -> None:
    stage, code, text = step
    assert stage == where, step
    assert 400 <= code < 500, step  # a real sender keeps the mail and retries
    assert not any(word in text.lower() for word in LEAKS), text


@pytest.mark.skipif(bool(PG_URL), reason="locks the SQLite file")
async def test_locked_database_defers_data_with_451_and_the_retry_is_stored_once(listener: Listener) -> None:
    raw = student_form_mail(message_id="<locked@gmail.com>")
    with listener.locked():
        step = await listener.attempt(raw)
    # SQLite in WAL mode still answers the backlog count under a writer's lock: MAIL passes, DATA defers.
    assert_temporary(step, "DATA")
    assert step[1] == 451
    assert (await listener.attempt(raw))[1:2] == (250,)
    assert (await listener.attempt(raw))[1:2] == (250,)  # the sender's retry of a lost 250
    assert await InboundMail.filter(message_id="locked@gmail.com").count() == 1


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
# This test's own database: it is switched off and on, so nothing else (another test run on this host
# included) may share it. One per process; those of processes that ended are dropped when the next starts.
PG_OWN = f"intake_trust_{os.getpid()}"


async def _drop_stale_own_databases() -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        names = [r["datname"] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'intake\\_trust\\_%'")]
    finally:
        await conn.close()
    for name in names:
        pid = name.rsplit("_", 1)[1]
        if pid.isdigit() and name != PG_OWN and not Path(f"/proc/{pid}").exists():
            await _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _pg_admin(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _pg_down() -> None:
    """The database server stops taking this database's connections and drops the open ones."""
    await _pg_admin(f"ALTER DATABASE {PG_OWN} WITH ALLOW_CONNECTIONS false",
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{PG_OWN}'")


async def _pg_up() -> None:
    await _pg_admin(f"ALTER DATABASE {PG_OWN} WITH ALLOW_CONNECTIONS true")


@pytest.fixture
async def pg_listener(app_factory: Any, settings_factory: Any) -> AsyncIterator[Listener]:
    try:
        await _drop_stale_own_databases()
        await _pg_admin(f"DROP DATABASE IF EXISTS {PG_OWN} WITH (FORCE)", f"CREATE DATABASE {PG_OWN}")
    except OSError:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    # tortoise caches each model's INSERT per connection name, whatever the dialect: this test's
    # PostgreSQL must not reuse the SQLite statements of the tests before it in the process, nor leave its own.
    EXECUTOR_CACHE.clear()
    app = await app_factory(settings_factory(database={"url": f"postgres://postgres@127.0.0.1:5432/{PG_OWN}"}),
                            inline_analysis=True)
    assert app.smtp is not None
    await app.smtp.start()
    try:
        yield Listener(app)
    finally:
        await _pg_up()
        EXECUTOR_CACHE.clear()


async def test_unreachable_database_defers_at_mail_and_at_data_then_the_mail_is_stored_once(
        pg_listener: Listener) -> None:
    raw = student_form_mail(message_id="<outage@gmail.com>")
    await _pg_down()
    try:
        assert_temporary(await pg_listener.attempt(raw), "MAIL")
    finally:
        await _pg_up()

    # The outage starts after the sender was let in at MAIL: DATA defers.
    client = await asyncio.to_thread(smtplib.SMTP, "127.0.0.1", pg_listener.port, timeout=60)
    try:
        await asyncio.to_thread(client.ehlo, "client.test")
        assert (await asyncio.to_thread(client.mail, SENDER))[0] == 250
        await _pg_down()
        try:
            assert (await asyncio.to_thread(client.rcpt, OFFICE))[0] == 250
            code, text = await asyncio.to_thread(client.data, raw)
        finally:
            await _pg_up()
    finally:
        await asyncio.to_thread(client.close)
    assert_temporary(("DATA", code, text.decode()), "DATA")

    # The sender's queue retries: a pooled connection the outage broke may cost one more 451, never a 5xx.
    for _ in range(5):
        step = await pg_listener.attempt(raw)
        if step[1] == 250:
            break
        assert_temporary(step, step[0])
    assert step[1] == 250, step
    assert (await pg_listener.attempt(raw))[1] == 250
    assert await InboundMail.filter(message_id="outage@gmail.com").count() == 1


@pytest.mark.parametrize(("sender", "rcpt", "stage"), [
    ("an.nv\x002003@gmail.com", OFFICE, "MAIL"),
    (SENDER, "office-bknic\x00@hust.edu.vn", "RCPT"),
    ("an.nv\x1b[2J2003@gmail.com", OFFICE, "MAIL"),
])
async def test_control_character_in_the_envelope_is_refused_once_with_a_syntax_error(
        listener: Listener, sender: str, rcpt: str, stage: str) -> None:
    raw = student_form_mail(message_id="<nul-envelope@gmail.com>")
    for _ in range(2):  # the same answer every time: permanent, so the sender gives up instead of looping
        step = await listener.attempt(raw, sender=sender, rcpt=rcpt)
        assert step[0] == stage and step[1] == 501, step
    assert await InboundMail.all().count() == 0
    assert (await listener.attempt(raw))[1] == 250  # the same mail with a clean envelope is taken


async def test_nul_in_the_message_id_is_refused_with_a_syntax_error_not_deferred(listener: Listener) -> None:
    raw = student_form_mail(message_id="<clean@gmail.com>").replace(b"<clean@gmail.com>", b"<nul\x00id@gmail.com>")
    step = await listener.attempt(raw)
    assert step[0] == "DATA" and step[1] == 501, step
    assert await InboundMail.all().count() == 0
    assert not await AuditEvent.all().exists()
