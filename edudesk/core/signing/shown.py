"""Looking before signing: the records a teacher's Ký ngay would sign, each with the version the page showed
(the PDF the teacher could open), and the check that refuses a Ký ngay when any of them changed since (another
signer's signature, a remade record) or the set itself changed. Who may open a record's PDF."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from edudesk.core.errors import EdudeskError, NotAllowed, NotFound
from edudesk.core.models import AuditEvent
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import Clock
from edudesk.core.signing.models import RecordState, SchoolRecord, SignatureStep, StepState
from edudesk.core.signing.usecases import signer_for

MAX_SHOWN = 2000  # far above a class; a form naming more is not ours


class RecordsChanged(EdudeskError):
    """A Ký ngay whose records are not, or not all in the version, the page showed."""

    code = "records_changed"


@dataclass(frozen=True)
class Shown:
    """One record a Ký ngay covers, in the version the page shows."""

    record_id: int
    version: int
    student_code: str
    student_name: str


async def signable(teacher_id: int, class_id: int, stage: int) -> list[Shown]:
    """The records Ký ngay would sign now for that teacher, class and stage (the steps `start_signing` takes)."""
    rows = await SignatureStep.filter(
        teacher_id=teacher_id, record__klass_id=class_id, stage=stage, state=StepState.OPEN,
        record__state=RecordState.SIGNING, session_id__isnull=True,
    ).order_by("record__student_code").values("record_id", "record__version", "record__student_code",
                                              "record__student_name")
    return [Shown(r["record_id"], r["record__version"], r["record__student_code"], r["record__student_name"])
            for r in rows]


def parse_shown(values: Iterable[str]) -> dict[int, int]:
    """The form's "record id:version" pairs; ValueError for anything else."""
    shown: dict[int, int] = {}
    for value in values:
        record_id, _, version = str(value).partition(":")
        if not (record_id.isdecimal() and version.isdecimal()) or len(shown) >= MAX_SHOWN:
            raise ValueError("not a record:version pair")
        shown[int(record_id)] = int(version)
    return shown


async def changed_since(steps: Iterable[SignatureStep], shown: Mapping[int, int]) -> list[str]:
    """The student codes of the records that differ from what the page showed: another version, or a record
    the page did not show, or one it showed that Ký ngay would no longer sign. Empty when all is the same."""
    now = dict(await SchoolRecord.filter(id__in=[s.record_id for s in steps] or [0]).values_list("id", "version"))
    differ = sorted(r for r in set(now) | set(shown) if now.get(r) != shown.get(r))
    if not differ:
        return []
    codes = dict(await SchoolRecord.filter(id__in=differ).values_list("id", "student_code"))
    return [str(codes.get(r, f"#{r}")) for r in differ]


def changed_text(codes: list[str]) -> str:
    """The refusal a teacher reads, naming the records that changed."""
    named = ", ".join(codes[:10]) + (f" và {len(codes) - 10} học bạ khác" if len(codes) > 10 else "")
    return (f"Chưa ký: học bạ đã thay đổi từ khi Thầy/Cô mở trang (có người vừa ký, học bạ được làm lại, hoặc "
            f"có học bạ mới đến lượt): {named}. Thầy/Cô hãy tải lại trang, xem lại rồi bấm «Ký ngay» lần nữa.")


async def record_to_view(actor: Actor, record_id: int, clock: Clock) -> SchoolRecord:
    """A record whose PDF the actor may open: a teacher with a signature on it, the leadership, an admin; an
    audited NotFound or NotAllowed otherwise."""
    record = await SchoolRecord.get_or_none(id=record_id)
    teacher = await signer_for(actor)
    mine = record is not None and teacher is not None and await SignatureStep.filter(
        record_id=record_id, teacher_id=teacher.id).exists()
    if record is not None and (mine or actor.has(Role.LEADER)):
        return record
    error: EdudeskError = NotFound("Không có học bạ này.") if record is None else NotAllowed(
        "Thầy/Cô chỉ mở được học bạ mà mình ký.")
    await AuditEvent.create(at=clock.now(), actor=actor.label, action="records_refused",
                            detail={"action": "rec_pdf", "reason": error.code, "record": record_id})
    raise error
