"""A BM03 data set with known figures, for the report's tests (figures, .xlsx, .pdf, the console page).

`await seed_bm03(now)` writes, into the open default database, 18 requests received over a ten-day period
that ended four days before `now` (plus three just outside it), and returns `SeedExpectations`: the exact
figures `bm03_figures(settings, expected.period, now)` must give, worked out by hand below. Decisions go
through the real services: approve / reject / ask-for-info / provision taps through `RequestService.act`,
and the directory change through the real `ProvisionJob` on the local directory, so the audit events and
account-log rows are the ones the service writes. Only what comes from outside the decision services is
written directly, the way its writer does: the requests as intake stores them (with their findings), a
free-mail refusal at intake, the accounts that exist beforehand, and a few account-log rows (a deletion
after the grace period, failures).

Every time is a local time (Asia/Ho_Chi_Minh) on day `i` of the period, so the figures do not depend on
`now` beyond it being at least four days after the period. Pass the App's settings (`seed_bm03(now,
app.settings)`) to have its SLA and provisioning settings used; the default settings give the same figures.
R15 is left in provisioning on purpose, its job pending: draining the job worker afterwards would carry it
out and change the figures (the other pending jobs are cards and mails, which change none).

The period's requests (h = hours after the request came in; office step = first approval or rejection):

    R1  new_account       student U1  d0 09:00  approve 2h, provision 3h → done        1 create
    R2  new_account       student U1  d0 10:00  approve 30h, tap 50h, done 52h          1 create  (warning)
    R3  new_account       staff   U3  d1 08:00  approve 4h, tap 10h, done 40h (d3 00:00) 1 create
    R4  password_reset    student U1  d1 14:00  approve 1h, tap 1.5h, done 2h           1 reset
    R5  password_reset    student U2  d2 09:30  approve 5h, done 6h                     1 reset
    R6  password_reset    staff   U3  d2 11:00  reject 3h                              (not_in_registry)
    R7  bulk_new_accounts student U2  d3 08:00  approve 20h, tap 22h, done 23h          3 create
    R8  delete_accounts   staff   U3  d3 15:00  approve 6h, tap 7h, done 8h             1 suspend
    R9  new_account       student U2  d4 09:00  reject 48h                             (missing_mobile, invalid_date)
    R10 new_account       student ""  d4 10:00  refused at intake (free mail), 0h      (free_mail_official)
    R11 new_account       student U1  d5 09:00  approve 3h → open, overdue
    R12 password_reset    student U1  d5 13:00  ask for info 2h → open, not overdue     (not_in_registry)
    R13 new_account       staff   U3  d6 08:00  nothing → open, overdue                 (missing_mobile)
    R14 question          student ""  d6 10:00  reject 1h
    R15 bulk_new_accounts student U1  d7 09:00  approve 2h, tap 4h, no result → open, overdue
    R16 password_reset    student U2  d8 16:00  approve 10h, tap 11h, done 12h (d9)     1 reset
    R17 new_account       student U1  d9 23:30  nothing → open, overdue (last minutes)  (missing_mobile)
    R18 new_account       student U1  d0 00:10  reject 0.5h (first minutes)            (info only: not counted)
    outside: X1 d10 00:30 (U1, open); X2 d-1 23:30 (U1 reset, done at d0 01:30: its reset and its
    completion fall in the period); X3 d-3 (U3, open, overdue: not the period's)
    account log written directly: delete ok d5 (R8), "taken" failure d1 (R1), create failure d2 (no
    request), and a delete d-2 and a create d11 outside the period.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from edudesk.core.accounts.log import record_change
from edudesk.core.accounts.models import Account
from edudesk.core.config import Settings, load_settings
from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import FakeClock
from edudesk.core.provisioning import Directories
from edudesk.core.provisioning.job import ProvisionJob
from edudesk.core.reports.figures import AccountCounts, DayCount, GroupRow, Period
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.service import RequestService
from edudesk.core.secrets import load_secret_box
from edudesk.directories.local import LocalProvisioner

TIMEZONE = "Asia/Ho_Chi_Minh"
U1 = "Viện Công nghệ Thông tin và Truyền thông"
U2 = "Khoa Toán - Tin"
U3 = "Phòng Tổ chức - Hành chính"
OFFICE = Actor("web:1", "Lê Văn Phòng", frozenset({Role.OFFICE}))
TECH = Actor("web:2", "Trần Kỹ Thuật", frozenset({Role.TECHNICAL}))


@dataclass(frozen=True)
class StepExpectation:
    """What one step of `Bm03Figures.steps` must say."""

    count: int
    within_limit: int
    median_hours: float
    slowest: tuple[str, ...]  # request names ("R9"...), slowest first; `ids` maps them to request ids


@dataclass(frozen=True)
class SeedExpectations:
    """The exact figures of the seeded data set (and of its unit U1 alone)."""

    period: Period
    now: datetime
    ids: dict[str, int]  # "R1".."R18", "X1".."X3" → request id
    groups: tuple[GroupRow, ...]  # sorted by kind, population, unit
    totals: GroupRow
    received_by_kind: dict[str, int]
    steps: dict[str, StepExpectation]  # "office", "technical", "total"
    accounts: AccountCounts
    problems: tuple[tuple[str, int], ...]  # (code, requests), most frequent first, ties by code
    top_problem: str
    overdue: tuple[str, ...]  # request names, most late first
    overdue_ids: tuple[int, ...]
    days: tuple[DayCount, ...]
    unit: str  # U1: the figures with `Period(..., unit=U1)` follow
    unit_groups: tuple[GroupRow, ...]
    unit_accounts: AccountCounts
    unit_problems: tuple[tuple[str, int], ...]
    unit_overdue_ids: tuple[int, ...]
    unit_days_received: tuple[int, ...]


def _problem(code: str, field: str, severity: str = "error", row: int | None = 0) -> dict[str, Any]:
    return {"field": field, "code": code, "message": f"({code})", "severity": severity, "row": row}


# name: (kind, population, unit, day, "HH:MM", persons, request-level problems, per-person problems)
_REQUESTS: dict[str, tuple[str, str, str, int, str, int, list[str], list[str]]] = {
    "X3": ("new_account", "staff", U3, -3, "09:00", 1, [], []),
    "X2": ("password_reset", "student", U1, -1, "23:30", 1, [], []),
    "R18": ("new_account", "student", U1, 0, "00:10", 1, ["legacy_encoding"], []),
    "R1": ("new_account", "student", U1, 0, "09:00", 1, [], []),
    "R2": ("new_account", "student", U1, 0, "10:00", 1, [], ["name_diacritics"]),
    "R3": ("new_account", "staff", U3, 1, "08:00", 1, [], []),
    "R4": ("password_reset", "student", U1, 1, "14:00", 1, [], []),
    "R5": ("password_reset", "student", U2, 2, "09:30", 1, [], []),
    "R6": ("password_reset", "staff", U3, 2, "11:00", 1, [], ["not_in_registry"]),
    "R7": ("bulk_new_accounts", "student", U2, 3, "08:00", 3, [], []),
    "R8": ("delete_accounts", "staff", U3, 3, "15:00", 1, [], []),
    "R9": ("new_account", "student", U2, 4, "09:00", 1, [], ["missing_mobile", "invalid_date"]),
    "R10": ("new_account", "student", "", 4, "10:00", 1, ["free_mail_official"], []),
    "R11": ("new_account", "student", U1, 5, "09:00", 1, [], []),
    "R12": ("password_reset", "student", U1, 5, "13:00", 1, [], ["not_in_registry"]),
    "R13": ("new_account", "staff", U3, 6, "08:00", 1, [], ["missing_mobile"]),
    "R14": ("question", "student", "", 6, "10:00", 0, [], []),
    "R15": ("bulk_new_accounts", "student", U1, 7, "09:00", 2, [], []),
    "R16": ("password_reset", "student", U2, 8, "16:00", 1, [], []),
    "R17": ("new_account", "student", U1, 9, "23:30", 1, [], ["missing_mobile"]),
    "X1": ("new_account", "student", U1, 10, "00:30", 1, [], ["not_in_registry"]),
}
_SEVERITY = {"name_diacritics": "warning", "legacy_encoding": "info"}
_FIELDS = {"not_in_registry": "student_id", "missing_mobile": "mobile", "invalid_date": "date_of_birth",
           "name_diacritics": "full_name", "legacy_encoding": "form", "free_mail_official": "sender"}
# name: [(hours after receipt, what happens)]; "provisioned" runs the provision job
_DECISIONS: dict[str, list[tuple[float, str]]] = {
    "X2": [(1, "approve"), (1.5, "provision"), (2, "provisioned")],
    "R18": [(0.5, "reject")],
    "R1": [(2, "approve"), (3, "provision"), (3, "provisioned")],
    "R2": [(30, "approve"), (50, "provision"), (52, "provisioned")],
    "R3": [(4, "approve"), (10, "provision"), (40, "provisioned")],
    "R4": [(1, "approve"), (1.5, "provision"), (2, "provisioned")],
    "R5": [(5, "approve"), (6, "provision"), (6, "provisioned")],
    "R6": [(3, "reject")],
    "R7": [(20, "approve"), (22, "provision"), (23, "provisioned")],
    "R8": [(6, "approve"), (7, "provision"), (8, "provisioned")],
    "R9": [(48, "reject")],
    "R11": [(3, "approve")],
    "R12": [(2, "ask_info")],
    "R14": [(1, "reject")],
    "R15": [(2, "approve"), (4, "provision")],
    "R16": [(10, "approve"), (11, "provision"), (12, "provisioned")],
}


def seed_period(now: datetime) -> Period:
    """The ten local days the seed fills: they end four days before `now`'s local day."""
    today = now.astimezone(ZoneInfo(TIMEZONE)).date()
    return Period(start=today - timedelta(days=14), end=today - timedelta(days=5), timezone=TIMEZONE)


