"""The database part of `edudesk backup`/`restore`: SQLite's online backup API, page steps read from one
snapshot; or pg_dump in a snapshot exported by the transaction that counts the rows; and putting it back."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from tqdm import tqdm

from edudesk.core.db_sqlite import BUSY_TIMEOUT_MS
from edudesk.core.errors import EdudeskError
from edudesk.core.statefiles import sqlite_path
from edudesk.core.words import Words

SQLITE_MEMBER, PG_MEMBER = "database.sqlite3", "database.dump"
PAGES_PER_STEP = 256  # 1 MiB at 4 KiB pages: a progress tick without a long hold of the file lock
# Query parameters libpq understands; tortoise's own (minsize, maxsize, ...) would make pg_dump refuse the URL.
_LIBPQ_PARAMS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options",
                 "target_session_attrs", "gssencmode"}
_MIGRATIONS_TABLE = "tortoise_migrations"  # present in a freshly migrated, still empty database


class BackupError(EdudeskError):
    """A backup or restore that cannot go on; the message is one line in the configured language."""

    code = "backup"


@dataclass(frozen=True)
class Dump:
    """The database copy made for an archive."""

    member: str
    path: Path
    dialect: str
    tables: dict[str, int]


def dialect_of(url: str) -> str:
    """"postgres" or "sqlite" for a database URL."""
    return "postgres" if url.startswith(("postgres://", "postgresql://")) else "sqlite"


def _bar(desc: str, unit: str, total: int | None = None) -> Any:
    """Progress on stderr, only for a person at a terminal (cron mails stay clean)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not sys.stderr.isatty(), leave=False)


def sqlite_counts(path: Path) -> dict[str, int]:
    """Rows per table of an SQLite file."""
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: conn.execute(f'SELECT count(*) FROM "{n.replace(chr(34), chr(34) * 2)}"').fetchone()[0]
                for n in names}
    finally:
        conn.close()


def _sqlite_copy(source: Path, target: Path, desc: str) -> None:
    """Copy a live database: one read transaction held across all steps, so every step reads the same snapshot
    (WAL: the service keeps writing meanwhile) and the copy never restarts."""
    src = sqlite3.connect(source, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    dst = sqlite3.connect(target)
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here
        with _bar(desc, "page") as bar:
            def step(_status: int, remaining: int, total: int) -> None:
                bar.total = total
                bar.update(total - remaining - bar.n)

            src.backup(dst, pages=PAGES_PER_STEP, progress=step)
        src.execute("COMMIT")
        problem = dst.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise sqlite3.DatabaseError(problem)
    finally:
        dst.close()
        src.close()


def libpq_url(url: str) -> tuple[str, str]:
    """The URL for libpq without its password (kept out of process lists and messages), and the password."""
    parts = urlsplit(url)
    netloc, password = parts.netloc, ""
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user, _, secret = userinfo.partition(":")
        netloc, password = f"{user}@{host}", unquote(secret)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k in _LIBPQ_PARAMS])
    return urlunsplit(("postgresql", netloc, parts.path, query, "")), password


def shown_url(url: str) -> str:
    """A database URL fit to print: no password, no parameters."""
    if dialect_of(url) == "sqlite":
        return url
    parts = urlsplit(libpq_url(url)[0])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


async def _pg_connect(url: str, w: Words) -> Any:
    import asyncpg

    target, password = libpq_url(url)
    try:
        return await asyncpg.connect(target, password=password or None)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        reason = str(exc) or type(exc).__name__
        raise BackupError(w("cli.backup.db_unreachable", url=shown_url(url), reason=reason)) from None


async def _pg_counts(conn: Any) -> dict[str, int]:
    names = [r[0] for r in await conn.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]
    return {n: await conn.fetchval(f'SELECT count(*) FROM "{n.replace(chr(34), chr(34) * 2)}"') for n in names}


