"""Run a command against a PostgreSQL database of its own, made for this run and dropped after it.

`make test` runs the database tests through this, so two test runs on one host (two checkouts, CI beside a
developer) never share tables. Usage: `python scripts/pg_test_db.py COMMAND ...`; the command gets the
database in EDUDESK_TEST_DATABASE_URL. The server is PG_ADMIN_URL (default: the local trust-auth server).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys

import asyncpg

ADMIN = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def _execute(statement: str) -> None:
    conn = await asyncpg.connect(ADMIN)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def main(command: list[str]) -> int:
    """Make the database, run `command` with its URL, drop the database; the command's exit code."""
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    name = f"edudesk_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_execute(f'CREATE DATABASE "{name}"'))
    url = f"postgres://{ADMIN.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    print(f"database tests on PostgreSQL: {name}", flush=True)
    try:
        return subprocess.call(command, env={**os.environ, "EDUDESK_TEST_DATABASE_URL": url})
    finally:
        asyncio.run(_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
