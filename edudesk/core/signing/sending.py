"""Sending an issued class to the receiving portal, for every surface (web console, command line): who may (the
admin), which classes can go (confirmed: every record fully signed, issued and confirmed), the `portal_send`
job it queues (core/signing/portaljob.py does the upload), and where each record stands: chưa gửi / đã gửi /
lỗi with the portal's answer. A record withdrawn or adjusted after the portal accepted it is told to the portal as
a notice (portalnotice.py); its row then shows the notice's state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from edudesk.core.db import lock_for_transaction
from edudesk.core.errors import EdudeskError, NotAllowed, NotFound
from edudesk.core.jobs import JobKind, JobState
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.staff import Actor, Role
from edudesk.core.signing.models import ClassState, RecordState, SchoolClass, SchoolRecord
from edudesk.core.signing.portalnotice import due_notices, latest_notices, open_notices
from edudesk.core.signing.sendmodels import NoticeKind, RecordNotice, RecordSend, SendState
from edudesk.core.signing.service import RecordService

ISSUED = (ClassState.CONFIRMED, ClassState.EXPORTED)  # the admin confirmed completion (then maybe exported)
STATE_WORDS = {"vi": {SendState.UNSENT: "chưa gửi", SendState.SENT: "đã gửi", SendState.FAILED: "lỗi"},
               "en": {SendState.UNSENT: "not sent", SendState.SENT: "sent", SendState.FAILED: "failed"}}


class PortalRefusal(EdudeskError):
    """A send that cannot be asked for; it says why in Vietnamese and, for an English surface, in English."""

    code = "portal_refused"

    def __init__(self, message: str, english: str, *, code: str) -> None:
        super().__init__(message, code=code)
        self.english = english

    def in_words(self, lang: str | None = "vi") -> str:
        """The Vietnamese message, or its English twin on an English surface."""
        return self.english if lang == "en" else self.message


@dataclass(frozen=True)
class SendRow:
    """One record of a class and where it stands with the portal."""

    record_id: int
    student_code: str
    student_name: str
    state: SendState
    receipt: str = ""
    answer: str = ""
    sent_at: datetime | None = None
    attempts: int = 0
    notice: str = ""  # "withdrawn" | "replaced": the row is the notice of a change the portal must be told

    def label(self, lang: str = "vi") -> str:
        """"đã gửi", "lỗi", "chưa gửi" (or in English)."""
        return STATE_WORDS["en" if lang == "en" else "vi"][self.state]


@dataclass(frozen=True)
class SendRequest:
    """What "Gửi lên hệ thống" did: the job (new, or one already waiting) and how many records it carries."""

    class_id: int
    key: str
    records: int
    queued: bool  # False: a send of this class was already waiting or running; nothing new was queued


def job_prefix(class_id: int) -> str:
    """The key prefix of a class's send jobs ("portal:<class id>:")."""
    return f"portal:{class_id}:"


async def find_class(name: str, year: str = "") -> SchoolClass:
    """A class by name (and school year; the newest one without it), for the command line."""
    query = SchoolClass.filter(name=name)
    klass = await (query.filter(year=year) if year else query).order_by("-id").first()
    if klass is None:
        raise NotFound(f"Không có lớp {name}{' năm học ' + year if year else ''}.")
    return klass


CHANGED = {"vi": "Học bạ đã thay đổi sau khi Cổng tiếp nhận nhận (biên nhận cũ {receipt}); cần gửi lại bản mới.",
           "en": "The record changed after the portal accepted it (old receipt {receipt}); the new version must be "
                 "sent."}


def changed_since_sent(send: dict[str, Any]) -> bool:
    """Whether an accepted record's PDF changed after the portal took it (a revision re-made it since)."""
    updated, sent = send["record__updated_at"], send["sent_at"]
    return sent is None or (updated is not None and updated > sent)


def current_state(send: dict[str, Any] | None) -> SendState:
    """A record's send state now: no row is chưa gửi, and so is an accepted record changed since."""
    if send is None:
        return SendState.UNSENT
    if send["state"] == SendState.SENT and changed_since_sent(send):
        return SendState.UNSENT
    return SendState(send["state"])


async def _sends(**where: Any) -> dict[int, dict[str, Any]]:
    rows = await RecordSend.filter(**where).values("record_id", "state", "receipt", "answer", "sent_at", "attempts",
                                                   "record__updated_at")
    return {r["record_id"]: r for r in rows}