def _at(period: Period, day: int, hhmm: str) -> datetime:
    local = datetime.combine(period.start + timedelta(days=day), time.fromisoformat(hhmm), ZoneInfo(TIMEZONE))
    return local.astimezone(UTC)


def _default_settings(data_dir: str) -> Settings:
    return load_settings(None, overrides={"general": {"data_dir": data_dir}}, environ={})


async def _create_request(name: str, period: Period, settings: Settings) -> Request:
    kind, population, unit, day, hhmm, persons, request_codes, person_codes = _REQUESTS[name]
    at = _at(period, day, hhmm)
    refused = "free_mail_official" in request_codes
    request = await Request.create(
        kind=kind, population=population, state="rejected" if refused else "received",
        sender=f"{name.lower()}@sis.example.edu.vn", sender_name=f"Người gửi {name}", subject=f"Yêu cầu {name}",
        message_id=f"<{name.lower()}@seed>", unit=unit, source="attachment" if persons > 1 else "body",
        problems=[_problem(c, _FIELDS[c], _SEVERITY.get(c, "error"), None) for c in request_codes],
        received_at=at, deadline=None if refused else at + timedelta(hours=settings.sla.check_hours),
        updated_at=at)
    for row in range(persons):
        pid = f"{2020_0000 + request.id * 10 + row}"
        address = f"{name.lower()}.{row}@sis.example.edu.vn"
        await RequestPerson.create(
            request=request, row=row, person_id=pid, full_name=f"Nguyễn Văn {name} {row}", proposed_address=address,
            data={"full_name": f"Nguyễn Văn {name} {row}", "student_id": pid, "unit": unit},
            problems=[_problem(c, _FIELDS[c], _SEVERITY.get(c, "error"), row) for c in person_codes])
        if kind in ("password_reset", "delete_accounts"):  # their accounts exist already
            await Account.create(address=address, population=population, person_id=pid,
                                 full_name=f"Nguyễn Văn {name} {row}", state="active", created_at=at - timedelta(
                                     days=400), updated_at=at - timedelta(days=400), backend="local")
    if refused:  # what intake writes for an official request from free mail (core/intake/pipeline.py)
        await AuditEvent.create(at=at, actor="system", action="request_reject", request_id=request.id, detail={
            "from": "received", "to": "rejected", "label": "Thư công vụ từ hộp thư miễn phí",
            "reason": "free mail", "version": 0, "filter": "create_request"})
    return request


