"""Run `edudesk` counting its database round trips and commits (for bench/intake.py `--count-sql`).

    python bench/intake_count.py COUNTS.json -- --config CONFIG run

Wall-clock rates on a loaded 2-core machine mostly measure the scheduler; what a design change does to the
hot path shows in what it asks of the database. This wrapper counts, in the server process, every statement
sent (aiosqlite or asyncpg: round trips, including BEGIN, SAVEPOINT and COMMIT) and every write transaction
committed (on SQLite each one is an fsync of the WAL under `synchronous = FULL`; on PostgreSQL a WAL flush),
and writes the totals to COUNTS.json twice a second; the bench reads them at the same moments as the CPU.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

COUNTS = {"statements": 0, "commits": 0}
SHAPES: dict[str, int] = {}  # EDUDESK_BENCH_SQL_SHAPES=FILE: statements by their first words, written there
_SHAPES = bool(os.environ.get("EDUDESK_BENCH_SQL_SHAPES"))
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


def _is_write(sql: object) -> bool:
    return isinstance(sql, str) and sql.lstrip()[:7].upper().startswith(_WRITES)


_WROTE: set[int] = set()  # connections whose open transaction has written


def _wrap(cls: Any, name: str, sqlite: bool) -> None:
    original = getattr(cls, name)

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["statements"] += 1
        if _SHAPES and args:
            shape = " ".join(str(args[0]).split()[:8])[:90]
            SHAPES[shape] = SHAPES.get(shape, 0) + 1
        if args and _is_write(args[0]):
            if self._conn.in_transaction if sqlite else self.is_in_transaction():
                _WROTE.add(id(self))
            else:
                COUNTS["commits"] += 1  # a write outside a transaction is one of its own (autocommit)
        return await original(self, *args, **kwargs)

    setattr(cls, name, counted)


def install() -> None:
    """Count the statements and commits of aiosqlite and asyncpg in this process."""
    import aiosqlite

    for name in ("execute", "execute_fetchall", "execute_insert", "executemany"):
        _wrap(aiosqlite.Connection, name, True)
    commit = aiosqlite.Connection.commit

    async def sqlite_commit(self: Any) -> None:
        if self._conn.in_transaction:  # tortoise also commits before each BEGIN: nothing to commit then
            COUNTS["statements"] += 1
            if id(self) in _WROTE:  # a transaction that only read writes nothing to the WAL
                COUNTS["commits"] += 1
        _WROTE.discard(id(self))
        await commit(self)

    aiosqlite.Connection.commit = sqlite_commit  # type: ignore[method-assign]
    try:
        import asyncpg
        from asyncpg.transaction import Transaction
    except ImportError:
        return
    for name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
        _wrap(asyncpg.connection.Connection, name, False)
    for name in ("start", "commit", "rollback"):
        original = getattr(Transaction, name)

        def make(original: Any, name: str) -> Any:
            async def counted(self: Any) -> Any:
                if not self._nested:  # its BEGIN/COMMIT/SAVEPOINT is counted by `execute`
                    COUNTS["commits"] += name == "commit" and id(self._connection) in _WROTE
                    _WROTE.discard(id(self._connection))
                return await original(self)
            return counted

        setattr(Transaction, name, make(original, name))


def _dump(path: Path) -> None:
    while True:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(COUNTS))
        os.replace(tmp, path)
        if _SHAPES:
            suffix = ".listener" if path.name.endswith(".listener") else ""
            Path(os.environ["EDUDESK_BENCH_SQL_SHAPES"] + suffix).write_text(
                json.dumps(dict(sorted(SHAPES.items(), key=lambda kv: -kv[1])), ensure_ascii=False, indent=0))
        time.sleep(0.5)


def main() -> int:
    """Install the counters, then run the edudesk command line with the arguments after `--`."""
    out = Path(sys.argv[1])
    args = sys.argv[sys.argv.index("--") + 1:]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's edudesk, as `python -m` would
    install()
    threading.Thread(target=_dump, args=(out,), daemon=True, name="sql-counts").start()
    from edudesk.mailer import listener

    # [smtpd] own_process: the listener process is counted too, into COUNTS.json.listener
    listener.COMMAND = [sys.executable, __file__, f"{out}.listener", "--", "listener"]
    if args[:1] == ["listener"]:
        sys.argv = ["listener", *args[1:]]
        return listener.main()
    sys.argv = ["edudesk", *args]
    from edudesk.app import cli

    return int(cli() or 0)


if __name__ == "__main__":
    sys.exit(main())
