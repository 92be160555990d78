"""The figures of a BM03 report, computed in the database: a few aggregate queries, no per-request Python.

What counts (the requests *of the period* are those received on its local days, of its unit if it names one):
- groups: per (kind, population, unit) the requests received; `approved` = ever approved by the office
  (a `request_approve` audit event), `rejected` / `done` / `open` = where the request is now (its state),
  so received = rejected + done + open.
- steps: office = received → first approval or rejection (time waiting for the requester's answer
  included), technical = first approval → first completed directory change (`request_provisioned`),
  total = received → that change; against `[sla]` check_hours, provision_hours and their sum.
- accounts: the account log's rows of the period (create and link count as created; ok = false as failed).
- problems: the intake findings (request-level and per-row, severity error or warning) of the period's requests.
- overdue: the period's open requests past their step's deadline at `now`, most late first.
- days: per local day, requests received and decisions that finished one (rejection, completed change).
Stored times are UTC (SQLite: ISO text, which compares in time order); local days are cut in SQL at the
zone's offsets, split where the zone changes offset within the period.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edudesk.core.config import Settings
from edudesk.core.reports.dialect import Dialect, as_day, as_utc, offset_segments, utc_bounds
from edudesk.core.reports.figures import (
    AccountCounts,
    Bm03Figures,
    DayCount,
    GroupRow,
    OverdueRequest,
    Period,
    ProblemCount,
    SlowRequest,
    StepTimes,
)
from edudesk.core.requests.workflow import OPEN_STATES
from edudesk.core.words import words

SLOWEST = 10
TOP_PROBLEMS = 10
OVERDUE_SHOWN = 200  # the list a report prints; `overdue_total` counts them all
STEPS = ("office", "technical", "total")
_OPEN = ", ".join(f"'{s.value}'" for s in OPEN_STATES)
_FINISHING = "('request_reject', 'request_provisioned')"


def problem_label(code: str, lang: str) -> str:
    """A problem code in words: the report's own label, else the intake's text when it has no blanks."""
    w = words(lang)
    if w.has(f"bm03.problem.{code}"):
        return w(f"bm03.problem.{code}")
    if w.has(f"form.{code}") and "{" not in w.texts[f"form.{code}"]:
        return w(f"form.{code}").rstrip(".")
    return code


_COUNT = "BIGINT"
_TYPES = {"kind": "TEXT", "population": "TEXT", "unit": "TEXT", "id": "BIGINT", "h": "DOUBLE PRECISION"}
_COLUMNS = ("kind", "population", "unit", "received", "approved", "rejected", "done", "open",
            *(f"{s}_{x}" for s in STEPS for x in ("n", "w")), "id", "h")


def _branch(what: str, source: str, **values: str) -> str:
    """One SELECT of a UNION ALL whose rows all have `_COLUMNS` (a typed NULL where this one has no value)."""
    columns = ", ".join(f"{values.get(c) or f'CAST(NULL AS {_TYPES.get(c, _COUNT)})'} AS {c}" for c in _COLUMNS)
    return f"SELECT '{what}' AS what, {columns} {source}"


class _Query:
    """The period's requests and decisions as SQL, and the queries over them."""

    def __init__(self, conn: BaseDBAsyncClient, period: Period, now: datetime, sla_check: float,
                 sla_provision: float) -> None:
        self.conn = conn
        self.d = Dialect(str(self.conn.capabilities.dialect))
        self.period, self.now = period, now
        self.start, self.end = utc_bounds(period)
        self.limits = {"office": sla_check, "technical": sla_provision, "total": sla_check + sla_provision}
        unit = " AND unit = ?" if period.unit else ""
        self.where = f"FROM request WHERE received_at >= ? AND received_at < ?{unit}"
        self.requests = f"SELECT id, kind, population, unit, state, received_at, deadline {self.where}"
        self.request_args = [self.d.at(self.start), self.d.at(self.end)] + ([period.unit] if period.unit else [])
        # One row per request of the period with the times of its first approval, first decision (approval
        # or rejection) and first completed directory change. The decisions are read by (action, at) from the
        # period's start on (a request's decisions come after it), so a month costs a month of the trail.
        self.per_request = (
            "SELECT r.id, r.kind, r.population, r.unit, r.state, r.received_at, ev.approved_at, ev.decided_at, "
            "ev.done_at FROM request r LEFT JOIN (SELECT e.request_id, "
            "MIN(CASE WHEN e.action = 'request_approve' THEN e.at END) AS approved_at, "
            "MIN(CASE WHEN e.action IN ('request_approve', 'request_reject') THEN e.at END) AS decided_at, "
            "MIN(CASE WHEN e.action = 'request_provisioned' THEN e.at END) AS done_at FROM audit_event e "
            "WHERE e.action IN ('request_approve', 'request_reject', 'request_provisioned') "
            "AND e.at >= ? AND e.at <= ? GROUP BY e.request_id) ev ON ev.request_id = r.id "
            f"WHERE r.received_at >= ? AND r.received_at < ?{' AND r.unit = ?' if period.unit else ''}")
        self.per_request_args = [self.d.at(self.start), self.d.at(now), *self.request_args]

    async def rows(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        """Run one statement."""
        return await self.conn.execute_query_dict(self.d.sql(sql), args)

    def _timed(self) -> str:
        """The period's requests with the hours each finished step took (NULL: not finished)."""
        h = self.d.hours
        return (f"SELECT p.id, p.kind, p.population, p.unit, p.state, p.approved_at, "
                f"{h('p.decided_at', 'p.received_at')} AS office_h, "
                "CASE WHEN p.approved_at IS NOT NULL AND p.done_at >= p.approved_at "
                f"THEN {h('p.done_at', 'p.approved_at')} END AS technical_h, "
                f"{h('p.done_at', 'p.received_at')} AS total_h FROM ({self.per_request}) p")

    async def groups_and_steps(self) -> tuple[tuple[GroupRow, ...], tuple[StepTimes, ...]]:
        """The groups, and each step's count, share within the limit, median and slowest ten.

        One statement over the per-request times (a materialised CTE, computed once): the aggregate per
        (kind, population, unit), which also counts each step's finished and in-time requests, and for each
        step its middle row(s) and its slowest ten by ORDER BY ... LIMIT.
        """
        counts = {"received": "COUNT(*)", "approved": "SUM(CASE WHEN t.approved_at IS NOT NULL THEN 1 ELSE 0 END)",
                  "rejected": "SUM(CASE WHEN t.state = 'rejected' THEN 1 ELSE 0 END)",
                  "done": "SUM(CASE WHEN t.state = 'done' THEN 1 ELSE 0 END)",
                  "open": f"SUM(CASE WHEN t.state IN ({_OPEN}) THEN 1 ELSE 0 END)"}
        for s, limit in self.limits.items():
            counts[f"{s}_n"] = f"COUNT(t.{s}_h)"
            counts[f"{s}_w"] = f"SUM(CASE WHEN t.{s}_h <= {float(limit)!r} THEN 1 ELSE 0 END)"
        parts = [_branch("group", "FROM t GROUP BY t.kind, t.population, t.unit", kind="t.kind",
                         population="t.population", unit="t.unit", **counts)]
        for s in STEPS:
            mid = _branch(f"{s}:middle", f"FROM ({self.d.middle(f'{s}_h')}) m", h="m.h")
            top = _branch(f"{s}:slow", f"FROM t WHERE t.{s}_h IS NOT NULL ORDER BY t.{s}_h DESC, t.id LIMIT {SLOWEST}",
                          id="t.id", kind="t.kind", unit="t.unit", h=f"t.{s}_h")
            parts += [f"SELECT * FROM ({mid}) m_{s}", f"SELECT * FROM ({top}) s_{s}"]
        rows = await self.rows(f"WITH t AS MATERIALIZED ({self._timed()}) " + " UNION ALL ".join(parts),
                               self.per_request_args)
        found = [x for x in rows if x["what"] == "group"]
        groups = tuple(sorted((GroupRow(kind=x["kind"], population=x["population"], unit=x["unit"],
                                        received=int(x["received"]), approved=int(x["approved"] or 0),
                                        rejected=int(x["rejected"] or 0), done=int(x["done"] or 0),
                                        open=int(x["open"] or 0)) for x in found),
                              key=lambda g: (g.kind, g.population, g.unit)))
        n = {s: sum(int(x[f"{s}_n"] or 0) for x in found) for s in STEPS}
        w = {s: sum(int(x[f"{s}_w"] or 0) for x in found) for s in STEPS}
        picked = [x for x in rows if x["what"] != "group" and x["h"] is not None]
        steps = []
        for s in STEPS:
            middle = [float(x["h"]) for x in picked if x["what"] == f"{s}:middle"]
            slow = sorted((x for x in picked if x["what"] == f"{s}:slow"), key=lambda x: (-float(x["h"]), x["id"]))
            steps.append(StepTimes(
                step=s, count=n[s], within_limit=w[s], limit_hours=self.limits[s],
                median_hours=sum(middle) / len(middle) if middle else None,
                slowest=tuple(SlowRequest(request_id=int(x["id"]), kind=x["kind"], unit=x["unit"],
                                          hours=float(x["h"])) for x in slow)))
        return groups, tuple(steps)

    async def accounts(self) -> AccountCounts:
        """The account log's rows of the period by action (successes) and the failures."""
        join = " JOIN request q ON q.id = a.request_id AND q.unit = ?" if self.period.unit else ""
        args = ([self.period.unit] if self.period.unit else []) + [self.d.at(self.start), self.d.at(self.end)]
        rows = await self.rows(f"SELECT a.action, CASE WHEN a.ok THEN 1 ELSE 0 END AS ok, COUNT(*) AS n "
                               f"FROM account_log a{join} WHERE a.at >= ? AND a.at < ? "
                               "GROUP BY a.action, CASE WHEN a.ok THEN 1 ELSE 0 END", args)
        done: dict[str, int] = {}
        failed = 0
        for x in rows:
            if int(x["ok"]):
                done[x["action"]] = done.get(x["action"], 0) + int(x["n"])
            else:
                failed += int(x["n"])
        return AccountCounts(created=done.get("create", 0) + done.get("link", 0), reset=done.get("reset", 0),
                             suspended=done.get("suspend", 0), deleted=done.get("delete", 0), failed=failed)

    async def problems(self, lang: str) -> tuple[ProblemCount, ...]:
        """The most frequent intake findings: how many of the period's requests had each."""
        code, severity, is_object = self.d.problem_fields()
        found = (f"SELECT {{rid}} AS rid, {code} AS code FROM {{source}} {{items}} "
                 f"WHERE {is_object} AND {severity} IN ('error', 'warning')")
        requests = found.format(rid="r.id", source="r", items=self.d.problems("request", "r"))
        persons = found.format(rid="p.request_id", source="request_person p JOIN r ON r.id = p.request_id",
                               items=self.d.problems("request_person", "p"))
        rows = await self.rows(
            f"WITH r AS (SELECT id, problems {self.where}) SELECT f.code, COUNT(DISTINCT f.rid) AS n FROM "
            f"({requests} UNION ALL {persons}) f WHERE f.code IS NOT NULL GROUP BY f.code", self.request_args)
        # A few dozen codes at most; ordered here, the same on both databases whatever their collation.
        top = sorted(((str(x["code"]), int(x["n"])) for x in rows), key=lambda x: (-x[1], x[0]))[:TOP_PROBLEMS]
        return tuple(ProblemCount(code=code, label=problem_label(code, lang), requests=n) for code, n in top)

    async def overdue(self) -> tuple[tuple[OverdueRequest, ...], int]:
        """The period's open requests past their deadline now (the most late first), and how many there are."""
        where = f"FROM ({self.requests}) r WHERE r.state IN ({_OPEN}) AND r.deadline < ?"
        args = [*self.request_args, self.d.at(self.now)]
        total = await self.rows(f"SELECT COUNT(*) AS n {where}", args)
        rows = await self.rows(f"SELECT r.id, r.kind, r.unit, r.state, r.received_at, r.deadline {where} "
                               f"ORDER BY r.deadline, r.id LIMIT {OVERDUE_SHOWN}", args)
        listed = []
        for x in rows:
            deadline = as_utc(x["deadline"])
            listed.append(OverdueRequest(request_id=int(x["id"]), kind=x["kind"], unit=x["unit"], state=x["state"],
                                         received_at=as_utc(x["received_at"]), deadline=deadline,
                                         hours_late=round((self.now - deadline).total_seconds() / 3600, 3)))
        return tuple(listed), int(total[0]["n"])

    async def days(self) -> tuple[DayCount, ...]:
        """One row per local day of the period: requests received, decisions that finished a request."""
        segments = offset_segments(self.start, self.end, self.period.timezone)
        received = await self.rows(
            f"SELECT {self.d.local_day('r.received_at', segments)} AS day, COUNT(*) AS n "
            f"FROM ({self.requests}) r GROUP BY 1", self.request_args)
        join = " JOIN request q ON q.id = e.request_id AND q.unit = ?" if self.period.unit else ""
        finished = await self.rows(
            f"SELECT {self.d.local_day('e.at', segments)} AS day, COUNT(*) AS n FROM audit_event e{join} "
            f"WHERE e.action IN {_FINISHING} AND e.at >= ? AND e.at < ? AND e.at <= ? GROUP BY 1",
            ([self.period.unit] if self.period.unit else [])
            + [self.d.at(self.start), self.d.at(self.end), self.d.at(self.now)])
        came = {as_day(x["day"]): int(x["n"]) for x in received}
        went = {as_day(x["day"]): int(x["n"]) for x in finished}
        count = (self.period.end - self.period.start).days + 1
        return tuple(DayCount(day=day, received=came.get(day, 0), finished=went.get(day, 0))
                     for day in (self.period.start + timedelta(days=i) for i in range(count)))


async def bm03_figures(settings: Settings, period: Period, now: datetime, lang: str = "vi") -> Bm03Figures:
    """Everything a BM03 report shows for `period`, as of `now`, from the open default database."""
    if period.end < period.start:
        raise ValueError("the period ends before it starts")
    async with _reading() as conn:
        query = _Query(conn, period, now, settings.sla.check_hours, settings.sla.provision_hours)
        overdue, overdue_total = await query.overdue()
        groups, steps = await query.groups_and_steps()
        return Bm03Figures(
            period=period, generated_at=now, institution=settings.institution.name,
            office_unit=settings.institution.office_unit, form=settings.institution.report_form,
            groups=groups, steps=steps, accounts=await query.accounts(),
            problems=await query.problems(lang), overdue=overdue, days=await query.days(),
            overdue_total=overdue_total)


@asynccontextmanager
async def _reading() -> AsyncIterator[BaseDBAsyncClient]:
    """The connection the report reads through.

    PostgreSQL: one read-only snapshot for every figure, without JIT (compiling these aggregates takes about
    a second, longer than most of them run) and with room to sort a year in memory. SQLite: no transaction,
    since edudesk's SQLite transactions take the write lock (`core/db_sqlite.py`) and a report must not hold
    up intake.
    """
    conn = connections.get("default")
    if str(conn.capabilities.dialect) != "postgres":
        yield conn
        return
    async with in_transaction("default") as tx:
        await tx.execute_script("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL jit = off; "
                                "SET LOCAL work_mem = '64MB'")  # a year's per-request times sorted in memory
        yield tx
