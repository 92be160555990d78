"""`edudesk db migrate`, told: a new database and what was made, migrations applied, or nothing to do."""

from __future__ import annotations

from edudesk.core.config import Settings
from edudesk.core.db import close_database, dialect, migrate_database, open_database
from edudesk.core.words import words

_TABLES = {"sqlite": "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
           "postgres": "SELECT table_name AS name FROM information_schema.tables "
                       "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"}


async def _state(settings: Settings) -> tuple[int, int]:
    """(tables, applied migrations) of the database; (0, 0) for a new one."""
    conn = await open_database(settings, migrate_first=False)
    try:
        _, rows = await conn.execute_query(_TABLES[dialect()])
        names = {r["name"] for r in rows}
        applied = 0
        if "tortoise_migrations" in names:
            _, counted = await conn.execute_query("SELECT COUNT(*) AS n FROM tortoise_migrations")
            applied = int(counted[0]["n"])
        return len(names), applied
    finally:
        await close_database(conn)


async def migrate_and_tell(settings: Settings) -> str:
    """Apply pending migrations and say, in one line, what changed."""
    w = words(settings.general.language)
    where = settings.database_url.split("@")[-1]  # never the password of a postgres:// URL
    tables_before, applied_before = await _state(settings)
    await migrate_database(settings)
    tables, applied = await _state(settings)
    if tables_before == 0:
        return w("cli.migrate.created", where=where, tables=tables, migrations=applied)
    if applied > applied_before:
        return w("cli.migrate.applied", where=where, migrations=applied - applied_before, tables=tables)
    return w("cli.migrate.up_to_date", where=where, migrations=applied)
