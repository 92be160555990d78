"""The signing order of one record, as pure functions: which stage is open, who may sign now, what a
signature or a cancellation changes. Inside a stage, a step's `turn` orders it after the steps of lower turns
(the principal after the vice principals, `[records] leadership_order`). No database, no await: the service
persists what these decide."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from edudesk.core.errors import EdudeskError
from edudesk.core.signing.models import StepState as Turn
from edudesk.core.signing.spec import STAGE_LABELS, Stage

DONE = 5  # the stage number of a record whose every signature is there


class OutOfOrder(EdudeskError):
    """A signature asked for before its stage is open (or after it was made)."""

    code = "sign_out_of_order"


@dataclass(frozen=True)
class StepState:
    """What the order needs to know of one signature step."""

    id: int
    stage: int
    state: str  # a `core.signing.models.StepState` value
    teacher_id: int | None = None
    turn: int = 0  # within its stage: opens once every step of a lower turn is signed


@dataclass(frozen=True)
class Advance:
    """What signing some steps changes: steps that open now, the record's new stage, whether it is complete."""

    opened: tuple[int, ...]
    stage: int
    complete: bool


def open_stage(steps: Sequence[StepState]) -> int:
    """The lowest stage with a signature missing (DONE when none is)."""
    missing = [s.stage for s in steps if s.state != Turn.SIGNED]
    return min(missing) if missing else DONE


def open_turn(steps: Sequence[StepState], stage: int) -> int:
    """The lowest turn of that stage with a signature missing (0 when none is)."""
    return min((s.turn for s in steps if s.stage == stage and s.state != Turn.SIGNED), default=0)


def check_may_sign(steps: Sequence[StepState], step_id: int) -> None:
    """Raise OutOfOrder unless that step belongs to the open stage (and turn) and is not signed yet."""
    step = next((s for s in steps if s.id == step_id), None)
    if step is None:
        raise OutOfOrder("Không có chữ ký này trong học bạ.")
    if step.state == Turn.SIGNED:
        raise OutOfOrder("Chữ ký này đã có rồi.")
    current = open_stage(steps)
    if step.stage != current:
        raise OutOfOrder(f"Chưa đến lượt ký ({STAGE_LABELS[Stage(step.stage)]}): học bạ còn chờ "
                         f"{STAGE_LABELS[Stage(current)]}.")
    if step.turn != open_turn(steps, current):
        raise OutOfOrder(f"Chưa đến lượt ký ({STAGE_LABELS[Stage(step.stage)]}): hiệu trưởng ký sau cùng, khi các "
                         f"thành viên khác của ban giám hiệu đã ký.")


def first_turns(steps: Sequence[StepState]) -> Advance:
    """A record just made (or re-made after a cancellation): the steps of the first stage open."""
    return after_signing(steps, ())


def after_signing(steps: Sequence[StepState], signed: Sequence[int]) -> Advance:
    """The record after `signed` steps got their signatures: the next stage opens once this one is full."""
    done = set(signed)
    now = [replace(s, state=Turn.SIGNED) if s.id in done else s for s in steps]
    stage = open_stage(now)
    turn = open_turn(now, stage)
    opened = tuple(s.id for s in now if s.stage == stage and s.turn == turn and s.state == Turn.WAITING)
    return Advance(opened, stage, stage == DONE)


