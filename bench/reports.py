"""BM03 benchmark: the year's report of a 40,000-student university, on SQLite and on PostgreSQL.

Not a test: it prints figures. It builds (untimed, by multi-row inserts / COPY, never the ORM row by row) a
year of requests — 300,000 of them across kinds, populations and 30 units, each with the audit events the
service writes for its decisions (created, approved, provision tapped, provisioned, rejected, asked for
information, overdue), its people (one, or twenty for a list) with intake findings on some, and 1,000,000
account-log rows — into a fresh migrated SQLite file and a private PostgreSQL database (made and dropped
through asyncpg, like scripts/pg_test_db.py), then times `bm03_figures` for the whole year on each.

    .venv/bin/python bench/reports.py [--requests 300000] [--account-log 1000000] [--skip-postgres]

The last line is one JSON object: {"sqlite_s": ..., "postgres_s": ..., "requests": ..., "account_log": ...}.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tortoise import Tortoise  # noqa: E402

from edudesk.core.config import Settings, load_settings  # noqa: E402
from edudesk.core.db import migrate_database, tortoise_config  # noqa: E402
from edudesk.core.reports.bm03 import bm03_figures, utc_bounds  # noqa: E402
from edudesk.core.reports.figures import Bm03Figures, Period  # noqa: E402

ADMIN = os.environ.get("PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_SECONDS = 10.0
PERIOD = Period(date(2025, 9, 1), date(2026, 8, 31), "Asia/Ho_Chi_Minh")
NOW = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
UNITS = [f"Trường/Khoa số {i:02d}" for i in range(1, 30)] + [""]
KINDS = [("password_reset", 0.58), ("new_account", 0.27), ("question", 0.07), ("delete_accounts", 0.05),
         ("bulk_new_accounts", 0.03)]
CODES = ["missing_mobile", "not_in_registry", "invalid_date", "name_mismatch", "missing_id", "duplicate_row",
         "no_form", "external_sender", "invalid_mobile", "name_diacritics", "free_mail_official", "has_account"]
LOG_ACTIONS = [("create", 0.45), ("reset", 0.38), ("suspend", 0.06), ("delete", 0.05), ("link", 0.03),
               ("taken", 0.01)]

REQUEST_COLS = ("id", "kind", "population", "state", "sender", "sender_name", "subject", "message_id", "unit",
                "source", "problems", "flags", "auth_results", "lang", "received_at", "deadline", "updated_at",
                "version")
PERSON_COLS = ("id", "request_id", "row", "person_id", "full_name", "proposed_address", "data", "problems",
               "outcome", "result", "final_address", "outcome_detail", "approved_by", "name_source")
EVENT_COLS = ("id", "at", "actor", "action", "request_id", "mail_id", "detail")
LOG_COLS = ("id", "at", "action", "address", "full_name", "person_id", "backend", "request_id", "approved_by",
            "executed_by", "ok", "answer")


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    x, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if x < total:
            return value
    return weighted[-1][0]


def _problem(code: str, row: int | None) -> str:
    return json.dumps([{"field": "x", "code": code, "message": code, "severity": "error", "row": row}])


class Year:
    """The generated year, deterministic from the seed; every table as rows of Python values."""

    def __init__(self, requests: int, account_log: int, seed: int) -> None:
        self.n, self.log_n, self.seed = requests, account_log, seed
        self.start, self.end = utc_bounds(PERIOD)

    def tables(self) -> Iterator[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
        """(table, columns, rows) in chunks, requests with their people and events first, then the log."""
        rng = random.Random(self.seed)
        span = (self.end - self.start).total_seconds()
        offsets = sorted(rng.random() * span for _ in range(self.n))
        person_id = event_id = log_id = 0
        requests, persons, events, logs = [], [], [], []
        for i, offset in enumerate(offsets, start=1):
            at = self.start + timedelta(seconds=offset)
            kind = _pick(rng, KINDS)
            population = "staff" if rng.random() < 0.15 else "student"
            unit = UNITS[int(rng.random() ** 1.5 * len(UNITS))]
            office = at + timedelta(hours=rng.lognormvariate(1.3, 1.0))
            tap = office + timedelta(hours=rng.lognormvariate(0.0, 1.0))
            done = tap + timedelta(minutes=rng.lognormvariate(1.0, 1.0))
            x = rng.random()
            if kind == "question":
                fate = "reject" if x < 0.8 else "received"
            else:
                fate = ("freemail" if x < 0.02 else "reject" if x < 0.10 else "need_info" if x < 0.12 else
                        "received" if x < 0.125 else "approved" if x < 0.13 else "done")
            if fate in ("reject", "need_info", "approved", "done") and office > NOW:
                fate = "received"
            if fate == "done" and done > NOW:
                fate = "approved"
            state = {"freemail": "rejected", "reject": "rejected"}.get(fate, fate)
            deadline = (None if state in ("rejected", "done", "need_info") else
                        (office if state == "approved" else at) + timedelta(hours=24))
            code = CODES[int(rng.random() ** 2 * len(CODES))] if rng.random() < 0.15 else ""
            problems = _problem(code, None) if code and code in ("no_form", "external_sender") else "[]"
            requests.append((i, kind, population, state, f"sv{i}@sis.example.edu.vn", "Nguyễn Văn An",
                             "Đề nghị cấp tài khoản", f"<{i}@sis.example.edu.vn>", unit, "body", problems, "[]",
                             "{}", "vi", at, deadline, at, 3))
            rows = 20 if kind == "bulk_new_accounts" else 0 if kind == "question" else 1
            for row in range(rows):
                person_id += 1
                mine = _problem(code, row) if code and problems == "[]" and row == 0 else "[]"
                persons.append((person_id, i, row, f"{20200000 + person_id}", "Nguyễn Văn An",
                                f"an.nv{person_id}@sis.example.edu.vn", "{}", mine, "done" if state == "done" else "",
                                "", "", "", "", ""))
            trail = [(at, "system", "mail_request_created")]
            if fate == "freemail":
                trail.append((at, "system", "request_reject"))
            elif fate == "reject":
                trail.append((office, "Lê Văn Phòng (web:1)", "request_reject"))
            elif fate == "need_info":
                trail.append((office, "Lê Văn Phòng (web:1)", "request_ask_info"))
            elif fate in ("approved", "done"):
                trail.append((office, "Lê Văn Phòng (web:1)", "request_approve"))
            if fate == "done":
                trail += [(tap, "Trần Kỹ Thuật (web:2)", "request_provision"), (done, "system (local)",
                                                                               "request_provisioned")]
            if (office - at) > timedelta(hours=24) or fate == "received" and at < NOW - timedelta(hours=24):
                trail.append((at + timedelta(hours=24, minutes=1), "system", "request_overdue"))
            for when, actor, action in trail:
                if when <= NOW:
                    event_id += 1
                    events.append((event_id, when, actor, action, i, i if action.startswith("mail_") else None,
                                   "{}"))
            if fate == "done" and kind != "question":
                action = {"password_reset": "reset", "delete_accounts": "suspend"}.get(kind, "create")
                for row in range(rows):
                    if log_id < self.log_n:
                        log_id += 1
                        logs.append((log_id, done, action, f"an.nv{person_id - rows + row + 1}@sis.example.edu.vn",
                                     "Nguyễn Văn An", "", "local", i, "Lê Văn Phòng (web:1)",
                                     "Trần Kỹ Thuật (web:2) (local)", True, action))
            if len(requests) >= 20_000:
                yield from self._flush(requests, persons, events, logs)
        yield from self._flush(requests, persons, events, logs)
        # The rest of the log: changes made outside requests (imports, the grace-period deletions, failures).
        while log_id < self.log_n:
            chunk = []
            for _ in range(min(50_000, self.log_n - log_id)):
                log_id += 1
                at = self.start + timedelta(seconds=rng.random() * span)
                action = _pick(rng, LOG_ACTIONS)
                ok = action != "taken" and rng.random() > 0.02
                chunk.append((log_id, at, action, f"x{log_id}@example.edu.vn", "", "", "local", None, "", "system",
                              ok, action if ok else "refused"))
            yield "account_log", LOG_COLS, chunk

    @staticmethod
    def _flush(*parts: list[tuple[Any, ...]]) -> Iterator[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]:
        for table, cols, rows in zip(("request", "request_person", "audit_event", "account_log"),
                                     (REQUEST_COLS, PERSON_COLS, EVENT_COLS, LOG_COLS), parts, strict=True):
            if rows:
                yield table, cols, list(rows)
                rows.clear()


def _settings(data_dir: str, url: str) -> Settings:
    return load_settings(None, overrides={"general": {"data_dir": data_dir}, "database": {"url": url}}, environ={})


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(" ")  # what tortoise stores: UTC ISO text
    if isinstance(value, bool):
        return int(value)
    return value


async def load_sqlite(year: Year, settings: Settings) -> dict[str, int]:
    """Migrate a fresh SQLite file, then fill it with executemany in one transaction."""
    await migrate_database(settings)
    counts: dict[str, int] = {}
    conn = sqlite3.connect(settings.database_url.removeprefix("sqlite://"))
    conn.execute("PRAGMA synchronous = OFF")
    with conn:
        for table, cols, rows in year.tables():
            conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                             [tuple(map(_sqlite_value, r)) for r in rows])
            counts[table] = counts.get(table, 0) + len(rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return counts


async def load_postgres(year: Year, settings: Settings, url: str) -> dict[str, int]:
    """Migrate the private database, then COPY the tables in, reset the id sequences and ANALYZE."""
    import asyncpg

    await migrate_database(settings)
    counts: dict[str, int] = {}
    conn = await asyncpg.connect(url)
    try:
        for table, cols, rows in year.tables():
            await conn.copy_records_to_table(table, records=rows, columns=list(cols))
            counts[table] = counts.get(table, 0) + len(rows)
        for table in counts:
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT MAX(id) FROM {table}))")
        # What autovacuum does to new tables within a minute or two: statistics and the visibility map.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return counts


async def time_report(settings: Settings, runs: int) -> tuple[list[float], float, Bm03Figures]:
    """Open the database as the service does and time `bm03_figures` for the year, `runs` times; also this
    process's CPU seconds for the first run (SQLite works inside this process, PostgreSQL in its server)."""
    await Tortoise.init(config=tortoise_config(settings.database_url))
    try:
        seconds, cpu = [], 0.0
        figures = None
        for _ in range(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            figures = await bm03_figures(settings, PERIOD, NOW)
            seconds.append(time.perf_counter() - start)
            cpu = cpu or time.process_time() - start_cpu
        assert figures is not None
        return seconds, cpu, figures
    finally:
        await Tortoise.close_connections()


def show(name: str, seconds: list[float], cpu: float, figures: Bm03Figures, counts: dict[str, int],
         load_s: float) -> None:
    """Print one database's figures."""
    totals = figures.totals()
    print(f"{name}: loaded {counts} in {load_s:.1f} s")
    print(f"  bm03_figures for the year: {', '.join(f'{s:.2f} s' for s in seconds)} "
          f"(this process's CPU in the first: {cpu:.2f} s)   "
          f"{'PASS' if seconds[0] < TARGET_SECONDS else 'MISS'} (< {TARGET_SECONDS:.0f} s)")
    print(f"  requests {totals.received}, approved {totals.approved}, rejected {totals.rejected}, "
          f"done {totals.done}, open {totals.open}; groups {len(figures.groups)}")
    for step in figures.steps:
        share = f"{step.share_within:.3f}" if step.share_within is not None else "-"
        median = f"{step.median_hours:.2f}" if step.median_hours is not None else "-"
        print(f"  step {step.step:9} {step.count:7} finished, within {step.limit_hours:g} h {share}, "
              f"median {median} h, slowest {step.slowest[0].hours if step.slowest else '-'} h")
    a = figures.accounts
    print(f"  accounts created {a.created}, reset {a.reset}, suspended {a.suspended}, deleted {a.deleted}, "
          f"failed {a.failed}")
    print(f"  problems {[(p.code, p.requests) for p in figures.problems[:5]]}; overdue {figures.overdue_total}; "
          f"days {len(figures.days)} (received {sum(d.received for d in figures.days)}, "
          f"finished {sum(d.finished for d in figures.days)})")


async def run_postgres(year: Year, tmp: str, runs: int) -> tuple[list[float], float, Bm03Figures, dict[str, int],
                                                                  float]:
    """Make a private database, load it, time the report, drop it."""
    import asyncpg

    name = f"edudesk_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = await asyncpg.connect(ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    try:
        settings = _settings(tmp, url.replace("postgresql://", "postgres://", 1))
        start = time.perf_counter()
        counts = await load_postgres(year, settings, url)
        load_s = time.perf_counter() - start
        seconds, cpu, figures = await time_report(settings, runs)
        return seconds, cpu, figures, counts, load_s
    finally:
        admin = await asyncpg.connect(ADMIN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    """Build, time, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300_000)
    parser.add_argument("--account-log", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2, help="timed runs per database (the first is the figure)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    year = Year(args.requests, args.account_log, args.seed)
    summary: dict[str, Any] = {"sqlite_s": None, "postgres_s": None, "requests": args.requests,
                               "account_log": args.account_log}
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        settings = _settings(tmp, f"sqlite://{tmp}/edudesk.sqlite3")
        start = time.perf_counter()
        counts = await load_sqlite(year, settings)
        load_s = time.perf_counter() - start
        seconds, cpu, on_sqlite = await time_report(settings, args.runs)
        show("SQLite", seconds, cpu, on_sqlite, counts, load_s)
        summary["sqlite_s"] = round(seconds[0], 3)
        if not args.skip_postgres:
            seconds, cpu, on_postgres, counts, load_s = await run_postgres(year, tmp, args.runs)
            show("PostgreSQL", seconds, cpu, on_postgres, counts, load_s)
            summary["postgres_s"] = round(seconds[0], 3)
            print(f"the same figures on both: {'yes' if on_sqlite == on_postgres else 'NO'}")
            if on_sqlite != on_postgres:
                for name in on_sqlite.__dataclass_fields__:
                    if getattr(on_sqlite, name) != getattr(on_postgres, name):
                        print(f"  {name} differs:\n    {getattr(on_sqlite, name)}\n    {getattr(on_postgres, name)}")
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main())
