"""Withdrawal (thu hồi, seed 003 §6) and adjustment (điều chỉnh, seed 004 Điều 9) of an issued record: the only
changes of a signed record, each with a reason and minutes (biên bản) the leadership signs.

The minutes are a record-like row, so that turns, "sign now" notices, Ký ngay (with the PIN, or a remote
signer), reminders, progress and verification are the records' own: a `SchoolRecord` in the class's minutes
book (a `SchoolClass` of state `minutes`, "10A1 · biên bản", with the class's leadership as its signers) whose
only steps are the leadership's, principal last. A book is never confirmed, exported or sent. When the last
signature of the minutes is saved, `minutes_signed` (from `complete.record_completed`, in the same transaction)
makes the change: a withdrawal archives the issued revision and marks the record withdrawn; an adjustment
archives it and puts the corrected PDF through the whole signing order (revisions.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from html import escape as esc

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.errors import EdudeskError, NotAllowed, NotFound
from edudesk.core.jobs import JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.staff import Actor, Role, staff_holding
from edudesk.core.signing import stages
from edudesk.core.signing.correction import check_corrected
from edudesk.core.signing.importer import field_code
from edudesk.core.signing.lifemodels import ChangeKind, ChangeState, RecordChange, RevisionKind
from edudesk.core.signing.minutes import MinutesContent, Signer, minutes_pdf
from edudesk.core.signing.models import (
    ClassSigner,
    ClassState,
    RecordState,
    SchoolClass,
    SchoolRecord,
    SignatureStep,
    Teacher,
)
from edudesk.core.signing.order import principal_signs_last, principals, turn_of
from edudesk.core.signing.pdfs import RecordPdfError
from edudesk.core.signing.portalnotice import note_change
from edudesk.core.signing.recordtext import school_name
from edudesk.core.signing.revisions import archive, restart
from edudesk.core.signing.service import RecordService
from edudesk.core.signing.spec import STAGE_LABELS, Stage, field_name
from edudesk.core.signing.turns import open_steps
from edudesk.core.text import printable

BOOK = " · biên bản"
SERIES = {ChangeKind.WITHDRAWAL: "BB-THHB", ChangeKind.ADJUSTMENT: "BB-ĐCHB"}
NAMES = {ChangeKind.WITHDRAWAL: "thu hồi", ChangeKind.ADJUSTMENT: "điều chỉnh"}


@dataclass(frozen=True)
class _At:
    """The moment the minutes' last signature was saved: the clock of what follows in that transaction."""

    moment: datetime

    def now(self) -> datetime:
        """That moment."""
        return self.moment


def book_name(class_name: str) -> str:
    """The name of a class's minutes book: "10A1 · biên bản"."""
    return (class_name[:32 - len(BOOK)] + BOOK)


async def _book(conn: BaseDBAsyncClient, klass: SchoolClass, leaders: list[ClassSigner], now: datetime) -> SchoolClass:
    """The class's minutes book (made at its first minutes), with the class's leadership as its signers."""
    book, _ = await SchoolClass.get_or_create(year=klass.year, name=book_name(klass.name), using_db=conn,
                                              defaults={"school": klass.school, "state": ClassState.MINUTES,
                                                        "created_at": now})
    if book.state != ClassState.MINUTES:
        raise EdudeskError(f"Đã có một lớp tên «{book.name}»: không lập được sổ biên bản của lớp {klass.name}.",
                           code="minutes_book")
    await ClassSigner.bulk_create([ClassSigner(klass_id=book.id, teacher_id=s.teacher_id, stage=s.stage,
                                               position=s.position, principal=s.principal) for s in leaders],
                                  ignore_conflicts=True, using_db=conn)
    return book


