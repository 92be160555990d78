"""The figures of a BM03 report, computed in the database: a few aggregate queries, no per-request Python.

What counts (the requests *of the period* are those received on its local days, of its unit if it names one):
- groups: per (kind, population, unit) the requests received; `approved` = ever approved by the office
  (an `request_approve` audit event), `rejected` / `done` / `open` = where the request is now (its state),
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

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tortoise import connections

from edudesk.core.config import Settings
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


class _Dialect:
    """The few expressions SQLite and PostgreSQL spell differently."""

    def __init__(self, name: str) -> None:
        self.pg = name == "postgres"

    def sql(self, text: str) -> str:
        """`?` placeholders as the driver wants them ($1, $2... on PostgreSQL)."""
        if not self.pg:
            return text
        parts = text.split("?")
        return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))

    def at(self, moment: datetime) -> Any:
        """A UTC time as a parameter (SQLite stores `isoformat(" ")` text of UTC times)."""
        moment = moment.astimezone(UTC)
        return moment if self.pg else moment.isoformat(" ")

    def literal(self, moment: datetime) -> str:
        """A UTC time as an SQL literal (our own value, never user input)."""
        text = moment.astimezone(UTC).isoformat(" ")
        return f"TIMESTAMPTZ '{text}'" if self.pg else f"'{text}'"

    def hours(self, later: str, earlier: str) -> str:
        """later − earlier in hours, to the millisecond (so that exactly 24 h is 24.0 on both)."""
        if self.pg:
            return f"(ROUND(EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000) / 3600000.0)"
        return f"(ROUND((julianday({later}) - julianday({earlier})) * 86400000.0) / 3600000.0)"

    def day(self, column: str, offset_seconds: int) -> str:
        """The calendar day of a UTC time shifted by a fixed offset."""
        if self.pg:
            return f"(({column} AT TIME ZONE 'UTC') + INTERVAL '{offset_seconds} seconds')::date"
        return f"date({column}, '{offset_seconds:+d} seconds')"

    def local_day(self, column: str, segments: list[tuple[datetime | None, int]]) -> str:
        """The local day of a UTC time, for a zone whose offset changes at the segments' ends."""
        if len(segments) == 1:
            return self.day(column, segments[0][1])
        whens = " ".join(f"WHEN {column} < {self.literal(until)} THEN {self.day(column, offset)}"
                         for until, offset in segments if until is not None)
        return f"(CASE {whens} ELSE {self.day(column, segments[-1][1])} END)"

    def problems(self, table: str, alias: str) -> str:
        """FROM-clause items giving one row per element of `table.problems` as (code, severity)."""
        if self.pg:
            return (f"CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({alias}.problems) = 'array' "
                    f"THEN {alias}.problems ELSE '[]'::jsonb END) AS j(value)")
        return f", json_each({alias}.problems) AS j"

    def problem_fields(self) -> tuple[str, str, str]:
        """(code, severity, is-an-object condition) of an element `j`."""
        if self.pg:
            return "j.value->>'code'", "j.value->>'severity'", "jsonb_typeof(j.value) = 'object'"
        return "json_extract(j.value, '$.code')", "json_extract(j.value, '$.severity')", "j.type = 'object'"


def utc_bounds(period: Period) -> tuple[datetime, datetime]:
    """The period's first local midnight and the midnight after its last day, in UTC."""
    zone = ZoneInfo(period.timezone)
    start = datetime.combine(period.start, time(), zone).astimezone(UTC)
    end = datetime.combine(period.end + timedelta(days=1), time(), zone).astimezone(UTC)
    return start, end


