"""The vice principal's signing progress, as plain data: per class and stage the records done, waiting, overdue
and not yet at that stage, with the stage's deadline; who is blocking (teacher, records, since when); and the
signatures made per day with the share of every required signature done.

Overdue follows the reminders' rule (`reminders.send_sign_reminders` escalates a step once `deadline <= now`):
a step's deadline is set when its turn opens, `[records].stage_days` later (`turns.open_steps`). Who is
blocking follows `reminders.blocking`: open steps of a signer, in records still being signed (the same people
and counts; computed here with grouped queries because `blocking()` loads every open step's record, PDFs
included, and asks per class and signer). Eight queries whatever the size of the school: GROUP BY aggregates,
at most one light row per record and stage, never a PDF. Teachers' names and counts only: no student data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tortoise.expressions import Q
from tortoise.functions import Count, Min

from edudesk.core.errors import NotAllowed
from edudesk.core.people.staff import Actor
from edudesk.core.signing.models import ClassSigner, RecordState, SchoolClass, SignatureStep, StepState, Teacher
from edudesk.core.signing.spec import Stage
from edudesk.core.signing.usecases import may_follow_progress

if TYPE_CHECKING:
    from edudesk.core.signing.service import RecordService

STAGES = tuple(Stage)  # subject teachers, homeroom, leadership, issuing


@dataclass(frozen=True)
class StageRow:
    """One class at one stage: where its records stand there (each record counted once)."""

    class_id: int
    class_name: str
    stage: int
    records: int  # records with a signature at this stage
    done: int  # every signature of the stage is there
    waiting: int  # the stage is open, within its deadline
    overdue: int  # the stage is open and a signature of it is past its deadline
    later: int  # an earlier stage is still missing
    returned: int  # stopped by a Báo sai sót until the admin decides
    signatures: int  # signatures the stage needs, over its records
    signed: int
    deadline: datetime | None  # the earliest deadline of the stage's open signatures

    @property
    def share(self) -> float | None:
        """Signatures done over those needed (0..1); None when the stage needs none."""
        return self.signed / self.signatures if self.signatures else None


@dataclass(frozen=True)
class Blocker:
    """A signer still owing signatures in one class and stage."""

    teacher_id: int
    teacher: str  # the teacher's name
    class_id: int
    class_name: str
    stage: int
    subjects: str  # "Toán, Tin học" for a subject teacher, "" otherwise
    records: int  # records waiting for their signature
    overdue: int  # of them past the deadline
    since: datetime | None  # when the first of those turns opened
    deadline: datetime | None  # the earliest deadline among them


@dataclass(frozen=True)
class DayPoint:
    """One local day: signatures made that day, all made up to its end, and their share of all required."""

    day: date
    signed: int
    cumulative: int
    share: float  # 0..1


@dataclass(frozen=True)
class Progress:
    """The whole dashboard of one school year."""

    year: str
    timezone: str
    generated_at: datetime
    rows: tuple[StageRow, ...]  # by class name, then stage
    blockers: tuple[Blocker, ...]  # by class name, stage, signer position
    days: tuple[DayPoint, ...]  # every day from the first turn opened to today, in order
    required: int  # signatures every record of the year needs, together
    signed: int

    @property
    def share(self) -> float | None:
        """Every signature done over every one required (0..1); None with no records."""
        return self.signed / self.required if self.required else None

    def classes(self) -> list[tuple[int, str]]:
        """The classes shown, (id, name), in order."""
        seen: dict[int, str] = {}
        for row in self.rows:
            seen.setdefault(row.class_id, row.class_name)
        return list(seen.items())

    def stage_totals(self) -> list[StageRow]:
        """Per stage, the classes added up (class id 0, name "")."""
        out = []
        for stage in STAGES:
            rows = [r for r in self.rows if r.stage == stage]
            deadlines = [r.deadline for r in rows if r.deadline is not None]
            counts = {k: sum(getattr(r, k) for r in rows) for k in _COUNTS}
            out.append(_row(0, "", int(stage), counts, min(deadlines) if deadlines else None))
        return out


_COUNTS = ("records", "done", "waiting", "overdue", "later", "returned", "signatures", "signed")


def _row(class_id: int, name: str, stage: int, c: dict[str, int], deadline: datetime | None) -> StageRow:
    return StageRow(class_id, name, stage, records=c["records"], done=c["done"], waiting=c["waiting"],
                    overdue=c["overdue"], later=c["later"], returned=c["returned"], signatures=c["signatures"],
                    signed=c["signed"], deadline=deadline)


def _aware(value: Any) -> datetime | None:
    """A stored moment as an aware UTC datetime (SQLite drivers can hand back naive UTC)."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def school_years() -> list[str]:
    """The school years that have classes, newest first."""
    return sorted(set(await SchoolClass.all().values_list("year", flat=True)), reverse=True)  # type: ignore[arg-type]


async def _per_record(class_ids: list[int], now: datetime) -> list[dict[str, Any]]:
    """One row per (record, stage): its signatures, signed, open and late ones, the earliest open deadline."""
    return await SignatureStep.filter(record__klass_id__in=class_ids).annotate(
        total=Count("id"), done=Count("id", _filter=Q(state=StepState.SIGNED)),
        open=Count("id", _filter=Q(state=StepState.OPEN)),
        late=Count("id", _filter=Q(state=StepState.OPEN, deadline__lte=now)),
        first_deadline=Min("deadline", _filter=Q(state=StepState.OPEN)),
    ).group_by("record__klass_id", "record__state", "record_id", "stage").values(
        "record__klass_id", "record__state", "stage", "total", "done", "open", "late", "first_deadline")


