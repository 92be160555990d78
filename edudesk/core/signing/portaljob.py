"""The `portal_send` job: the class's records the portal has not accepted yet go as packages through the
`RecordsPortal` port, and each record keeps the portal's answer (đã gửi with its receipt, lỗi with the reason).
A timeout or a busy portal (408, 429, 5xx) retries through the job queue with its backoff; a refusal of a whole
package (credentials, format, size) or the last attempt marks its records lỗi, tells the admins, and parks the
job. A re-run after a crash sends only what is still not accepted, under the same package id. The class's due
notices (a withdrawal or an adjustment of a record the portal accepted: portalnotice.py, noticejob.py) go first,
each as its own package; a job queued by a withdrawal (`notices_only`) sends only them."""

from __future__ import annotations

import hashlib
import logging
from html import escape as esc

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.jobs import Handlers, JobKind, JobQueue, PermanentJobError
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.staff import Role, staff_holding
from edudesk.core.ports import ClassPackage, Clock, PortalError, PortalReceipt, RecordsPortal
from edudesk.core.signing.models import SchoolClass, SchoolRecord
from edudesk.core.signing.noticejob import NoticeSender
from edudesk.core.signing.portal import PackageInvalid, build_packages
from edudesk.core.signing.portalnotice import due_notices
from edudesk.core.signing.sending import ISSUED, unsent_records
from edudesk.core.signing.sendmodels import RecordSend, SendState

log = logging.getLogger(__name__)
NO_ANSWER = "Cổng tiếp nhận không trả lời về học bạ này trong kết quả của gói hồ sơ."
NO_REASON = "Cổng tiếp nhận từ chối học bạ này nhưng không nêu lý do."


class PortalRetry(Exception):
    """The portal could not take a package now: the queue runs the job again after its backoff."""


