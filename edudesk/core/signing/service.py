"""Record use cases for every surface (Telegram, web console, CLI): start signing (Ký ngay), return a record
with a reason (Báo sai sót) and decide the return, register and decide signing credentials, confirm a class.
Each refuses with an audited `EdudeskError` the person can read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from html import escape as esc
from typing import TYPE_CHECKING, Any

from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.errors import EdudeskError, NotAllowed, NotFound
from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import Clock
from edudesk.core.signing import stages
from edudesk.core.signing.models import (
    ClassSigner,
    ClassState,
    CredentialState,
    RecordReturn,
    RecordState,
    ReturnState,
    SchoolClass,
    SchoolRecord,
    SignatureStep,
    SignerCredential,
    SignSession,
    StepState,
    Teacher,
)
from edudesk.core.signing.order import set_leadership_turns
from edudesk.core.signing.pin import PinRequired, needs_pin
from edudesk.core.signing.reminders import Blocking, blocking, remind_pending
from edudesk.core.signing.shown import RecordsChanged, changed_since, changed_text
from edudesk.core.signing.turns import open_steps, sign_page
from edudesk.core.signing.usecases import SIGNING_ROLES, may_follow_progress, signer_for
from edudesk.core.text import printable

if TYPE_CHECKING:
    from edudesk.core.signing.credentials import CredentialDesk


class RecordsOff(EdudeskError):
    """The records feature is not fully set up in this process (no credential desk)."""

    code = "records_off"


def step_states(steps: list[SignatureStep]) -> list[stages.StepState]:
    """The pure view of a record's steps."""
    return [stages.StepState(s.id, s.stage, s.state, s.teacher_id, s.turn) for s in steps]