async def _run_tool(tool: str, args: list[str], url: str, bar: Any, marker: str, w: Words) -> None:
    """Run pg_dump or pg_restore with the password in its environment; a table done ticks the bar."""
    path = shutil.which(tool)
    if path is None:
        raise BackupError(w("cli.backup.tool_missing", tool=tool))
    target, password = libpq_url(url)
    env = {**os.environ, "PGPASSWORD": password} if password else dict(os.environ)
    proc = await asyncio.create_subprocess_exec(path, *args, f"--dbname={target}", stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE, env=env)
    assert proc.stderr is not None
    errors: list[str] = []
    async for raw in proc.stderr:
        line = raw.decode(errors="replace").strip()
        if marker in line:
            bar.update(1)
        elif "error" in line.lower() or "fatal" in line.lower():
            errors.append(line)
    if await proc.wait() != 0:
        raise BackupError(w("cli.backup.tool_failed", tool=tool, reason=(errors or ["exit status"])[-1]))


async def dump(url: str, staging: Path, w: Words) -> Dump:
    """A consistent copy of the database at `url` in `staging`, with its rows per table."""
    if dialect_of(url) == "postgres":
        conn = await _pg_connect(url, w)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
                tables = await _pg_counts(conn)
                target = staging / PG_MEMBER
                with _bar(w("cli.backup.progress_db"), "table", len(tables)) as bar:
                    await _run_tool("pg_dump", ["--format=custom", "--verbose", f"--snapshot={snapshot}",
                                                f"--file={target}"], url, bar, "dumping contents of table", w)
        finally:
            await conn.close()
        return Dump(PG_MEMBER, target, "postgres", tables)
    source = sqlite_path(url)
    if source is None or not source.is_file():
        raise BackupError(w("cli.backup.no_database", path=source or url))
    target = staging / SQLITE_MEMBER
    try:
        await asyncio.to_thread(_sqlite_copy, source, target, w("cli.backup.progress_db"))
    except sqlite3.Error as exc:
        raise BackupError(w("cli.backup.db_unreachable", url=url, reason=str(exc))) from None
    return Dump(SQLITE_MEMBER, target, "sqlite", sqlite_counts(target))


async def rows_in(url: str, w: Words) -> int:
    """Rows already in the target database (0: absent, or migrated and empty)."""
    if dialect_of(url) == "postgres":
        conn = await _pg_connect(url, w)
        try:
            counts = await _pg_counts(conn)
        finally:
            await conn.close()
    else:
        path = sqlite_path(url)
        if path is None or not path.exists():
            return 0
        try:
            counts = sqlite_counts(path)
        except sqlite3.Error:
            return 1  # not a database we can read: not ours to overwrite without --force
    return sum(n for table, n in counts.items() if table != _MIGRATIONS_TABLE)


async def put_back(dump: Dump, url: str, w: Words) -> dict[str, int]:
    """Restore the copy into the database at `url`; the rows per table it now holds."""
    if dump.dialect == "postgres":
        with _bar(w("cli.restore.progress_db"), "table", len(dump.tables)) as bar:
            await _run_tool("pg_restore", ["--clean", "--if-exists", "--no-owner", "--no-privileges",
                                           "--single-transaction", "--exit-on-error", "--verbose", str(dump.path)],
                            url, bar, "processing data for table", w)
        conn = await _pg_connect(url, w)
        try:
            return await _pg_counts(conn)
        finally:
            await conn.close()
    target = sqlite_path(url)
    if target is None:
        raise BackupError(w("cli.restore.dialect", backup="SQLite", target=url))
    counts = sqlite_counts(dump.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if dump.path.parent != target.parent:  # another file system maybe: copy beside the target, then rename
        near = target.with_name(f".{target.name}.restore")
        shutil.copyfile(dump.path, near)
        dump = Dump(dump.member, near, dump.dialect, dump.tables)
    for suffix in ("-wal", "-shm"):  # the old database's log would be replayed onto the restored file
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    os.chmod(dump.path, 0o600)
    os.replace(dump.path, target)
    return counts