async def unsent_ids(class_id: int) -> list[int]:
    """The class's signed records (by student code) the portal has not accepted in their current version: never
    sent, being retried, lỗi, or changed since. Ids only: the PDFs stay in the database."""
    sends = await _sends(klass_id=class_id)
    noticed = await open_notices(class_id)  # a new revision of a record the portal holds goes as a notice
    rows = await SchoolRecord.filter(klass_id=class_id, state=RecordState.SIGNED).order_by("student_code").values("id")
    return [int(r["id"]) for r in rows
            if current_state(sends.get(int(r["id"]))) != SendState.SENT and int(r["id"]) not in noticed]


async def unsent_records(class_id: int) -> list[SchoolRecord]:
    """The records of `unsent_ids` with their PDFs (for the job that sends them)."""
    return await SchoolRecord.filter(id__in=await unsent_ids(class_id) or [0]).order_by("student_code")


async def waiting_job(class_id: int) -> Job | None:
    """The class's send job still waiting (maybe for a retry) or running, if any."""
    return await Job.filter(kind=JobKind.PORTAL_SEND, key__startswith=job_prefix(class_id),
                            state__in=[JobState.PENDING, JobState.RUNNING]).order_by("-id").first()


NOTICE_WORDS = {
    "vi": {NoticeKind.WITHDRAWN: "Thông báo thu hồi học bạ đã được nhận (biên nhận {receipt})",
           NoticeKind.REPLACED: "Bản điều chỉnh thay bản có biên nhận {receipt}"},
    "en": {NoticeKind.WITHDRAWN: "Withdrawal notice of the accepted record (receipt {receipt})",
           NoticeKind.REPLACED: "Adjusted version replacing receipt {receipt}"}}


def notice_shown(notice: RecordNotice | None) -> bool:
    """Whether a record's row shows its notice: one still to be accepted, or an accepted withdrawal (an accepted
    replacement made the new version the accepted one: the record's own row says it)."""
    return notice is not None and (notice.state != SendState.SENT or notice.kind == NoticeKind.WITHDRAWN)


def notice_row(r: dict[str, Any], notice: RecordNotice, lang: str) -> SendRow:
    """A record's row as its notice stands: chưa gửi / đã gửi / lỗi, what it tells, the portal's answer."""
    said = NOTICE_WORDS["en" if lang == "en" else "vi"][NoticeKind(notice.kind)].format(
        receipt=notice.replaces_receipt)
    return SendRow(r["id"], r["student_code"], r["student_name"], SendState(notice.state), notice.receipt,
                   f"{said}{': ' + notice.answer if notice.answer else ''}", notice.sent_at, notice.attempts,
                   notice.kind)


async def send_rows(class_id: int, lang: str = "vi") -> list[SendRow]:
    """Every record of the class (by student code) with its send state; no row yet means chưa gửi. A record
    withdrawn or adjusted after the portal accepted it shows its notice's state."""
    sends = await _sends(klass_id=class_id)
    notices = await latest_notices([class_id])
    rows = []
    for r in await SchoolRecord.filter(klass_id=class_id).order_by("student_code").values(
            "id", "student_code", "student_name", "state"):
        s = sends.get(r["id"])
        state = current_state(s)
        notice = notices.get(r["id"])
        if _history_only(r["state"], s, notice):
            continue
        if notice is not None and notice_shown(notice):
            rows.append(notice_row(r, notice, lang))
        elif s is None:
            rows.append(SendRow(r["id"], r["student_code"], r["student_name"], state))
        elif state == SendState.UNSENT and s["state"] == SendState.SENT:  # re-made after it was accepted
            text = CHANGED["en" if lang == "en" else "vi"].format(receipt=s["receipt"])
            rows.append(SendRow(r["id"], r["student_code"], r["student_name"], state, "", text, None, s["attempts"]))
        else:
            rows.append(SendRow(r["id"], r["student_code"], r["student_name"], state, s["receipt"], s["answer"],
                                s["sent_at"], s["attempts"]))
    return rows