class RecordService:
    """The signing workflow's use cases."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.credentials: CredentialDesk | None = None  # set by the composition root (needs the secret box)

    async def refuse(self, actor: Actor, action: str, error: EdudeskError, **detail: Any) -> EdudeskError:
        """Audit a refused records action and hand back the error to raise."""
        await AuditEvent.create(at=self.clock.now(), actor=actor.label, action="records_refused",
                                detail={"action": action, "reason": error.code, **detail})
        return error

    async def teacher_of(self, actor: Actor, action: str) -> Teacher:
        """The teacher the actor is (their staff identity), or an audited refusal."""
        teacher = await signer_for(actor)
        if teacher is None:
            raise await self.refuse(actor, action, NotAllowed(
                "Anh/Chị không có trong danh sách giáo viên ký học bạ (cần vai trò giáo viên hoặc ban giám hiệu)."))
        return teacher

    async def start_class(self, class_id: int) -> int:
        """Open the first stage of every record of a class not started yet; returns the steps opened.

        All records open in ONE transaction with their notice jobs: a notice can never run (and count) while
        the class is half opened, whatever the load (it once counted 37 of 40 records)."""
        opened: list[int] = []
        async with in_transaction() as conn:
            await lock_for_transaction(conn, f"edudesk:startclass:{class_id}")
            records = await SchoolRecord.filter(klass_id=class_id, state=RecordState.SIGNING,
                                                signatures=0).using_db(conn)
            by_record: dict[int, list[SignatureStep]] = {r.id: [] for r in records}
            await set_leadership_turns(conn, self.settings, class_id, list(by_record))  # principal last
            for step in await SignatureStep.filter(record_id__in=list(by_record) or [0]).using_db(conn):
                by_record[step.record_id].append(step)
            for steps in by_record.values():
                if steps and all(s.state == StepState.WAITING for s in steps):
                    opened += stages.first_turns(step_states(steps)).opened
            await open_steps(conn, self.queue, self.settings, self.clock, class_id, opened)
        self.queue.wake()
        return len(opened)

    async def start_signing(self, actor: Actor, class_id: int, stage: int, *, pin: str | None = None,
                            shown: Mapping[int, int] | None = None) -> SignSession:
        """Ký ngay: one session signs all of the teacher's open steps of that class and stage.

        A key the server holds (PKCS#12) signs only with its teacher's PIN, typed in the web console: without
        one (a chat tap, an action link) this raises PinRequired saying where to sign. A remote signer (SmartCA,
        CSC) needs no PIN here: the confirmation on the teacher's phone is their proof. `shown` (record id ->
        version, from the console's page) refuses a Ký ngay whose records changed since the page showed them."""
        teacher = await self.teacher_of(actor, "rec_sign")
        credential = await SignerCredential.filter(teacher_id=teacher.id,
                                                   state=CredentialState.APPROVED).order_by("-id").first()
        if credential is None:
            pending = await SignerCredential.filter(teacher_id=teacher.id, state=CredentialState.PENDING).exists()
            raise await self.refuse(actor, "rec_sign", NotAllowed(
                "Chứng thư số của Thầy/Cô đang chờ quản trị viên duyệt; chưa ký được." if pending else
                "Thầy/Cô chưa có chứng thư số được duyệt: hãy đăng ký trên trang quản trị trước khi ký."),
                teacher=teacher.code)
        steps = await SignatureStep.filter(teacher_id=teacher.id, record__klass_id=class_id, stage=stage,
                                           state=StepState.OPEN, record__state=RecordState.SIGNING,
                                           session_id__isnull=True)
        if not steps:
            waiting = await SignatureStep.filter(teacher_id=teacher.id, record__klass_id=class_id, stage=stage,
                                                 state=StepState.WAITING).count()
            text = (f"Chưa đến lượt Thầy/Cô ký: {waiting} học bạ còn chờ các bước trước." if waiting else
                    "Không còn học bạ nào chờ Thầy/Cô ký ở lớp này (hoặc đang được ký).")
            raise await self.refuse(actor, "rec_sign", stages.OutOfOrder(text), teacher=teacher.code,
                                    class_id=class_id, stage=stage)
        if shown is not None and (changed := await changed_since(steps, shown)):
            raise await self.refuse(actor, "rec_sign", RecordsChanged(changed_text(changed)), teacher=teacher.code,
                                    class_id=class_id, stage=stage)
        unlocked = None
        if needs_pin(credential):
            if pin is None:  # a chat button or a link: it opens the page, it never signs with a held key
                raise await self.refuse(actor, "rec_sign", PinRequired(self.pin_page_text(class_id, stage)),
                                        teacher=teacher.code, class_id=class_id, stage=stage)
            if self.credentials is None:
                raise RecordsOff("Chức năng học bạ số chưa được bật đầy đủ.")
            unlocked = await self.credentials.pins.unlock(actor, credential, pin)
        now = self.clock.now()
        session: SignSession | None = None
        try:
            async with in_transaction() as conn:
                session = await SignSession.create(teacher_id=teacher.id, credential_id=credential.id,
                                                   actor=actor.label, steps=[s.id for s in steps], created_at=now,
                                                   updated_at=now, using_db=conn)
                if unlocked is not None and self.credentials is not None:
                    self.credentials.signers.hand(session.id, credential.id, unlocked)
                await SignatureStep.filter(id__in=[s.id for s in steps], session_id__isnull=True).using_db(
                    conn).update(session_id=session.id)
                await self.queue.enqueue(JobKind.SIGN_BATCH, f"sign:{session.id}", {"session_id": session.id},
                                         connection=conn)
                await AuditEvent.create(at=now, actor=actor.label, action="records_sign_started", using_db=conn,
                                        detail={"session": session.id, "class_id": class_id, "stage": stage,
                                                "steps": len(steps), "signer": credential.kind})
        except BaseException:
            if unlocked is not None:
                if self.credentials is not None and session is not None:
                    await self.credentials.signers.forget(session.id)  # its id may be handed out again
                await unlocked.close()
            raise
        self.queue.wake()
        return session

    def pin_page_text(self, class_id: int, stage: int) -> str:
        """Where a teacher whose key the server holds signs (the console page that asks for the PIN)."""
        where = (sign_page(self.settings, class_id, stage) if self.settings.web.public_url
                 else "trang quản trị (web console), mục Học bạ số")
        return (f"Chứng thư số của Thầy/Cô được lưu trên máy chủ nên mỗi lần ký cần mã PIN của Thầy/Cô. Hãy mở "
                f"{where}, bấm «Ký ngay» và nhập mã PIN. Nút trong tin nhắn chỉ mở trang, không tự ký.")

    async def return_record(self, actor: Actor, record_id: int, reason: str) -> RecordReturn:
        """Báo sai sót: a signer (or leader) sends a record back; signing it stops until the admin decides."""
        reason = printable(reason, 1000).strip()
        if not actor.has(*SIGNING_ROLES):
            raise await self.refuse(actor, "rec_return", NotAllowed("Anh/Chị không có quyền báo sai sót học bạ."))
        record = await SchoolRecord.get_or_none(id=record_id)
        if record is None:
            raise await self.refuse(actor, "rec_return", NotFound("Không có học bạ này."), record=record_id)
        if not actor.has(Role.LEADER, Role.HEAD):  # a teacher only for the classes whose records they sign
            teacher = await Teacher.get_or_none(staff_id=actor.staff_id) if actor.staff_id else None
            signs = teacher is not None and await ClassSigner.filter(klass_id=record.klass_id,
                                                                     teacher_id=teacher.id).exists()
            if not signs:
                raise await self.refuse(actor, "rec_return", NotAllowed(
                    "Anh/Chị không ký học bạ của lớp này nên không báo sai sót được."), record=record_id)
        if not reason:
            raise await self.refuse(actor, "rec_return", EdudeskError("Hãy ghi rõ sai sót cần sửa.",
                                                                      code="reason_missing"), record=record_id)
        if record.state != RecordState.SIGNING:
            raise await self.refuse(actor, "rec_return", EdudeskError(
                "Học bạ này đang chờ xử lý một báo sai sót khác hoặc đã ký xong.", code="not_signing"),
                record=record_id)
        now = self.clock.now()
        async with in_transaction() as conn:
            if not await SchoolRecord.filter(id=record_id, state=RecordState.SIGNING).using_db(conn).update(
                    state=RecordState.RETURNED, updated_at=now):
                raise EdudeskError("Học bạ vừa thay đổi; hãy thử lại.", code="stale")
            ret = await RecordReturn.create(record_id=record_id, actor=actor.label, reason=reason, created_at=now,
                                            using_db=conn)
            await AuditEvent.create(at=now, actor=actor.label, action="record_returned", using_db=conn,
                                    detail={"record": record_id, "return": ret.id, "reason": reason})
            text = (f"<b>Báo sai sót học bạ</b> — {esc(record.student_name)} ({esc(record.student_code)})\n"
                    f"Người báo: {esc(actor.name or actor.key)}\nLý do: {esc(reason)}")  # chat HTML; the text is typed
            buttons = [[{"label": "Duyệt huỷ, làm lại", "action": "rec_return_ok", "request_id": ret.id},
                        {"label": "Không huỷ, ký tiếp", "action": "rec_return_no", "request_id": ret.id}]]
            await enqueue_notice(conn, self.queue, f"return:{ret.id}", "head", text, buttons=buttons)
        self.queue.wake()
        return ret

    async def decide_return(self, actor: Actor, return_id: int, approve: bool) -> RecordReturn:
        """The admin approves (that record stops and waits for its corrected PDF, `records replace`; signing
        then starts again for it alone, correction.py) or refuses (signing continues where it was)."""
        if not actor.has(Role.ADMIN):
            raise await self.refuse(actor, "rec_return_decide", NotAllowed("Chỉ quản trị viên duyệt huỷ học bạ."))
        ret = await RecordReturn.get_or_none(id=return_id)
        if ret is None or ret.state != ReturnState.OPEN:
            raise await self.refuse(actor, "rec_return_decide", EdudeskError(
                "Báo sai sót này đã được xử lý hoặc không tồn tại.", code="already_decided"), ret=return_id)
        record = await SchoolRecord.get(id=ret.record_id)
        now = self.clock.now()
        async with in_transaction() as conn:
            if not await RecordReturn.filter(id=return_id, state=ReturnState.OPEN).using_db(conn).update(
                    state=ReturnState.APPROVED if approve else ReturnState.REFUSED, decided_by=actor.label,
                    decided_at=now):
                raise EdudeskError("Báo sai sót này vừa được xử lý.", code="already_decided")
            if approve:
                from edudesk.core.signing.correction import await_correction

                await await_correction(conn, record)
            else:
                await SchoolRecord.filter(id=record.id, state=RecordState.RETURNED).using_db(conn).update(
                    state=RecordState.SIGNING, updated_at=now)
            await AuditEvent.create(at=now, actor=actor.label, using_db=conn,
                                    action="record_recreated" if approve else "record_return_refused",
                                    detail={"record": record.id, "return": return_id, "revision": record.revision})
        self.queue.wake()
        return await RecordReturn.get(id=return_id)

    async def remind_all(self, actor: Actor, class_id: int | None = None) -> tuple[int, datetime]:
        """Nhắc tất cả: the leadership reminds every teacher still owing signatures (of one class, or all);
        in quiet hours the reminders wait for the morning. Returns (teachers reminded, when they go out)."""
        if not may_follow_progress(actor):
            raise await self.refuse(actor, "rec_remind", NotAllowed("Chỉ ban giám hiệu nhắc ký học bạ."),
                                    class_id=class_id)
        return await remind_pending(self.settings, self.clock, self.queue, actor, class_id)

    async def progress(self, actor: Actor, class_id: int | None = None) -> list[Blocking]:
        """Who is blocking which records, per class and stage: for the leadership."""
        if not may_follow_progress(actor):
            raise await self.refuse(actor, "rec_progress", NotAllowed("Chỉ ban giám hiệu xem tiến độ ký học bạ."))
        return await blocking(class_id)

    async def class_for(self, actor: Actor, class_id: int, action: str) -> tuple[SchoolClass, Teacher | None]:
        """A class whose list (students' personal data) the actor may see and report errors in: its signers'
        and the leadership's. Returns the class and the actor's teacher (None for a leader who signs none)."""
        klass = await SchoolClass.get_or_none(id=class_id)
        teacher = await signer_for(actor)
        signs = klass is not None and teacher is not None and await ClassSigner.filter(
            klass_id=class_id, teacher_id=teacher.id).exists()
        if klass is not None and (signs or may_follow_progress(actor)):
            return klass, teacher
        error = NotFound("Không có lớp này.") if klass is None and may_follow_progress(actor) else NotAllowed(
            "Anh/Chị không ký học bạ của lớp này.")
        raise await self.refuse(actor, action, error, class_id=class_id)

    async def decide_credential(self, actor: Actor, credential_id: int, approve: bool) -> SignerCredential:
        """The admin approves or rejects a registered signing credential (the desk checks the role)."""
        if self.credentials is None:
            raise RecordsOff("Chức năng học bạ số chưa được bật.")
        return await self.credentials.decide(actor, credential_id, approve)

    async def confirm_class(self, actor: Actor, class_id: int) -> SchoolClass:
        """The admin confirms a class whose every record carries every signature."""
        if not actor.has(Role.ADMIN):
            raise await self.refuse(actor, "rec_confirm", NotAllowed("Chỉ quản trị viên xác nhận hoàn tất."))
        klass = await SchoolClass.get_or_none(id=class_id)
        if klass is None or klass.state == ClassState.MINUTES:  # a class's minutes book is never issued
            raise await self.refuse(actor, "rec_confirm", NotFound("Không có lớp này."))
        left = await SchoolRecord.filter(klass_id=class_id).exclude(
            state__in=[RecordState.SIGNED, RecordState.WITHDRAWN]).count()  # a withdrawn one stays as history
        if left:
            raise await self.refuse(actor, "rec_confirm", EdudeskError(
                f"Lớp {klass.name} còn {left} học bạ chưa ký xong.", code="not_complete"), class_id=class_id)
        now = self.clock.now()
        await SchoolClass.filter(id=class_id).update(state=ClassState.CONFIRMED, confirmed_by=actor.label,
                                                     confirmed_at=now)
        await AuditEvent.create(at=now, actor=actor.label, action="records_class_confirmed",
                                detail={"class_id": class_id, "class": klass.name})
        return await SchoolClass.get(id=class_id)

