"""The correction after Báo sai sót: approving the cancellation stops the record and asks for the corrected PDF;
`replace_record` (the console's upload, `edudesk records replace CODE --pdf FILE`) checks that the file is this
student's record (its text names the student code and name), archives the old revision and starts signing
again from the first stage for that record only. The check of a corrected PDF serves adjustments too."""

from __future__ import annotations

import asyncio
import hashlib
import re
import unicodedata
from io import BytesIO

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edudesk.core.errors import EdudeskError, NotAllowed, NotFound
from edudesk.core.models import AuditEvent
from edudesk.core.people.staff import Actor, Role
from edudesk.core.signing.lifemodels import RevisionKind
from edudesk.core.signing.models import (
    RecordReturn,
    RecordState,
    ReturnState,
    SchoolRecord,
    SignatureStep,
    StepState,
)
from edudesk.core.signing.pdfs import RecordPdfError
from edudesk.core.signing.revisions import archive, prepare, restart
from edudesk.core.signing.service import RecordService

MAX_PDF = 20 * 1024 * 1024  # a record with scans stays well below
TEXT_PAGES = 3  # the student's name and code are on the first page; text extraction is the slow part


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def pdf_text(pdf: bytes) -> str:
    """The text of the first pages of a PDF (pypdf), or RecordPdfError when it does not open."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if b"%PDF-" not in pdf[:1024]:
        raise RecordPdfError("Tệp học bạ không phải là tệp PDF.", code="not_pdf")
    try:
        reader = PdfReader(BytesIO(pdf))
        if reader.is_encrypted:
            raise RecordPdfError("Tệp PDF của học bạ đang được mã hoá (đặt mật khẩu); hãy xuất lại bản không mã hoá.",
                                 code="pdf_encrypted")
        return "\n".join(page.extract_text() or "" for page in reader.pages[:TEXT_PAGES])
    except (PyPdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise RecordPdfError(f"Tệp PDF của học bạ bị lỗi cấu trúc, không đọc được ({type(exc).__name__}).",
                             code="not_pdf") from None


def identity_problem(text: str, student_code: str, student_name: str) -> str:
    """What in the text does not match the record's student ("" when the code and the full name are there)."""
    norm = _norm(text)
    missing = []
    if not re.search(rf"(?<![0-9a-z]){re.escape(_norm(student_code))}(?![0-9a-z])", norm):
        missing.append(f"mã học sinh {student_code}")
    if _norm(student_name) not in norm:
        missing.append(f"họ tên «{student_name}»")
    if not missing:
        return ""
    return (f"Tệp tải lên không phải học bạ của học sinh này: không thấy {' và '.join(missing)} trong tệp. Hãy xuất "
            f"lại đúng học bạ của {student_name} ({student_code}).")


async def check_corrected(record: SchoolRecord, pdf: bytes) -> bytes:
    """A corrected PDF for that record, ready to sign (its signature fields made); RecordPdfError naming what is
    wrong: too large, not a PDF, another student's, already signed."""
    if len(pdf) > MAX_PDF:
        raise RecordPdfError(f"Tệp học bạ quá lớn ({len(pdf) // (1024 * 1024)} MB; tối đa "
                             f"{MAX_PDF // (1024 * 1024)} MB).", code="pdf_too_large")
    text = await asyncio.to_thread(pdf_text, pdf)
    if problem := identity_problem(text, record.student_code, record.student_name):
        raise RecordPdfError(problem, code="identity_mismatch")
    return await prepare(record, pdf)


async def await_correction(conn: BaseDBAsyncClient, record: SchoolRecord) -> None:
    """The cancellation was approved: the record waits for its corrected PDF; its open turns close (nothing is
    signed on the old file any more: the version changes, so a signature in flight is not stored)."""
    await SchoolRecord.filter(id=record.id).using_db(conn).update(
        state=RecordState.CORRECTING, version=record.version + 1, held_by=None)
    await SignatureStep.filter(record_id=record.id, state=StepState.OPEN).using_db(conn).update(
        state=StepState.WAITING, opened_at=None, deadline=None, notified_at=None, reminded_at=None,
        escalated_at=None, session_id=None, prepared=None)


async def replace_record(records: RecordService, actor: Actor, record_id: int, pdf: bytes) -> SchoolRecord:
    """Records replace: the corrected PDF of a record whose cancellation was approved; the old revision is
    archived (still verifiable) and signing starts again at stage 1 for that record only."""
    if not actor.has(Role.ADMIN):
        raise await records.refuse(actor, "rec_replace", NotAllowed("Chỉ quản trị viên thay học bạ đã sửa."),
                                   record=record_id)
    record = await SchoolRecord.get_or_none(id=record_id)
    if record is None:
        raise await records.refuse(actor, "rec_replace", NotFound("Không có học bạ này."), record=record_id)
    if record.state != RecordState.CORRECTING:
        text = ("Học bạ này đã ký xong và phát hành: muốn thay đổi, hãy lập thu hồi hoặc điều chỉnh (có biên bản "
                "của Ban giám hiệu)." if record.state in (RecordState.SIGNED, RecordState.WITHDRAWN) else
                "Chỉ thay được học bạ mà quản trị viên đã duyệt huỷ sau khi có báo sai sót.")
        raise await records.refuse(actor, "rec_replace", EdudeskError(text, code="not_correcting"), record=record_id)
    try:
        prepared = await check_corrected(record, pdf)
    except RecordPdfError as exc:
        raise await records.refuse(actor, "rec_replace", exc, record=record_id) from None
    ret = await RecordReturn.filter(record_id=record_id, state=ReturnState.APPROVED).order_by("-id").first()
    now = records.clock.now()
    async with in_transaction() as conn:
        old = await archive(conn, record, RevisionKind.CORRECTION, actor=actor.label, at=now,
                            reason=ret.reason if ret else "", record_return_id=ret.id if ret else None)
        await restart(conn, records.settings, records.clock, records.queue, record, prepared=prepared, exported=pdf,
                      from_state=RecordState.CORRECTING)
        await AuditEvent.create(at=now, actor=actor.label, action="record_replaced", using_db=conn,
                                detail={"record": record.id, "student": record.student_code,
                                        "revision": record.revision + 1, "archived": old.sha256,
                                        "sha256": hashlib.sha256(pdf).hexdigest()})
    records.queue.wake()
    return await SchoolRecord.get(id=record.id)