async def overview(class_ids: list[int]) -> dict[int, dict[SendState, int]]:
    """Per class, its records đã gửi, lỗi and chưa gửi, in two queries for any number of classes."""
    sends = await _sends(klass_id__in=class_ids or [0])
    notices = await latest_notices(class_ids)
    counts = {c: dict.fromkeys(SendState, 0) for c in class_ids}
    for r in await SchoolRecord.filter(klass_id__in=class_ids or [0]).values("id", "klass_id", "state"):
        notice = notices.get(r["id"])
        if _history_only(r["state"], sends.get(r["id"]), notice):
            continue
        state = SendState(notice.state) if notice is not None and notice_shown(notice) else current_state(
            sends.get(r["id"]))
        counts[r["klass_id"]][state] += 1
    return counts


def _history_only(state: str, send: dict[str, Any] | None, notice: RecordNotice | None) -> bool:
    """A record withdrawn before the portal ever had it: history only, nothing to send or to tell."""
    return state == RecordState.WITHDRAWN and send is None and notice is None


def tally(rows: list[SendRow]) -> dict[SendState, int]:
    """How many records are in each send state."""
    counts = dict.fromkeys(SendState, 0)
    for row in rows:
        counts[row.state] += 1
    return counts


async def request_send(records: RecordService, actor: Actor, class_id: int) -> SendRequest:
    """Gửi lên hệ thống: the admin queues the upload of an issued class's records not accepted yet.

    A second tap while a send of the class waits (or retries) queues nothing more; records the portal accepted
    are never in a later package."""
    settings = records.settings
    if not actor.has(Role.ADMIN):
        raise await records.refuse(actor, "rec_portal", NotAllowed(
            "Chỉ quản trị viên gửi học bạ lên hệ thống.", code="not_allowed"), class_id=class_id)
    if not settings.portal.enabled or not settings.portal.url:
        raise await records.refuse(actor, "rec_portal", PortalRefusal(
            "Chưa bật gửi học bạ lên Cổng tiếp nhận: đặt [portal] enabled = true và url trong config.toml.",
            "Sending to the receiving portal is off: set [portal] enabled = true and url in config.toml.",
            code="portal_off"), class_id=class_id)
    klass = await SchoolClass.get_or_none(id=class_id)
    if klass is None:
        raise await records.refuse(actor, "rec_portal", NotFound("Không có lớp này."), class_id=class_id)
    notices = await due_notices(klass)  # withdrawals (and issued replacements) the portal must be told
    if klass.state not in ISSUED and not notices:
        raise await records.refuse(actor, "rec_portal", PortalRefusal(
            f"Lớp {klass.name} ({klass.year}) chưa được quản trị viên xác nhận hoàn tất: chỉ gửi được học bạ đã ký "
            f"đủ, đã phát hành và đã xác nhận.",
            f"Class {klass.name} ({klass.year}) has not been confirmed complete: only fully signed, issued and "
            f"confirmed records can be sent.", code="not_issued"), class_id=class_id)
    pending = [*(await unsent_ids(class_id) if klass.state in ISSUED else []), *(n.record_id for n in notices)]
    if not pending:
        raise await records.refuse(actor, "rec_portal", PortalRefusal(
            f"Cổng tiếp nhận đã nhận mọi học bạ của lớp {klass.name} ({klass.year}); không còn học bạ nào để gửi.",
            f"The portal has accepted every record of class {klass.name} ({klass.year}); nothing is left to send.",
            code="nothing_to_send"), class_id=class_id)
    now = records.clock.now()
    async with in_transaction() as conn:
        await lock_for_transaction(conn, f"edudesk:portal:{class_id}")
        jobs = Job.filter(kind=JobKind.PORTAL_SEND, key__startswith=job_prefix(class_id)).using_db(conn)
        waiting = await jobs.filter(state__in=[JobState.PENDING, JobState.RUNNING]).order_by("-id").first()
        if waiting is not None:
            return SendRequest(class_id, waiting.key, len(pending), queued=False)
        key = f"{job_prefix(class_id)}{await jobs.count() + 1}:{now:%Y%m%d%H%M%S}"
        payload = {"class_id": class_id} | ({} if klass.state in ISSUED else {"notices_only": True})
        await records.queue.enqueue(JobKind.PORTAL_SEND, key, payload, connection=conn)
        await AuditEvent.create(at=now, actor=actor.label, action="records_portal_requested", using_db=conn,
                                detail={"class_id": class_id, "class": klass.name, "records": len(pending)})
    records.queue.wake()
    return SendRequest(class_id, key, len(pending), queued=True)
