"""Who may do what with records, decided once for every surface (web console, Telegram, Zalo and text
commands, the command line): whose turns these are, who follows the progress and reminds, who may see a
class's list or report an error in it. `RecordService` raises `core.errors.NotAllowed` (audited) when a rule
says no; the surfaces only translate the answer."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from edudesk.core.people.staff import Actor, Role
from edudesk.core.signing.models import RecordState, SchoolClass, SignatureStep, StepState, Teacher

SIGNING_ROLES = (Role.TEACHER, Role.LEADER)  # who signs records (and so has turns)
PROGRESS_ROLES = (Role.LEADER, Role.HEAD)  # who follows the signing progress and reminds teachers (admin too)


def may_sign(actor: Actor) -> bool:
    """Whether the actor holds a signing role (a teacher, the leadership; admin holds every role)."""
    return actor.staff_id is not None and actor.has(*SIGNING_ROLES)


def may_follow_progress(actor: Actor) -> bool:
    """Whether the actor sees who is blocking and may remind everyone (the vice principal's one tap)."""
    return actor.has(*PROGRESS_ROLES)


async def signer_for(actor: Actor) -> Teacher | None:
    """The teacher the actor is, when they hold a signing role; None otherwise (no turns to show)."""
    if not may_sign(actor):
        return None
    return await Teacher.get_or_none(staff_id=actor.staff_id)


@dataclass(frozen=True)
class Turn:
    """The actor's signatures still to make in one class and stage."""

    klass: SchoolClass
    stage: int
    open: int  # their turn now, not being signed
    in_session: int  # their turn, being signed now (a Ký ngay at work, or a remote one awaiting the phone)
    waiting: int  # not their turn yet: an earlier stage is missing
    deadline: datetime | None  # the earliest deadline of the open ones

    @property
    def to_sign(self) -> int:
        """Open steps, whether a session holds them or not."""
        return self.open + self.in_session


async def my_turns(actor: Actor, *, waiting: bool = False) -> list[Turn]:
    """The actor's turns per class and stage (by class name, then stage): "my turns" on every surface.

    Without `waiting` only the classes and stages with an open step are listed; with it, those where the
    teacher still waits for an earlier stage are listed too (the console's table)."""
    teacher = await signer_for(actor)
    if teacher is None:
        return []
    states = [StepState.OPEN, StepState.WAITING] if waiting else [StepState.OPEN]
    rows = await SignatureStep.filter(teacher_id=teacher.id, state__in=states,
                                      record__state=RecordState.SIGNING).values(
        "record__klass_id", "stage", "state", "deadline", "session_id")
    groups: dict[tuple[int, int], list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        groups[(int(row["record__klass_id"]), int(row["stage"]))].append(row)
    classes = {k.id: k for k in await SchoolClass.filter(id__in=[c for c, _ in groups] or [0])}
    turns = []
    for (class_id, stage), items in groups.items():
        open_ = [s for s in items if s["state"] == StepState.OPEN]
        deadlines = [d for s in open_ if isinstance(d := s["deadline"], datetime)]
        turns.append(Turn(classes[class_id], stage, open=sum(1 for s in open_ if s["session_id"] is None),
                          in_session=sum(1 for s in open_ if s["session_id"] is not None),
                          waiting=len(items) - len(open_), deadline=min(deadlines) if deadlines else None))
    return sorted(turns, key=lambda t: (t.klass.name, t.stage))


async def open_turn_count(actor: Actor) -> int:
    """How many records wait for the actor's signature (the console's badge)."""
    teacher = await signer_for(actor)
    if teacher is None:
        return 0
    return await SignatureStep.filter(teacher_id=teacher.id, state=StepState.OPEN,
                                      record__state=RecordState.SIGNING).count()