async def seed_bm03(clock_now: datetime, settings: Settings | None = None) -> SeedExpectations:
    """Write the data set into the open database; the figures a BM03 of `seed_period(clock_now)` must show."""
    if settings is None:
        with tempfile.TemporaryDirectory(prefix="bm03-seed-") as data_dir:  # the secret key of the run's links
            return await _seed(clock_now, _default_settings(data_dir))
    return await _seed(clock_now, settings)


async def _seed(clock_now: datetime, settings: Settings) -> SeedExpectations:
    period = seed_period(clock_now)
    clock = FakeClock(_at(period, -4, "00:00"))
    queue = JobQueue(clock, settings.jobs)
    service = RequestService(settings, clock, queue)
    directory = LocalProvisioner(clock)
    job = ProvisionJob(settings, clock, queue, Directories(settings, clock, fixed=directory),
                       load_secret_box(settings))
    steps: list[tuple[datetime, int, str, str]] = []  # (when, order, name, what)
    for name, (_, _, _, day, hhmm, *_rest) in _REQUESTS.items():
        received = _at(period, day, hhmm)
        steps.append((received, len(steps), name, "create"))
        for hours, what in _DECISIONS.get(name, []):
            steps.append((received + timedelta(hours=hours), len(steps), name, what))
    log = [(_at(period, 5, "12:00"), "R8", "delete", True), (_at(period, 1, "09:00"), "R1", "taken", False),
           (_at(period, 2, "10:00"), "", "create", False), (_at(period, -2, "10:00"), "R8", "delete", True),
           (_at(period, 11, "10:00"), "X1", "create", True)]
    for when, who, action, ok in log:
        steps.append((when, len(steps), who, f"log:{action}:{int(ok)}"))
    ids: dict[str, int] = {}
    for when, _, name, what in sorted(steps):
        clock.advance(when - clock.now())
        if what == "create":
            ids[name] = (await _create_request(name, period, settings)).id
        elif what.startswith("log:"):
            _, action, ok = what.split(":")
            await record_change(None, when, action=action, address=f"{name.lower() or 'x'}.log@sis.example.edu.vn",
                                backend="local", request_id=ids.get(name), ok=ok == "1",
                                answer="deleted" if ok == "1" else "refused", executed_by="system (local)")
        elif what == "provisioned":
            request = await Request.get(id=ids[name])
            (row,) = await Job.filter(kind=JobKind.PROVISION.value, key=f"provision:{request.id}:{request.version}")
            await job(row)
            await Job.filter(id=row.id).update(state="done", finished_at=when)
        else:
            actor = TECH if what == "provision" else OFFICE
            reason = "" if what in ("approve", "provision") else f"Lý do {name}"
            await service.act(ids[name], what, actor, reason=reason, confirmed=True)
    return _expectations(period, clock_now, ids)


