"""SQLite group commit (core/db_sqlite.py): a write is on disk before it returns, as with `synchronous = FULL`,
but the commits that end together share one fsync of the WAL, taken after the connection is let go.

"On disk" is checked as the contract says it: every fsync of the WAL is watched and the WAL's bytes at its
start are kept (what that fsync makes durable); when a write returns, its unique text must already be in the
bytes of an fsync that has finished."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from edudesk.core import db_sqlite
from edudesk.core.db_sqlite import WalSync
from edudesk.core.models import AuditEvent

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


class Watched:
    """`os.fsync` of this test: the WAL's bytes at each fsync's start, kept once it has finished."""

    def __init__(self, delay: float = 0.0) -> None:
        self.durable: list[bytes] = []
        self.files = 0
        self.delay = delay
        self.lock = threading.Lock()
        self.real = os.fsync

    def __call__(self, fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            self.real(fd)
            return
        size = os.fstat(fd).st_size
        seen = os.pread(fd, size, 0)
        if self.delay:
            threading.Event().wait(self.delay)
        self.real(fd)
        with self.lock:
            self.files += 1
            self.durable.append(seen)

    def holds(self, text: str) -> bool:
        with self.lock:
            return any(text.encode() in seen for seen in self.durable)


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Watched]:
    def make(delay: float = 0.0) -> Watched:
        fsync = Watched(delay)
        monkeypatch.setattr(db_sqlite.os, "fsync", fsync)
        return fsync

    return make


async def test_each_write_is_durable_when_it_returns_and_fsyncs_are_shared(app_factory: Any, settings_factory: Any,
                                                                           watched: Callable[..., Watched]) -> None:
    app = await app_factory(settings_factory(web={"enabled": False}))
    assert app.settings.database_url.startswith("sqlite://")
    fsync = watched(delay=0.02)  # a slow disk: commits pile up behind each fsync

    async def one(n: int) -> None:
        text = f"marker-{n:04d}-single"
        await AuditEvent.create(at=NOW, actor=text, action="test")  # an autocommit INSERT
        assert fsync.holds(text), f"{text} returned before it was on disk"
        async with in_transaction():
            text = f"marker-{n:04d}-transaction"
            await AuditEvent.create(at=NOW, actor=text, action="test")
            await AuditEvent.filter(actor=text).update(action="test2")
        assert fsync.holds(text), f"{text} returned before it was on disk"

    before = fsync.files
    await asyncio.gather(*(one(n) for n in range(40)))
    assert await AuditEvent.filter(actor__startswith="marker-").count() == 80
    shared = fsync.files - before
    assert 1 <= shared < 40, f"{shared} fsyncs for 80 writes: not grouped"


async def test_reads_wait_for_no_fsync(app_factory: Any, settings_factory: Any,
                                       watched: Callable[..., Watched]) -> None:
    await app_factory(settings_factory(web={"enabled": False}))
    fsync = watched()
    before = fsync.files
    for _ in range(5):
        await AuditEvent.filter(action="none").count()
        async with in_transaction():
            await AuditEvent.filter(action="none").first()
    assert fsync.files == before


async def test_writes_carried_by_a_later_commit_wait_for_no_fsync_and_are_durable_with_the_next_one(
        app_factory: Any, settings_factory: Any, watched: Callable[..., Watched]) -> None:
    await app_factory(settings_factory(web={"enabled": False}))
    fsync = watched()
    before = fsync.files
    with db_sqlite.carried_by_a_later_commit():
        await AuditEvent.create(at=NOW, actor="carried-single", action="test")  # autocommit INSERT
        await AuditEvent.filter(actor="carried-single").update(action="test2")  # autocommit UPDATE
        async with in_transaction():
            await AuditEvent.create(at=NOW, actor="carried-transaction", action="test")
    assert fsync.files == before, "a carried write waited for an fsync"
    assert not fsync.holds("carried-single") and not fsync.holds("carried-transaction")
    # Outside the block the rule is back: the next write waits for an fsync, which carries the earlier ones.
    await AuditEvent.create(at=NOW, actor="durable-after", action="test")
    assert fsync.files > before
    assert fsync.holds("durable-after") and fsync.holds("carried-single") and fsync.holds("carried-transaction")
    # The block ends even when its body fails.
    with pytest.raises(RuntimeError), db_sqlite.carried_by_a_later_commit():
        raise RuntimeError("boom")
    count = fsync.files
    await AuditEvent.create(at=NOW, actor="durable-again", action="test")
    assert fsync.files > count and fsync.holds("durable-again")


async def test_a_barrier_waits_for_an_fsync_begun_after_it(tmp_path: Path, watched: Callable[..., Watched]) -> None:
    database = tmp_path / "x.sqlite3"
    wal = Path(f"{database}-wal")
    wal.write_bytes(b"one")
    fsync = watched(delay=0.1)
    sync = WalSync(str(database))
    loop = asyncio.get_running_loop()
    first = loop.create_task(sync.barrier())
    await asyncio.sleep(0.03)  # the first fsync has begun, with "one" only
    wal.write_bytes(b"one two")
    later = [loop.create_task(sync.barrier()) for _ in range(5)]
    await first
    assert [f.done() for f in later] == [False] * 5  # what began before them does not cover them
    await asyncio.gather(*later)
    assert fsync.durable == [b"one", b"one two"]  # five waiters, one more fsync


async def test_a_failed_fsync_fails_the_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    database = tmp_path / "x.sqlite3"
    Path(f"{database}-wal").write_bytes(b"x")

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(db_sqlite.os, "fsync", broken)
    sync = WalSync(str(database))
    with pytest.raises(OSError):
        await sync.barrier()
    monkeypatch.undo()
    await sync.barrier()  # the next one tries again