async def _checked(records: RecordService, actor: Actor, record_id: int, kind: ChangeKind, reason: str,
                   pdf: bytes | None) -> tuple[SchoolRecord, SchoolClass, list[ClassSigner], bytes | None]:
    """The record, its class, leadership and the corrected PDF ready to sign, or an audited refusal."""
    action = f"rec_{kind.value}"
    if not actor.has(Role.ADMIN):
        raise await records.refuse(actor, action, NotAllowed(f"Chỉ quản trị viên lập {NAMES[kind]} học bạ."),
                                   record=record_id)
    record = await SchoolRecord.get_or_none(id=record_id)
    klass = await SchoolClass.get_or_none(id=record.klass_id) if record is not None else None
    if record is None or klass is None or klass.state == ClassState.MINUTES:
        raise await records.refuse(actor, action, NotFound("Không có học bạ này."), record=record_id)
    if not reason:
        raise await records.refuse(actor, action, EdudeskError(f"Hãy ghi rõ lý do {NAMES[kind]}.",
                                                                code="reason_missing"), record=record_id)
    if record.state != RecordState.SIGNED:
        raise await records.refuse(actor, action, EdudeskError(
            "Chỉ thu hồi hoặc điều chỉnh được học bạ đã ký đủ và đã ký phát hành.", code="record_not_issued"),
            record=record_id)
    if await RecordChange.filter(record_id=record_id, state=ChangeState.MINUTES).exists():
        raise await records.refuse(actor, action, EdudeskError(
            "Học bạ này đang có một biên bản chờ Ban giám hiệu ký.", code="change_open"), record=record_id)
    leaders = await ClassSigner.filter(klass_id=klass.id, stage=int(Stage.LEADERSHIP)).order_by("position")
    if not leaders:
        raise await records.refuse(actor, action, EdudeskError(
            f"Lớp {klass.name} chưa có ban giám hiệu để ký biên bản.", code="no_leadership"), record=record_id)
    prepared = None
    if kind == ChangeKind.ADJUSTMENT:
        try:
            if not pdf:
                raise RecordPdfError("Điều chỉnh cần tệp học bạ đã sửa (PDF).", code="pdf_missing")
            prepared = await check_corrected(record, pdf)
        except RecordPdfError as exc:
            raise await records.refuse(actor, action, exc, record=record_id) from None
    return record, klass, leaders, prepared


async def start_change(records: RecordService, actor: Actor, record_id: int, kind: ChangeKind, reason: str,
                       pdf: bytes | None = None) -> RecordChange:
    """Thu hồi or điều chỉnh of an issued record: the minutes are made and the leadership's turns open (vice
    principals first, the principal last); nothing changes in the record until they are signed."""
    reason = printable(reason, 1000).strip()
    record, klass, leaders, prepared = await _checked(records, actor, record_id, kind, reason, pdf)
    settings, now = records.settings, records.clock.now()
    names = dict(await Teacher.filter(id__in=[s.teacher_id for s in leaders]).values_list("id", "name"))
    codes = dict(await Teacher.filter(id__in=[s.teacher_id for s in leaders]).values_list("id", "code"))
    async with in_transaction() as conn:
        await lock_for_transaction(conn, f"edudesk:minutes:{klass.year}")
        n = await RecordChange.filter(kind=kind, record__klass__year=klass.year).using_db(conn).count() + 1
        number = f"{n:02d}/{klass.year}/{SERIES[kind]}"
        signers = [Signer(field_name(Stage.LEADERSHIP, field_code(codes[s.teacher_id])),
                          f"{'Hiệu trưởng' if s.principal else STAGE_LABELS[Stage.LEADERSHIP]} — {names[s.teacher_id]}")
                   for s in leaders]
        content = MinutesContent(kind.value, klass.school or school_name(settings), number, now,
                                 settings.records.place, settings.general.timezone, record.student_code,
                                 record.student_name, klass.name, klass.year, record.revision,
                                 hashlib.sha256(bytes(record.pdf)).hexdigest(), reason, actor.name or actor.label,
                                 hashlib.sha256(pdf or b"").hexdigest() if prepared else "",
                                 principal_signs_last(settings) and any(s.principal for s in leaders))
        plain, with_fields = minutes_pdf(content, signers)
        book = await _book(conn, klass, leaders, now)
        kind_code = "TH" if kind == ChangeKind.WITHDRAWAL else "DC"
        minutes = await SchoolRecord.create(
            klass_id=book.id, student_code=f"BB{n:02d}{kind_code}-{record.student_code}"[:40],
            student_name=f"Biên bản {NAMES[kind]} — {record.student_name}"[:200], stage=int(Stage.LEADERSHIP),
            original=plain, pdf=with_fields, updated_at=now, using_db=conn)
        chiefs = await principals(conn, klass.id)
        steps = [await SignatureStep.create(record_id=minutes.id, stage=int(Stage.LEADERSHIP), field=signer.field,
                                            teacher_id=s.teacher_id, turn=turn_of(s.teacher_id, chiefs, settings),
                                            using_db=conn) for s, signer in zip(leaders, signers, strict=True)]
        change = await RecordChange.create(record_id=record.id, kind=kind, number=number, reason=reason,
                                           minutes_id=minutes.id, pdf=pdf if prepared else None, prepared=prepared,
                                           actor=actor.label, created_at=now, using_db=conn)
        advance = stages.first_turns([stages.StepState(s.id, s.stage, s.state, s.teacher_id, s.turn) for s in steps])
        await open_steps(conn, records.queue, settings, records.clock, book.id, advance.opened)
        await AuditEvent.create(at=now, actor=actor.label, action="record_change_started", using_db=conn,
                                detail={"record": record.id, "student": record.student_code, "kind": kind.value,
                                        "number": number, "reason": reason, "change": change.id})
    records.queue.wake()
    return change


