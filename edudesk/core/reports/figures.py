"""The figures of a BM03 report (MTT.QT06.BM03: "Tổng hợp, thống kê kết quả thực hiện cấp TKĐT, cấp lại mật khẩu
TKĐT"), as plain data: `core/reports/bm03.py` computes them from the database, the writers (`xlsx.py`, `pdf.py`,
`charts.py`) and the console's `/reports` page only show them.

Times are aware datetimes in UTC; the writers show them in the office's time zone (`period.timezone`).
Durations are hours as floats. Every count is an int; "share" is a fraction 0..1 (None when nothing to share).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True)
class Period:
    """The days the report covers, both included, in the office's local calendar."""

    start: date
    end: date
    timezone: str  # e.g. "Asia/Ho_Chi_Minh"
    unit: str = ""  # "" = every unit; otherwise only requests of this unit (as stored on the request)


@dataclass(frozen=True)
class GroupRow:
    """Requests received in the period for one (kind, population, unit), and where they are now."""

    kind: str  # Kind value: new_account, password_reset, bulk_new_accounts, delete_accounts, question
    population: str  # "staff" | "student" | "" (unknown)
    unit: str  # "" when the request names none
    received: int
    approved: int  # approved by the office (whatever happened after)
    rejected: int
    done: int  # provisioned (the directory change succeeded) or closed as done
    open: int  # still open at the report's end (received, need_info, approved, provisioning)


@dataclass(frozen=True)
class SlowRequest:
    """One of the slowest requests of a step."""

    request_id: int
    kind: str
    unit: str
    hours: float


@dataclass(frozen=True)
class StepTimes:
    """Time taken by one step, for the requests of the period that finished that step.

    step: "office" (received → approved or rejected), "technical" (approved → done),
    "total" (received → done).
    """

    step: str
    count: int  # requests that finished the step
    within_limit: int  # finished within `limit_hours`
    limit_hours: float  # the rule: 24 h per step (total: the sum of the steps' limits)
    median_hours: float | None
    slowest: tuple[SlowRequest, ...]  # the ten slowest, slowest first

    @property
    def share_within(self) -> float | None:
        """Fraction finished within the limit; None when none finished."""
        return self.within_limit / self.count if self.count else None


@dataclass(frozen=True)
class AccountCounts:
    """Directory changes from the account log in the period (successful ones; failures counted apart)."""

    created: int
    reset: int
    suspended: int
    deleted: int
    failed: int  # log rows with ok = false


@dataclass(frozen=True)
class ProblemCount:
    """A reason found at intake (a problem code) and how many requests of the period had it."""

    code: str
    label: str  # the reason in words, in the report's language
    requests: int


@dataclass(frozen=True)
class OverdueRequest:
    """An open request past its step's deadline at the report's end."""

    request_id: int
    kind: str
    unit: str
    state: str
    received_at: datetime
    deadline: datetime
    hours_late: float


@dataclass(frozen=True)
class DayCount:
    """Requests received and finished (done or rejected) on one local day: the charts' time series."""

    day: date
    received: int
    finished: int


@dataclass(frozen=True)
class Bm03Figures:
    """Everything a BM03 report shows."""

    period: Period
    generated_at: datetime
    institution: str  # [institution].name
    office_unit: str  # [institution].office_unit
    form: str  # [institution].report_form, e.g. "BM03"
    groups: tuple[GroupRow, ...]  # sorted by kind, population, unit
    steps: tuple[StepTimes, ...]  # office, technical, total, in that order
    accounts: AccountCounts
    problems: tuple[ProblemCount, ...]  # most frequent first, at most ten
    overdue: tuple[OverdueRequest, ...]  # most late first
    days: tuple[DayCount, ...] = field(default=())  # one per day of the period, in order
    overdue_total: int = 0  # all overdue requests of the period; `overdue` lists at most the 200 most late

    def totals(self) -> GroupRow:
        """The groups added up (kind, population and unit are "")."""
        return GroupRow(kind="", population="", unit="",
                        received=sum(g.received for g in self.groups),
                        approved=sum(g.approved for g in self.groups),
                        rejected=sum(g.rejected for g in self.groups),
                        done=sum(g.done for g in self.groups),
                        open=sum(g.open for g in self.groups))

    def units(self) -> tuple[str, ...]:
        """The units that appear in the groups, sorted."""
        return tuple(sorted({g.unit for g in self.groups}))
