"""The signing order of one record as pure functions: subject teachers (in parallel) -> homeroom ->
leadership -> the issuing signature; nothing signs out of turn, nothing signs twice."""

from __future__ import annotations

import itertools

import pytest

from edudesk.core.errors import EdudeskError
from edudesk.core.signing.models import StepState as Turn
from edudesk.core.signing.spec import Stage
from edudesk.core.signing.stages import (
    DONE,
    OutOfOrder,
    StepState,
    after_signing,
    check_may_sign,
    first_turns,
    open_stage,
)

# Three subject teachers, the homeroom teacher, two of the leadership, the school's issuing signature.
RECORD = (StepState(1, Stage.SUBJECT, Turn.WAITING, 11), StepState(2, Stage.SUBJECT, Turn.WAITING, 12),
          StepState(3, Stage.SUBJECT, Turn.WAITING, 13), StepState(4, Stage.HOMEROOM, Turn.WAITING, 14),
          StepState(5, Stage.LEADERSHIP, Turn.WAITING, 15), StepState(6, Stage.LEADERSHIP, Turn.WAITING, 16),
          StepState(7, Stage.ISSUER, Turn.WAITING, None))


def applied(steps: tuple[StepState, ...], advance_opened: tuple[int, ...], signed: tuple[int, ...] = ()
            ) -> tuple[StepState, ...]:
    """What the service would store: signed steps signed, opened steps open."""
    return tuple(StepState(s.id, s.stage, Turn.SIGNED if s.id in signed else
                           Turn.OPEN if s.id in advance_opened else s.state, s.teacher_id) for s in steps)


def test_a_new_record_opens_every_subject_teacher_at_once_and_nobody_else() -> None:
    first = first_turns(RECORD)
    assert first.opened == (1, 2, 3) and first.stage == Stage.SUBJECT and not first.complete


def test_the_next_stage_opens_only_when_the_last_signature_of_this_one_arrives() -> None:
    steps = applied(RECORD, first_turns(RECORD).opened)
    for signed in ((1,), (1, 3)):
        advance = after_signing(steps, signed)
        assert advance.opened == () and advance.stage == Stage.SUBJECT
    advance = after_signing(steps, (1, 2, 3))
    assert advance.opened == (4,) and advance.stage == Stage.HOMEROOM


def test_out_of_turn_and_twice_are_refused_in_words() -> None:
    steps = applied(RECORD, first_turns(RECORD).opened)
    for step_id in (4, 5, 7):  # homeroom, leadership, issuer before the subject teachers
        with pytest.raises(OutOfOrder) as refused:
            check_may_sign(steps, step_id)
        assert isinstance(refused.value, EdudeskError) and "Chưa đến lượt" in refused.value.message
    check_may_sign(steps, 2)  # in turn: no error
    signed = applied(steps, (), (2,))
    with pytest.raises(OutOfOrder, match="đã có"):
        check_may_sign(signed, 2)
    with pytest.raises(OutOfOrder):
        check_may_sign(steps, 99)


@pytest.mark.parametrize("order", list(itertools.permutations((1, 2, 3))))
def test_whatever_order_the_subject_teachers_sign_in_the_record_ends_complete_after_the_issuer(
        order: tuple[int, ...]) -> None:
    steps = applied(RECORD, first_turns(RECORD).opened)
    for step_id in (*order, 4, 5, 6, 7):
        check_may_sign(steps, step_id)
        advance = after_signing(steps, (step_id,))
        steps = applied(steps, advance.opened, (step_id,))
    assert open_stage(steps) == DONE and advance.complete and advance.stage == DONE


def test_a_record_with_no_steps_is_complete() -> None:
    assert open_stage(()) == DONE and first_turns(()).complete