def _expectations(period: Period, now: datetime, ids: dict[str, int]) -> SeedExpectations:
    g = GroupRow
    groups = (
        g("bulk_new_accounts", "student", U2, 1, 1, 0, 1, 0), g("bulk_new_accounts", "student", U1, 1, 1, 0, 0, 1),
        g("delete_accounts", "staff", U3, 1, 1, 0, 1, 0), g("new_account", "staff", U3, 2, 1, 0, 1, 1),
        g("new_account", "student", "", 1, 0, 1, 0, 0), g("new_account", "student", U2, 1, 0, 1, 0, 0),
        g("new_account", "student", U1, 5, 3, 1, 2, 2), g("password_reset", "staff", U3, 1, 0, 1, 0, 0),
        g("password_reset", "student", U2, 2, 2, 0, 2, 0), g("password_reset", "student", U1, 2, 1, 0, 1, 1),
        g("question", "student", "", 1, 0, 1, 0, 0))
    groups = tuple(sorted(groups, key=lambda x: (x.kind, x.population, x.unit)))
    overdue = ("R11", "R13", "R15", "R17")  # deadlines d6 12:00, d7 08:00, d8 11:00, d10 23:30
    day = {0: (3, 3), 1: (2, 1), 2: (2, 3), 3: (2, 2), 4: (2, 2), 5: (2, 0), 6: (2, 2), 7: (1, 0), 8: (1, 0),
           9: (1, 1)}
    return SeedExpectations(
        period=period, now=now, ids=ids, groups=groups,
        totals=GroupRow("", "", "", received=18, approved=10, rejected=5, done=8, open=5),
        received_by_kind={"new_account": 9, "password_reset": 5, "bulk_new_accounts": 2, "delete_accounts": 1,
                          "question": 1},
        steps={
            "office": StepExpectation(15, 13, 3.0, ("R9", "R2", "R7", "R16", "R8", "R5", "R3", "R6", "R11", "R1")),
            "technical": StepExpectation(8, 7, 2.0, ("R3", "R2", "R7", "R8", "R16", "R1", "R4", "R5")),
            "total": StepExpectation(8, 7, 10.0, ("R2", "R3", "R7", "R16", "R8", "R5", "R1", "R4")),
        },
        accounts=AccountCounts(created=6, reset=4, suspended=1, deleted=1, failed=2),
        problems=(("missing_mobile", 3), ("not_in_registry", 2), ("free_mail_official", 1), ("invalid_date", 1),
                  ("name_diacritics", 1)),
        top_problem="missing_mobile",
        overdue=overdue, overdue_ids=tuple(ids[n] for n in overdue),
        days=tuple(DayCount(period.start + timedelta(days=i), *day[i]) for i in range(10)),
        unit=U1,
        unit_groups=(g("bulk_new_accounts", "student", U1, 1, 1, 0, 0, 1),
                     g("new_account", "student", U1, 5, 3, 1, 2, 2), g("password_reset", "student", U1, 2, 1, 0, 1, 1)),
        unit_accounts=AccountCounts(created=2, reset=2, suspended=0, deleted=0, failed=1),
        unit_problems=(("missing_mobile", 1), ("name_diacritics", 1), ("not_in_registry", 1)),
        unit_overdue_ids=(ids["R11"], ids["R15"], ids["R17"]),
        unit_days_received=(3, 1, 0, 0, 0, 2, 0, 1, 0, 1),
    )


def local_day(period: Period, day: int) -> date:
    """Day `day` of the seeded period (0 = its first day)."""
    return period.start + timedelta(days=day)
