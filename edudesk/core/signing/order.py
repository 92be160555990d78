"""Principal last: the order inside the leadership stage (`[records] leadership_order`). With "principal_last"
(seed 004, Điều 3 and 8: the principal approves after everyone else) the vice principals sign in parallel and
the principal's turn opens once they all have; with "parallel" the whole leadership signs at once. The roster
marks the principal ("Chức vụ" = "Hiệu trưởng" on its "Ban giám hiệu" sheet, `ClassSigner.principal`); a class
whose roster names no principal signs in parallel. The turns are set when a record's signing starts (or starts
again after a correction or an adjustment), so a changed setting applies from the next start."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from tortoise.backends.base.client import BaseDBAsyncClient

from edudesk.core.config import Settings
from edudesk.core.signing.models import ClassSigner, SignatureStep
from edudesk.core.signing.spec import Stage

PRINCIPAL_TURN = 1  # the vice principals keep turn 0


def principal_signs_last(settings: Settings) -> bool:
    """Whether the principal's turn waits for the rest of the leadership."""
    return settings.records.leadership_order == "principal_last"


async def principals(conn: BaseDBAsyncClient | None, class_id: int) -> list[int]:
    """The teacher ids the roster marks as the class's principal (one, as a rule)."""
    rows = await ClassSigner.filter(klass_id=class_id, stage=int(Stage.LEADERSHIP), principal=True).using_db(
        conn).values_list("teacher_id", flat=True)
    return cast(list[int], list(rows))


def turn_of(teacher_id: int | None, principal_ids: Sequence[int], settings: Settings) -> int:
    """The turn of a leadership step signed by that teacher."""
    last = principal_signs_last(settings) and teacher_id is not None and teacher_id in principal_ids
    return PRINCIPAL_TURN if last else 0


async def set_leadership_turns(conn: BaseDBAsyncClient, settings: Settings, class_id: int,
                               record_ids: Sequence[int]) -> None:
    """Give the leadership steps of these records (of that class, not signed yet) their turn."""
    if not record_ids:
        return
    steps = SignatureStep.filter(record_id__in=list(record_ids), stage=int(Stage.LEADERSHIP)).exclude(
        state="signed").using_db(conn)
    chiefs = await principals(conn, class_id)
    await steps.update(turn=0)
    if chiefs and principal_signs_last(settings):
        await SignatureStep.filter(record_id__in=list(record_ids), stage=int(Stage.LEADERSHIP),
                                   teacher_id__in=chiefs).exclude(state="signed").using_db(conn).update(
            turn=PRINCIPAL_TURN)