def _stage_rows(per_record: list[dict[str, Any]], classes: dict[int, str]) -> list[StageRow]:
    counts: dict[tuple[int, int], dict[str, int]] = defaultdict(lambda: dict.fromkeys(_COUNTS, 0))
    deadlines: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    for row in per_record:
        key = (int(row["record__klass_id"]), int(row["stage"]))
        c = counts[key]
        total, done = int(row["total"]), int(row["done"])
        c["records"] += 1
        c["signatures"] += total
        c["signed"] += done
        if done == total:
            c["done"] += 1
        elif row["record__state"] == RecordState.RETURNED:
            c["returned"] += 1
        elif int(row["open"]):
            c["overdue" if int(row["late"]) else "waiting"] += 1
            if (deadline := _aware(row["first_deadline"])) is not None:
                deadlines[key].append(deadline)
        else:
            c["later"] += 1
    rows = []
    for class_id, name in classes.items():
        for stage in STAGES:
            key = (class_id, int(stage))
            if key not in counts:
                continue  # a class whose records have no signature at this stage
            found = deadlines.get(key)
            rows.append(_row(class_id, name, int(stage), counts[key], min(found) if found else None))
    return rows


async def _blockers(class_ids: list[int], classes: dict[int, str], now: datetime) -> list[Blocker]:
    """Who owes signatures, per class and stage: `reminders.blocking`'s rule, in three grouped queries."""
    groups = await SignatureStep.filter(
        state=StepState.OPEN, teacher_id__isnull=False, record__state=RecordState.SIGNING,
        record__klass_id__in=class_ids,
    ).annotate(n=Count("id"), late=Count("id", _filter=Q(deadline__lte=now)), since=Min("opened_at"),
               first_deadline=Min("deadline")).group_by("teacher_id", "record__klass_id", "stage").values(
        "teacher_id", "record__klass_id", "stage", "n", "late", "since", "first_deadline")
    teacher_ids = sorted({int(g["teacher_id"]) for g in groups})
    names = dict(await Teacher.filter(id__in=teacher_ids or [0]).values_list("id", "name"))
    signers = {(s["klass_id"], s["teacher_id"], s["stage"]): s for s in await ClassSigner.filter(
        klass_id__in=class_ids or [0], teacher_id__in=teacher_ids or [0]).values(
        "klass_id", "teacher_id", "stage", "subjects", "position")}
    out = []
    for g in groups:
        class_id, teacher_id, stage = int(g["record__klass_id"]), int(g["teacher_id"]), int(g["stage"])
        signer = signers.get((class_id, teacher_id, stage)) or {}
        out.append((signer.get("position", 0), Blocker(
            teacher_id, str(names.get(teacher_id, "")), class_id, classes[class_id], stage,
            ", ".join(signer.get("subjects") or []), int(g["n"]), int(g["late"]), _aware(g["since"]),
            _aware(g["first_deadline"]))))
    order = {cid: n for n, cid in enumerate(classes)}
    out.sort(key=lambda p: (order[p[1].class_id], p[1].stage, p[0], p[1].teacher))
    return [b for _, b in out]


async def _days(class_ids: list[int], required: int, now: datetime, timezone: str) -> list[DayPoint]:
    """Signatures per local day from the first turn opened to today (grouped by the moment they were made)."""
    zone = ZoneInfo(timezone)
    start = _aware(await SignatureStep.filter(record__klass_id__in=class_ids, opened_at__isnull=False).order_by(
        "opened_at").first().values_list("opened_at", flat=True))
    if start is None:
        return []
    per_day: dict[date, int] = defaultdict(int)
    for at, n in await SignatureStep.filter(record__klass_id__in=class_ids, state=StepState.SIGNED,
                                            signed_at__isnull=False).annotate(n=Count("id")).group_by(
            "signed_at").values_list("signed_at", "n"):
        moment = _aware(at)
        if moment is not None:
            per_day[moment.astimezone(zone).date()] += int(n)
    day, last = start.astimezone(zone).date(), max([now.astimezone(zone).date(), *per_day])
    day = min([day, *per_day])
    out, total = [], 0
    while day <= last:
        total += per_day.get(day, 0)
        out.append(DayPoint(day, per_day.get(day, 0), total, total / required if required else 0.0))
        day += timedelta(days=1)
    return out


async def signing_progress(now: datetime, timezone: str, year: str = "") -> Progress:
    """The progress of a school year's classes ("" = the newest year with classes) at `now`."""
    if not year:
        years = await school_years()
        year = years[0] if years else ""
    classes: dict[int, str] = dict(await SchoolClass.filter(year=year).order_by("name").values_list("id", "name"))
    class_ids = list(classes) or [0]
    rows = _stage_rows(await _per_record(class_ids, now), classes)
    required, signed = sum(r.signatures for r in rows), sum(r.signed for r in rows)
    return Progress(year, timezone, now, tuple(rows), tuple(await _blockers(class_ids, classes, now)),
                    tuple(await _days(class_ids, required, now, timezone)), required, signed)


async def follow_progress(records: RecordService, actor: Actor, year: str = "") -> Progress:
    """The dashboard for the leadership (and admins): anyone else is refused, and the refusal audited."""
    if not may_follow_progress(actor):
        raise await records.refuse(actor, "rec_progress", NotAllowed("Chỉ ban giám hiệu xem tiến độ ký học bạ."))
    return await signing_progress(records.clock.now(), records.settings.general.timezone, year)
