"""The notices part of the `portal_send` job (portaljob.py): each due notice (portalnotice.py) goes as its own
package through the `RecordsPortal` port and keeps the portal's answer in `record_notice` (đã gửi with its
receipt, lỗi with the reason). Errors are those of a class package: a timeout or a busy portal leaves the notice
chưa gửi and the job retries with the queue's backoff; a refusal or the last attempt marks it lỗi and tells the
admins. An accepted replacement also becomes the record's accepted version in `record_send`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from html import escape as esc

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import ClassPackage, Clock, PortalError, PortalReceipt, RecordsPortal
from edudesk.core.signing.models import SchoolClass, SchoolRecord
from edudesk.core.signing.portal import PackageInvalid
from edudesk.core.signing.portalnotice import build_notice
from edudesk.core.signing.sendmodels import NoticeKind, RecordNotice, RecordSend, SendState

log = logging.getLogger(__name__)
TellAdmins = Callable[[BaseDBAsyncClient, str, str], Awaitable[None]]
WHAT = {NoticeKind.WITHDRAWN: "thu hồi", NoticeKind.REPLACED: "điều chỉnh (bản thay thế)"}


class NoticeSender:
    """Sends a class's due notices for the job, one package each."""

    def __init__(self, clock: Clock, school_code: str, tell_admins: TellAdmins) -> None:
        self.clock = clock
        self.school_code = school_code
        self.tell_admins = tell_admins

    async def send(self, job: Job, klass: SchoolClass, notices: list[RecordNotice], portal: RecordsPortal, *,
                   last: bool) -> tuple[PortalError | None, list[str]]:
        """Send each notice; the error to retry on (if any) and the texts of those given up."""
        retry: PortalError | None = None
        failed: list[str] = []
        for notice in notices:
            record = await SchoolRecord.get(id=notice.record_id)
            try:
                package = await build_notice(notice, record, klass, now=self.clock.now(), school_code=self.school_code)
            except PackageInvalid as exc:
                await self.give_up(job, klass, notice, record, "", exc.message)
                failed.append(exc.message)
                continue
            log.info("portal: notice %s (%s) of record %s, package %s, attempt %d", notice.id, notice.kind,
                     record.student_code, package.package_id, job.attempts)
            try:
                receipts = await portal.send_class(package)
            except PortalError as exc:
                log.warning("portal: notice package %s: %s", package.package_id, exc.message)
                if exc.permanent or last:
                    text = exc.message if exc.permanent else (
                        f"Cổng tiếp nhận vẫn chưa nhận sau {job.attempts} lần gửi: {exc.message}")
                    await self.give_up(job, klass, notice, record, package.package_id, text, status=exc.status)
                    failed.append(text)
                else:
                    async with in_transaction() as conn:
                        await self._store(conn, notice, SendState.UNSENT, package.package_id,
                                          f"Lần gửi thứ {job.attempts} chưa được: {exc.message}. "
                                          f"Hệ thống sẽ tự gửi lại.")
                    retry = exc
                continue
            await self._answer(job, klass, notice, record, package, receipts)
        return retry, failed

    async def _store(self, conn: BaseDBAsyncClient, notice: RecordNotice, state: SendState, package_id: str,
                     answer: str, receipt: str = "") -> None:
        now = self.clock.now()
        row = await RecordNotice.filter(id=notice.id).using_db(conn).get()
        await RecordNotice.filter(id=notice.id).using_db(conn).update(
            state=state, package_id=package_id, answer=answer[:4000], receipt=receipt[:200], attempts=row.attempts + 1,
            sent_at=now if state == SendState.SENT else row.sent_at, updated_at=now)

    async def give_up(self, job: Job, klass: SchoolClass, notice: RecordNotice, record: SchoolRecord,
                      package_id: str, text: str, *, status: int = 0) -> None:
        """The notice cannot go: lỗi with the reason, audited, the admins told."""
        async with in_transaction() as conn:
            await self._store(conn, notice, SendState.FAILED, package_id, text)
            await AuditEvent.create(at=self.clock.now(), actor="system", action="records_portal_failed", using_db=conn,
                                    detail={"class_id": klass.id, "class": klass.name, "package": package_id,
                                            "records": 1, "notice": notice.kind, "student": record.student_code,
                                            "status": status, "error": text[:500], "attempt": job.attempts})
            await self.tell_admins(conn, f"{job.key}:notice{notice.id}:failed",
                                   f"Gửi thông báo {WHAT[NoticeKind(notice.kind)]} học bạ {esc(record.student_code)} "
                                   f"lớp <b>{esc(klass.name)}</b> ({esc(klass.year)}) lên Cổng tiếp nhận không "
                                   f"thành công: {esc(text)}")

    async def _answer(self, job: Job, klass: SchoolClass, notice: RecordNotice, record: SchoolRecord,
                      package: ClassPackage, receipts: list[PortalReceipt]) -> None:
        """The portal's answer: đã gửi with its receipt (a replacement becomes the accepted version), or lỗi."""
        answer = next((r for r in receipts if r.student_code == record.student_code), None)
        accepted = answer is not None and answer.accepted
        async with in_transaction() as conn:
            if accepted and answer is not None:
                await self._store(conn, notice, SendState.SENT, package.package_id, answer.answer, answer.receipt)
                if notice.kind == NoticeKind.REPLACED:
                    await RecordSend.filter(record_id=record.id).using_db(conn).update(
                        state=SendState.SENT, receipt=answer.receipt[:200], package_id=package.package_id,
                        sha256=hashlib.sha256(package.pdfs[0][1]).hexdigest(), sent_at=self.clock.now(),
                        answer=f"Thay bản có biên nhận {notice.replaces_receipt}.", updated_at=self.clock.now())
            else:
                reason = (answer.answer or "Cổng tiếp nhận từ chối thông báo này nhưng không nêu lý do."
                          if answer is not None else "Cổng tiếp nhận không trả lời về thông báo này.")
                await self._store(conn, notice, SendState.FAILED, package.package_id, reason)
                await self.tell_admins(conn, f"{job.key}:notice{notice.id}:refused",
                                       f"Cổng tiếp nhận từ chối thông báo {WHAT[NoticeKind(notice.kind)]} học bạ "
                                       f"{esc(record.student_code)} lớp <b>{esc(klass.name)}</b> ({esc(klass.year)}):"
                                       f" {esc(reason)}")
            await AuditEvent.create(at=self.clock.now(), actor="system", action="records_portal_notice", using_db=conn,
                                    detail={"class_id": klass.id, "class": klass.name, "package": package.package_id,
                                            "student": record.student_code, "notice": notice.kind,
                                            "replaces": notice.replaces_receipt, "accepted": int(accepted),
                                            "refused": int(not accepted), "attempt": job.attempts})
