"""SQL that SQLite and PostgreSQL spell differently, for the report queries, and the period's local days.

Stored times are UTC (SQLite: `isoformat(" ")` text, which compares in time order). A local day is cut in
SQL by shifting by the zone's offset; where the zone changes offset within the period (summer time), the
shift changes at that instant (`offset_segments`), so every zone is right, not only fixed-offset ones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from edudesk.core.reports.figures import Period


class Dialect:
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
        """later − earlier in hours, each time taken to the nearest millisecond as SQLite's julianday() does
        (so both databases give the same figures, and exactly 24 h is 24.0)."""
        if self.pg:
            # date_part() is float8 (EXTRACT is numeric, several times slower over a year of requests)
            ms = "FLOOR(date_part('epoch', {}) * 1000 + 0.5::float8)"
            return f"(({ms.format(later)} - {ms.format(earlier)}) / 3600000)"
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

    def middle(self, column: str) -> str:
        """A SELECT of the middle value(s) of `column` over `t`, the median being their mean: PostgreSQL's
        ordered-set aggregate (one row, NULL when none); on SQLite the one or two middle rows."""
        if self.pg:
            return f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY t.{column}) AS h FROM t"
        n = f"(SELECT COUNT(t.{column}) FROM t)"
        return (f"SELECT t.{column} AS h FROM t WHERE t.{column} IS NOT NULL ORDER BY t.{column} "
                f"LIMIT 2 - {n} % 2 OFFSET ({n} - 1) / 2")

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


def as_day(value: Any) -> date:
    """A day read back from either database (a date, or ISO text)."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def as_utc(value: Any) -> datetime:
    """A time read back from either database (aware, or ISO text), in UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