class PortalSendJob:
    """Runs `portal_send` jobs with the portal adapter the composition root chose (None: [portal] is off)."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, portal: RecordsPortal | None) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.portal = portal

    def handlers(self) -> Handlers:
        """The job kinds this part runs."""
        return {JobKind.PORTAL_SEND: self.send}

    @property
    def attempts(self) -> int:
        """Uploads of a package before its records are marked lỗi (never more than the queue allows a job)."""
        return max(1, min(self.settings.portal.max_attempts, self.settings.jobs.max_attempts))

    async def send(self, job: Job) -> None:
        """Upload the class's records not accepted yet; store each record's answer."""
        class_id = int(job.payload["class_id"])
        notices_only = bool(job.payload.get("notices_only"))  # a withdrawal told at once (portalnotice.py)
        klass = await SchoolClass.get_or_none(id=class_id)
        if klass is None or (klass.state not in ISSUED and not notices_only):
            raise PermanentJobError(f"class {class_id} is not an issued class (anymore)")
        notices = await due_notices(klass)
        records = [] if notices_only or klass.state not in ISSUED else await unsent_records(class_id)
        if not records and not notices:
            return  # all accepted by an earlier run (a re-run after a crash)
        by_code = {r.student_code: r for r in records}
        portal = self.portal
        sender = NoticeSender(self.clock, self.settings.portal.school_code, self._tell_admins)
        try:
            if portal is None:  # turned off after the send was asked for
                raise PackageInvalid("Chưa bật gửi học bạ lên Cổng tiếp nhận ([portal] enabled = false).")
            packages = await build_packages(klass, records, now=self.clock.now(),
                                            school_code=self.settings.portal.school_code,
                                            max_bytes=int(self.settings.portal.max_package_mb * 1024 * 1024))
        except PackageInvalid as exc:
            if records:
                await self._give_up(job, klass, records, "", exc.message)
            for notice in notices:
                await sender.give_up(job, klass, notice, await SchoolRecord.get(id=notice.record_id), "", exc.message)
            self.queue.wake()
            raise PermanentJobError(exc.message) from None
        last = job.attempts >= self.attempts
        retry, failed = await sender.send(job, klass, notices, portal, last=last)
        for package in packages:
            chosen = [by_code[c] for c in package.student_codes]
            log.info("portal: package %s of class %s: %d records, %d bytes, attempt %d", package.package_id,
                     package.label, len(chosen), package.size, job.attempts)
            try:
                receipts = await portal.send_class(package)
            except PortalError as exc:
                log.warning("portal: package %s of class %s: %s", package.package_id, package.label, exc.message)
                if exc.permanent or last:
                    text = exc.message if exc.permanent else (
                        f"Cổng tiếp nhận vẫn chưa nhận sau {job.attempts} lần gửi: {exc.message}")
                    await self._give_up(job, klass, chosen, package.package_id, text, status=exc.status)
                    failed.append(text)
                else:
                    await self._note(chosen, package, f"Lần gửi thứ {job.attempts} chưa được: {exc.message}. "
                                                      f"Hệ thống sẽ tự gửi lại.")
                    retry = exc
                continue
            await self._answers(job, klass, chosen, package, receipts)
        self.queue.wake()  # the admins' notices
        if retry is not None:
            raise PortalRetry(retry.message)
        if failed:
            raise PermanentJobError(failed[0])

    async def _store(self, conn: BaseDBAsyncClient, record: SchoolRecord, state: SendState, *, package_id: str,
                     sha256: str, answer: str = "", receipt: str = "", sent: bool = False) -> None:
        """Write one record's send state (its first row, or the row it has)."""
        now = self.clock.now()
        values = {"state": state, "answer": answer[:4000], "receipt": receipt[:200], "package_id": package_id,
                  "sha256": sha256, "updated_at": now}
        row = await RecordSend.filter(record_id=record.id).using_db(conn).first()
        if row is None:
            await RecordSend.create(record_id=record.id, klass_id=record.klass_id, attempts=1,
                                    sent_at=now if sent else None, using_db=conn, **values)
        else:
            await RecordSend.filter(id=row.id).using_db(conn).update(
                attempts=row.attempts + 1, sent_at=now if sent else row.sent_at, **values)

    async def _note(self, records: list[SchoolRecord], package: ClassPackage, text: str) -> None:
        """A send that will be tried again: the records stay chưa gửi, with what went wrong this time."""
        shas = _hashes(package)
        async with in_transaction() as conn:
            for record in records:
                await self._store(conn, record, SendState.UNSENT, package_id=package.package_id,
                                  sha256=shas.get(record.student_code, ""), answer=text)

    async def _give_up(self, job: Job, klass: SchoolClass, records: list[SchoolRecord], package_id: str, text: str,
                       *, status: int = 0) -> None:
        """The package cannot go: its records are lỗi with the reason, audited, and the admins are told."""
        now = self.clock.now()
        async with in_transaction() as conn:
            for record in records:
                await self._store(conn, record, SendState.FAILED, package_id=package_id,
                                  sha256=hashlib.sha256(bytes(record.pdf)).hexdigest(), answer=text)
            await AuditEvent.create(at=now, actor="system", action="records_portal_failed", using_db=conn,
                                    detail={"class_id": klass.id, "class": klass.name, "package": package_id,
                                            "records": len(records), "status": status, "error": text[:500],
                                            "attempt": job.attempts})
            await self._tell_admins(conn, f"{job.key}:{package_id}:failed",
                                    f"Gửi học bạ lớp <b>{esc(klass.name)}</b> ({esc(klass.year)}) lên Cổng tiếp "
                                    f"nhận không thành công ({len(records)} học bạ): {esc(text)}")

    async def _answers(self, job: Job, klass: SchoolClass, records: list[SchoolRecord], package: ClassPackage,
                       receipts: list[PortalReceipt]) -> None:
        """The portal's answer per record: đã gửi with the receipt, or lỗi with its reason (also for no answer)."""
        answers = {r.student_code: r for r in receipts}
        shas = _hashes(package)
        refused: list[str] = []
        async with in_transaction() as conn:
            for record in records:
                code, answer = record.student_code, answers.get(record.student_code)
                if answer is not None and answer.accepted:
                    await self._store(conn, record, SendState.SENT, package_id=package.package_id, sha256=shas[code],
                                      answer=answer.answer, receipt=answer.receipt, sent=True)
                    continue
                reason = NO_ANSWER if answer is None else answer.answer or NO_REASON
                refused.append(f"{code}: {reason}")
                await self._store(conn, record, SendState.FAILED, package_id=package.package_id, sha256=shas[code],
                                  answer=reason)
            await AuditEvent.create(at=self.clock.now(), actor="system", action="records_portal_sent", using_db=conn,
                                    detail={"class_id": klass.id, "class": klass.name, "package": package.package_id,
                                            "accepted": len(records) - len(refused), "refused": len(refused),
                                            "attempt": job.attempts})
            if refused:
                lines = "\n".join(esc(line) for line in refused[:10])
                more = f"\n… và {len(refused) - 10} học bạ khác." if len(refused) > 10 else ""
                await self._tell_admins(conn, f"{job.key}:{package.package_id}:refused",
                                        f"Cổng tiếp nhận đã nhận {len(records) - len(refused)}/{len(records)} học bạ "
                                        f"lớp <b>{esc(klass.name)}</b> ({esc(klass.year)}); {len(refused)} học bạ bị "
                                        f"từ chối:\n{lines}{more}\nSửa rồi bấm «Gửi lên hệ thống» để gửi lại.")

    async def _tell_admins(self, conn: BaseDBAsyncClient, key: str, text: str) -> None:
        """The head's chat and each admin's (as a class's completion is told, core/signing/complete.py)."""
        await enqueue_notice(conn, self.queue, f"portal:{key}:head", "head", text)
        for admin in await staff_holding(Role.ADMIN, self.settings, conn):
            await enqueue_notice(conn, self.queue, f"portal:{key}:{admin.id}", f"staff:{admin.id}", text)


def _hashes(package: ClassPackage) -> dict[str, str]:
    """Each record's SHA-256 as the package carries it, by student code."""
    return {code: hashlib.sha256(data).hexdigest() for code, (_, data) in zip(package.student_codes, package.pdfs,
                                                                              strict=True)}