def offset_segments(start: datetime, end: datetime, timezone: str) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offsets (seconds) over [start, end): (until, offset) pairs, the last one's until None."""
    zone = ZoneInfo(timezone)

    def offset(moment: datetime) -> int:
        delta = moment.astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    segments: list[tuple[datetime | None, int]] = []
    current, moment = offset(start), start
    while moment < end:
        step = min(moment + timedelta(hours=1), end)
        if offset(step) != current:
            low, high = moment, step  # the change lies in (low, high]: find its second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == current else (low, middle)
            segments.append((high, current))
            current = offset(high)
        moment = step
    segments.append((None, current))
    return segments


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _time(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def problem_label(code: str, lang: str) -> str:
    """A problem code in words: the report's own label, else the intake's text when it has no blanks."""
    w = words(lang)
    if w.has(f"bm03.problem.{code}"):
        return w(f"bm03.problem.{code}")
    if w.has(f"form.{code}") and "{" not in w.texts[f"form.{code}"]:
        return w(f"form.{code}").rstrip(".")
    return code


class _Query:
    """The period's requests and decisions as SQL, and the queries over them."""

    def __init__(self, period: Period, now: datetime, sla_check: float, sla_provision: float) -> None:
        self.conn = connections.get("default")
        self.d = _Dialect(str(self.conn.capabilities.dialect))
        self.period, self.now = period, now
        self.start, self.end = utc_bounds(period)
        self.limits = {"office": sla_check, "technical": sla_provision, "total": sla_check + sla_provision}
        unit = " AND unit = ?" if period.unit else ""
        self.where = f"FROM request WHERE received_at >= ? AND received_at < ?{unit}"
        self.requests = f"SELECT id, kind, population, unit, state, received_at, deadline {self.where}"
        self.request_args = [self.d.at(self.start), self.d.at(self.end)] + ([period.unit] if period.unit else [])
        # One row per request of the period with the times of its first approval, first decision (approval
        # or rejection) and first completed directory change: the audit trail read through its index.
        self.per_request = (
            "SELECT r.id, r.kind, r.population, r.unit, r.state, r.received_at, "
            "MIN(CASE WHEN e.action = 'request_approve' THEN e.at END) AS approved_at, "
            "MIN(CASE WHEN e.action IN ('request_approve', 'request_reject') THEN e.at END) AS decided_at, "
            "MIN(CASE WHEN e.action = 'request_provisioned' THEN e.at END) AS done_at "
            "FROM request r LEFT JOIN audit_event e ON e.request_id = r.id "
            "AND e.action IN ('request_approve', 'request_reject', 'request_provisioned') AND e.at <= ? "
            f"WHERE r.received_at >= ? AND r.received_at < ?{' AND r.unit = ?' if period.unit else ''} "
            "GROUP BY r.id, r.kind, r.population, r.unit, r.state, r.received_at")
        self.per_request_args = [self.d.at(now), *self.request_args]

    async def rows(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        """Run one statement."""
        return await self.conn.execute_query_dict(self.d.sql(sql), args)

    async def groups(self) -> tuple[GroupRow, ...]:
        """Received, approved, rejected, done, open per (kind, population, unit)."""
        rows = await self.rows(
            "SELECT p.kind, p.population, p.unit, COUNT(*) AS received, "
            "SUM(CASE WHEN p.approved_at IS NOT NULL THEN 1 ELSE 0 END) AS approved, "
            "SUM(CASE WHEN p.state = 'rejected' THEN 1 ELSE 0 END) AS rejected, "
            "SUM(CASE WHEN p.state = 'done' THEN 1 ELSE 0 END) AS done, "
            f"SUM(CASE WHEN p.state IN ({_OPEN}) THEN 1 ELSE 0 END) AS open "
            f"FROM ({self.per_request}) p GROUP BY p.kind, p.population, p.unit", self.per_request_args)
        return tuple(sorted((GroupRow(kind=x["kind"], population=x["population"], unit=x["unit"],
                              received=int(x["received"]), approved=int(x["approved"] or 0),
                              rejected=int(x["rejected"] or 0), done=int(x["done"] or 0), open=int(x["open"] or 0))
                             for x in rows), key=lambda g: (g.kind, g.population, g.unit)))

    async def steps(self) -> tuple[StepTimes, ...]:
        """Count, within the limit, median and the slowest ten of each step, in one statement."""
        h = self.d.hours
        within = " ".join(f"WHEN '{s}' THEN {float(limit)!r}" for s, limit in self.limits.items())
        rows = await self.rows(
            f"WITH p AS ({self.per_request}), d AS (SELECT s.step, p.id, p.kind, p.unit, CASE s.step "
            f"WHEN 'office' THEN {h('p.decided_at', 'p.received_at')} "
            "WHEN 'technical' THEN CASE WHEN p.approved_at IS NOT NULL AND p.done_at >= p.approved_at "
            f"THEN {h('p.done_at', 'p.approved_at')} END "
            f"ELSE {h('p.done_at', 'p.received_at')} END AS h FROM p CROSS JOIN "
            "(SELECT 'office' AS step UNION ALL SELECT 'technical' UNION ALL SELECT 'total') s), "
            "ranked AS (SELECT d.step, d.id, d.kind, d.unit, d.h, "
            "ROW_NUMBER() OVER (PARTITION BY d.step ORDER BY d.h, d.id) AS rn, "
            "ROW_NUMBER() OVER (PARTITION BY d.step ORDER BY d.h DESC, d.id) AS rd, "
            "COUNT(*) OVER (PARTITION BY d.step) AS n, "
            f"SUM(CASE WHEN d.h <= (CASE d.step {within} END) THEN 1 ELSE 0 END) OVER (PARTITION BY d.step) AS w "
            "FROM d WHERE d.h IS NOT NULL) "
            f"SELECT step, id, kind, unit, h, rn, rd, n, w FROM ranked WHERE rd <= {SLOWEST} "
            "OR rn = (n + 1) / 2 OR rn = (n + 2) / 2", self.per_request_args)
        out = []
        for step in STEPS:
            mine = [x for x in rows if x["step"] == step]
            n = int(mine[0]["n"]) if mine else 0
            middle = [float(x["h"]) for x in mine if int(x["rn"]) in ((n + 1) // 2, (n + 2) // 2)]
            slowest = sorted((x for x in mine if int(x["rd"]) <= SLOWEST), key=lambda x: int(x["rd"]))
            out.append(StepTimes(
                step=step, count=n, within_limit=int(mine[0]["w"]) if mine else 0, limit_hours=self.limits[step],
                median_hours=sum(middle) / len(middle) if middle else None,
                slowest=tuple(SlowRequest(request_id=int(x["id"]), kind=x["kind"], unit=x["unit"],
                                          hours=float(x["h"])) for x in slowest)))
        return tuple(out)

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
            deadline = _time(x["deadline"])
            listed.append(OverdueRequest(request_id=int(x["id"]), kind=x["kind"], unit=x["unit"], state=x["state"],
                                         received_at=_time(x["received_at"]), deadline=deadline,
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
        came = {_day(x["day"]): int(x["n"]) for x in received}
        went = {_day(x["day"]): int(x["n"]) for x in finished}
        count = (self.period.end - self.period.start).days + 1
        return tuple(DayCount(day=day, received=came.get(day, 0), finished=went.get(day, 0))
                     for day in (self.period.start + timedelta(days=i) for i in range(count)))


async def bm03_figures(settings: Settings, period: Period, now: datetime, lang: str = "vi") -> Bm03Figures:
    """Everything a BM03 report shows for `period`, as of `now`, from the open default database."""
    if period.end < period.start:
        raise ValueError("the period ends before it starts")
    query = _Query(period, now, settings.sla.check_hours, settings.sla.provision_hours)
    overdue, overdue_total = await query.overdue()
    return Bm03Figures(
        period=period, generated_at=now, institution=settings.institution.name,
        office_unit=settings.institution.office_unit, form=settings.institution.report_form,
        groups=await query.groups(), steps=await query.steps(), accounts=await query.accounts(),
        problems=await query.problems(lang), overdue=overdue, days=await query.days(),
        overdue_total=overdue_total)