async def minutes_signed(conn: BaseDBAsyncClient, queue: JobQueue, settings: Settings, class_id: int) -> bool:
    """After a record's last signature: when it is minutes (the class is a minutes book), make the changes whose
    minutes are now fully signed. False for an ordinary class (the caller goes on)."""
    if not await SchoolClass.filter(id=class_id, state=ClassState.MINUTES).using_db(conn).exists():
        return False
    for change in await RecordChange.filter(state=ChangeState.MINUTES, minutes__klass_id=class_id,
                                            minutes__state=RecordState.SIGNED).using_db(conn):
        minutes = await SchoolRecord.filter(id=change.minutes_id).using_db(conn).get()
        clock = _At(minutes.updated_at)
        if not await RecordChange.filter(id=change.id, state=ChangeState.MINUTES).using_db(conn).update(
                state=ChangeState.DONE, done_at=clock.now()):
            continue
        await _make(conn, queue, settings, clock, change)
    return True


async def _make(conn: BaseDBAsyncClient, queue: JobQueue, settings: Settings, clock: _At,
                change: RecordChange) -> None:
    """The change the signed minutes decided: the issued revision archived; withdrawn, or signed again."""
    record = await SchoolRecord.filter(id=change.record_id).using_db(conn).get()
    klass = await SchoolClass.filter(id=record.klass_id).using_db(conn).get()
    now = clock.now()
    kind = ChangeKind(change.kind)
    revision = RevisionKind.WITHDRAWAL if kind == ChangeKind.WITHDRAWAL else RevisionKind.ADJUSTMENT
    await archive(conn, record, revision, actor=change.actor, at=now, reason=change.reason, change_id=change.id)
    reopened = False
    if kind == ChangeKind.WITHDRAWAL:
        await SchoolRecord.filter(id=record.id, version=record.version).using_db(conn).update(
            state=RecordState.WITHDRAWN, version=record.version + 1, updated_at=now)
        text = (f"<b>Học bạ đã được thu hồi</b> — {esc(record.student_name)} ({esc(record.student_code)}), lớp "
                f"{esc(klass.name)} ({esc(klass.year)}): Ban giám hiệu đã ký biên bản số {esc(change.number)}. "
                f"Học bạ chỉ còn được lưu giữ làm hồ sơ.")
    else:
        reopened = await restart(conn, settings, clock, queue, record, prepared=bytes(change.prepared or b""),
                                 exported=bytes(change.pdf or b""), from_state=RecordState.SIGNED)
        text = (f"<b>Học bạ được điều chỉnh</b> — {esc(record.student_name)} ({esc(record.student_code)}), lớp "
                f"{esc(klass.name)} ({esc(klass.year)}): Ban giám hiệu đã ký biên bản số {esc(change.number)}; "
                f"bản đã sửa được ký lại từ đầu theo đúng thứ tự.")
    await note_change(conn, queue, settings, change, record, now)  # the portal is told if it holds the record
    await AuditEvent.create(at=now, actor=change.actor, using_db=conn,
                            action="record_withdrawn" if kind == ChangeKind.WITHDRAWAL else "record_adjusted",
                            detail={"record": record.id, "student": record.student_code, "number": change.number,
                                    "change": change.id, "revision": record.revision, "class_reopened": reopened})
    await enqueue_notice(conn, queue, f"change:{change.id}:head", "head", text)
    for admin in await staff_holding(Role.ADMIN, settings, conn):
        await enqueue_notice(conn, queue, f"change:{change.id}:{admin.id}", f"staff:{admin.id}", text)
