"""Two real `edudesk run` replicas on one PostgreSQL database and one IMAP mailbox: one watcher at a time,
the other takes over within 30 s of the holder's SIGKILL, mail is stored once, a reminder is sent once."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from edudesk.core.config import Settings, load_settings
from edudesk.core.db import close_database, open_database
from edudesk.core.intake.models import InboundMail
from edudesk.core.leader import LOCK_SPACE
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import SystemClock
from edudesk.core.requests.models import Request
from tests.conftest import PG_URL, fresh_database, make_settings, wait_until
from tests.e2e.test_crash import Service
from tests.mails import student_form_mail
from tests.servers.dovecot import DEFAULT_PASSWORD, DEFAULT_USER, DovecotServer
from tests.servers.smtp_sink import free_port

pytestmark = [pytest.mark.db, pytest.mark.slow,
              pytest.mark.skipif(not PG_URL, reason="replicas share a PostgreSQL database; SQLite has one process")]
TAKEOVER_LIMIT = 30.0  # the figure: another replica watches the mailbox within 30 s of the holder's death


class Replica(Service):
    """One `edudesk run` process with its own config, data dir and ports; the database and mailbox shared."""

    def __init__(self, root: Path, name: str, dovecot: DovecotServer) -> None:
        self.dir = root / name
        self.dir.mkdir()
        self.smtp_port = free_port()
        self.config = self.dir / "config.toml"
        self.log = self.dir / "edudesk.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.config.write_text(f"""
[general]
data_dir = "{self.dir / 'data'}"
log_level = "INFO"
[database]
url = "{PG_URL}"
url_env = "EDUDESK_TEST_UNSET_DATABASE_URL"
[smtpd]
port = {self.smtp_port}
[web]
enabled = false
[imap]
enabled = true
host = "{dovecot.host}"
port = {dovecot.port}
ssl = false
username = "{DEFAULT_USER}"
password_env = "EDUDESK_TEST_IMAP_PASSWORD"
backlog_since = "all"
poll_interval = 0.5
backoff_initial = 0.1
backoff_max = 1.0
[intake]
parser_processes = 1
[chat]
overdue_check_seconds = 0.2
[jobs]
poll_interval_seconds = 0.05
backoff_initial_seconds = 0.05
backoff_max_seconds = 0.2
""", encoding="utf-8")

    def settings(self) -> Settings:
        return load_settings(self.config)

    def start(self, env: dict[str, str] | None = None, timeout: float = 60.0) -> None:
        """Start the replica and wait until its SMTP listener answers (the supervisor is then running)."""
        super().start({"EDUDESK_TEST_IMAP_PASSWORD": DEFAULT_PASSWORD, **(env or {})}, timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def replicas(tmp_path: Path, dovecot: DovecotServer, _db_template_dir: Path) -> Iterator[tuple[Replica, Replica]]:
    asyncio.run(fresh_database(make_settings(tmp_path), tmp_path))  # migrated once: each `run` finds nothing to do
    pair = (Replica(tmp_path, "a", dovecot), Replica(tmp_path, "b", dovecot))
    yield pair
    for replica in pair:
        replica.stop()


async def lead_holders(name: str) -> list[int]:
    """The backends holding the lead `name` (pg_locks), as an operator would look."""
    conn = await asyncpg.connect(PG_URL)
    try:
        rows = await conn.fetch(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = $1::int::oid AND l.objid = (hashtext($2)::bigint & 4294967295)::text::oid"
            " AND a.application_name LIKE 'edudesk lead %'", LOCK_SPACE, name)
        return [r["pid"] for r in rows]
    finally:
        await conn.close()


async def counts(settings: Settings) -> dict[str, int]:
    """What the shared database holds, read by this process as one more client."""
    db = await open_database(settings, migrate_first=False)
    try:
        return {
            "mails": await InboundMail.all().count(),
            "requests": await Request.all().count(),
            "reminders": await Job.filter(key__startswith="notice:remind:").count(),
            "escalations": await Job.filter(key__startswith="notice:escalate:").count(),
            "overdue_events": await AuditEvent.filter(action="request_overdue").count(),
            "escalated_events": await AuditEvent.filter(action="request_escalated").count(),
        }
    finally:
        await close_database(db)


async def make_overdue(settings: Settings, hours: float) -> None:
    db = await open_database(settings, migrate_first=False)
    try:
        await Request.all().update(deadline=SystemClock().now() - timedelta(hours=hours))
    finally:
        await close_database(db)


async def test_two_replicas_watch_the_mailbox_once_and_the_survivor_takes_over_after_a_kill(
        replicas: tuple[Replica, Replica], dovecot: DovecotServer) -> None:
    a, b = replicas
    settings = a.settings()
    name = f"imap:{DEFAULT_USER}@{dovecot.host}:{dovecot.port}/INBOX"  # the watcher's checkpoint key
    a.start()
    await wait_until(lambda: _held_once(name), timeout=30)
    first = await lead_holders(name)
    b.start()
    await wait_until(lambda: "IMAP watcher on another replica" in b.text(), timeout=30)
    assert "IMAP watcher on another replica" not in a.text()
    assert await lead_holders(name) == first  # the second replica did not take it, nor a second lock

    dovecot.deliver(student_form_mail(message_id="<replica-1@gmail.com>"))
    await wait_until(lambda: _counted(settings, "requests", 1), timeout=60)
    assert "IMAP watcher on another replica" not in a.text()
    assert "UID 1 stored" in a.text() and "stored as mail" not in b.text()

    # A reminder and an escalation fall due while both replicas run: each is sent once.
    await make_overdue(settings, hours=settings.chat.escalate_after_hours + 1)
    await wait_until(lambda: _counted(settings, "escalations", 1), timeout=30)
    await asyncio.sleep(1.0)  # five more checks by whichever replica schedules: room for a wrong second one
    got = await counts(settings)
    assert (got["reminders"], got["escalations"], got["overdue_events"], got["escalated_events"]) == (1, 1, 1, 1)

    a.kill()
    killed = time.monotonic()
    await wait_until(lambda: _held_by_other(name, first), timeout=TAKEOVER_LIMIT + 10)
    took = time.monotonic() - killed
    print(f"\nthe surviving replica took the IMAP lead {took:.1f} s after the holder's SIGKILL")
    assert took < TAKEOVER_LIMIT

    dovecot.deliver(student_form_mail(sid="20209999", message_id="<replica-2@gmail.com>"))
    await wait_until(lambda: _counted(settings, "requests", 2), timeout=60)
    stored = time.monotonic() - killed
    print(f"mail delivered after the kill was stored {stored:.1f} s after it")
    await asyncio.sleep(1.0)
    got = await counts(settings)
    assert (got["mails"], got["requests"]) == (2, 2)
    assert "stored as mail" in b.text()
    assert "UID 2 stored" not in a.text()


async def _held_once(name: str) -> bool:
    return len(await lead_holders(name)) == 1


async def _held_by_other(name: str, before: list[int]) -> bool:
    now = await lead_holders(name)
    return len(now) == 1 and now != before


async def _counted(settings: Settings, what: str, n: int) -> bool:
    got = (await counts(settings))[what]
    assert got <= n, f"{what}: {got} > {n}"
    return got == n
