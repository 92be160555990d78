"""The signing jobs: `sign_batch` (a session's signatures), `sign_poll` (a remote confirmation awaited) and
`sign_issue` (the school's issuing signature, by the server).

One writer per record (holds.py): a session holds a record from the moment its signature is prepared until it
is saved; a session finding records held by another waits until they are let go, which wakes it. Every
save compares and swaps `version`, and every new signature is checked (`verify.check_new_signature`) before
it is stored, so a tampered or broken file never reaches the next signer. Remote confirmations are stored
in the session (`pending`) and the steps (`prepared`): a restart loses nothing, the poll job goes on.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from html import escape as esc

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.jobs import Handlers, JobKind, JobQueue, PermanentJobError, RetryLater
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.staff import Role, staff_holding
from edudesk.core.ports import Clock, SignItem, SignOutcome
from edudesk.core.signing import pades, stages
from edudesk.core.signing.complete import record_completed
from edudesk.core.signing.factory import SignerFactory
from edudesk.core.signing.holds import Holds, Work
from edudesk.core.signing.increment import proof
from edudesk.core.signing.models import SchoolRecord, SignatureStep, SignerCredential, SignSession, Teacher
from edudesk.core.signing.recordtext import issuing_item, school_name
from edudesk.core.signing.service import step_states
from edudesk.core.signing.spec import Stage
from edudesk.core.signing.trust import trust_material
from edudesk.core.signing.turns import open_steps, sign_notice

log = logging.getLogger(__name__)
ROUND_WAIT = 3.0  # seconds before a session tries again the records another session held
HOLD_PER_WORKER = 10  # records a local signer's session holds at once, per signing pool worker
REMOTE_KINDS = ("smartca", "csc")  # signers that ask the person to confirm on their phone


TAMPERED = ("tệp học bạ lưu trên máy chủ không còn khớp mã băm của bản đã kiểm tra sau chữ ký trước "
            "(bị sửa ngoài quy trình ký)")
PLAIN = (("mã băm", "tệp học bạ trên máy chủ đã bị sửa ngoài quy trình ký"),
         ("không chuỗi được tới CA tin cậy", "chứng thư số không do nhà cung cấp (CA) mà nhà trường tin cậy cấp"),
         ("thu hồi", "chứng thư số đã bị thu hồi"), ("nguyên vẹn", "tệp sau khi ký không còn nguyên vẹn"),
         ("không hợp lệ", "chữ ký không hợp lệ"), ("ngoài phạm vi", "tệp bị thay đổi ngoài phần được phép"))


def plain_problem(problem: str) -> str:
    """A check's finding in words a teacher reads."""
    return next((words for key, words in PLAIN if key in problem), problem)


class SignRunner:
    """Job handlers of the signing workflow."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, signers: SignerFactory) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.signers = signers
        self.holds = Holds(clock, queue)

    def handlers(self) -> Handlers:
        """The signing workflow's jobs: notices of turns, batches of signatures, polls, the issuing seal."""
        return {JobKind.SIGN_NOTICE: self.sign_notice, JobKind.SIGN_BATCH: self.sign_batch,
                JobKind.SIGN_POLL: self.sign_poll, JobKind.SIGN_ISSUE: self.sign_issue}

    async def sign_notice(self, job: Job) -> None:
        """Job handler of `sign_notice` (core/signing/turns.py)."""
        await sign_notice(self.settings, self.clock, self.queue, job)

    async def sign_issue(self, job: Job) -> None:
        """Open issuing steps of a class: one server session signs them with the organisation credential."""
        class_id = int(job.payload["class_id"])
        steps = await SignatureStep.filter(teacher_id__isnull=True, state="open", session_id__isnull=True,
                                           record__klass_id=class_id, record__state="signing")
        if not steps:
            return
        credential = await self.signers.issuer()
        now = self.clock.now()
        async with in_transaction() as conn:
            session = await SignSession.create(teacher_id=None, credential_id=credential.id, actor="system",
                                               steps=[s.id for s in steps], created_at=now, updated_at=now,
                                               using_db=conn)
            await SignatureStep.filter(id__in=[s.id for s in steps]).using_db(conn).update(session_id=session.id)
            await self.queue.enqueue(JobKind.SIGN_BATCH, f"sign:{session.id}", {"session_id": session.id},
                                     connection=conn)
        self.queue.wake()

    async def _session(self, job: Job) -> SignSession | None:
        session = await SignSession.get_or_none(id=int(job.payload["session_id"]))
        return None if session is None or session.state in ("done", "refused") else session

    async def sign_batch(self, job: Job) -> None:
        """Sign what the session can hold now; remote signers leave a pending confirmation to poll."""
        session = await self._session(job)
        if session is None or session.state == "pending":
            return
        credential = await SignerCredential.get(id=session.credential_id)
        if credential.state != "approved":
            await self._end(session, "refused", "Chứng thư số không còn được duyệt.")
            return
        remote = credential.kind in REMOTE_KINDS
        releases = self.holds.releases
        # A local key signs its records a part at a time (HOLD_PER_WORKER per pool worker), letting go of
        # each part once saved: the next teacher signs those while this one signs the next part, so the pool
        # always has work. A remote signer holds everything: one confirmation on the phone for all.
        limit = None if remote else HOLD_PER_WORKER * self.signers.pool().workers
        work, left = await self.holds.hold(session, limit)
        if remote and left:
            # One confirmation on the phone for all the teacher's records: wait until none is held by
            # another session (local ones finish in seconds) rather than ask twice.
            await self.holds.let_go(session)
            raise RetryLater(ROUND_WAIT * random.uniform(0.5, 1.5))
        tampered = [w for w in work if not w.proven()]
        for w in tampered:  # never signed: the next signer would sign what nobody checked
            await self._rejected(session, w, [TAMPERED])
        work = [w for w in work if w.proven()]
        rejected: list[list[str]] = [[TAMPERED] for _ in tampered]
        if work:
            items = [await self._item(w, credential) for w in work]
            try:
                signer = await self.signers.for_session(session.id, credential)
                outcome = await signer.sign(items)
            except EdudeskError as exc:  # the signer's own clear no (passphrase, provider, token): told, not retried
                await self._end(session, "refused", exc.message)
                return
            except BaseException:
                await self.holds.let_go(session)  # others may sign meanwhile
                raise
            if outcome.pending is not None:
                await self._store_pending(session, work, outcome)
                return
            rejected += await self._settle(session, work, outcome)
        if rejected:
            await self._failed(session, rejected)  # the same key would fail the same check: not retried
            return
        if left:  # at once after a part signed, or if records were let go since it looked (their wake found
            # this job still running); else when woken, or after a round
            raise RetryLater(0.0 if work or self.holds.releases != releases else ROUND_WAIT)
        await self._end(session, "done")

    async def sign_poll(self, job: Job) -> None:
        """Ask the provider about a pending confirmation; finish, refuse, or ask again later."""
        session = await self._session(job)
        if session is None or session.state != "pending":
            return
        credential = await SignerCredential.get(id=session.credential_id)
        ids = [int(i) for i in session.pending.get("steps", [])]
        steps = {s.id: s for s in await SignatureStep.filter(id__in=ids)}
        records = {r.id: r for r in await SchoolRecord.filter(id__in=[s.record_id for s in steps.values()])}
        by_record: dict[int, list[SignatureStep]] = {}
        for other in await SignatureStep.filter(record_id__in=list(records)):
            by_record.setdefault(other.record_id, []).append(other)
        work = [Work(steps[i], records[steps[i].record_id], by_record[steps[i].record_id]) for i in ids]
        prepared = [bytes(w.step.prepared or b"") for w in work]
        signer = await self.signers.for_session(session.id, credential)
        outcome = await signer.resume(session.pending["signer"], prepared)
        if outcome.pending is not None:
            attempt = int(job.payload.get("attempt", 0)) + 1
            await self.queue.enqueue(JobKind.SIGN_POLL, f"poll:{session.id}:{attempt}",
                                     {"session_id": session.id, "attempt": attempt},
                                     run_after=self.clock.now() + timedelta(seconds=self._poll_seconds()))
            return
        if rejected := await self._settle(session, work, outcome):
            await self._failed(session, rejected)
            return
        left = await SignatureStep.filter(session_id=session.id, state="open").exists()
        if left and outcome.signed:
            await SignSession.filter(id=session.id).update(state="queued", pending={}, updated_at=self.clock.now())
            await self.queue.enqueue(JobKind.SIGN_BATCH, f"sign:{session.id}:{job.id}", {"session_id": session.id})
            self.queue.wake()
        else:
            await self._end(session, "refused" if outcome.refused else "done", outcome.refused)

    def _poll_seconds(self) -> float:
        return max(self.settings.records.smartca.poll_seconds, 0.5)

    async def _item(self, w: Work, credential: SignerCredential) -> SignItem:
        item = SignItem(key=f"step:{w.step.id}", pdf=bytes(w.record.pdf), field=w.step.field,
                        certify=w.record.signatures == 0, reason="Ký học bạ số",
                        location=school_name(self.settings), signer_name=credential.subject_name,
                        timezone=self.settings.general.timezone, at=self.clock.now(),
                        level=self._level(w.step.stage))
        if w.step.stage == Stage.ISSUER:  # the school's name on its stamp, the issuing day on the date line
            return await issuing_item(item, w.record.klass_id, self.settings)
        return item

    def _level(self, stage: int) -> str:
        """The PAdES level of a step's signature (remote signers reach it as local ones do: remote.py)."""
        records = self.settings.records
        return pades.step_level(pades.configured_level(records.ltv, records.tsa_url), issuing=stage == Stage.ISSUER)

    async def _store_pending(self, session: SignSession, work: list[Work], outcome: SignOutcome) -> None:
        now = self.clock.now()
        async with in_transaction() as conn:
            for w, pdf in zip(work, outcome.prepared, strict=True):
                await SignatureStep.filter(id=w.step.id).using_db(conn).update(prepared=pdf)
            pending = {"signer": dict(outcome.pending or {}), "steps": [w.step.id for w in work],
                       "versions": [w.record.version for w in work]}
            await SignSession.filter(id=session.id).using_db(conn).update(state="pending", pending=pending,
                                                                          updated_at=now)
            await self.queue.enqueue(JobKind.SIGN_POLL, f"poll:{session.id}:0",
                                     {"session_id": session.id, "attempt": 0}, connection=conn,
                                     run_after=now + timedelta(seconds=self._poll_seconds()))
            await AuditEvent.create(at=now, actor=session.actor, action="records_sign_pending", using_db=conn,
                                    detail={"session": session.id, "steps": len(work)})

    async def _settle(self, session: SignSession, work: list[Work], outcome: SignOutcome) -> list[list[str]]:
        """Store each signed PDF (checked first), or release the records when nothing was signed; the
        problems of each signature that failed its check (and was not stored)."""
        if not outcome.signed:
            await self._release(session, work)
            return []
        if len(outcome.signed) != len(work):
            raise PermanentJobError("signer returned a different number of PDFs than items")
        roots, crls = trust_material(self.settings)
        reports = await self.signers.pool().check([w.check_item(pdf) for w, pdf in zip(work, outcome.signed,
                                                                                        strict=True)],
                                                  trusted_roots=roots, crls=crls)
        rejected, good = [], []
        for w, pdf, report in zip(work, outcome.signed, reports, strict=True):
            if not report.ok:
                problems = list(report.problems) + [p for s in report.signatures for p in s.problems]
                await self._rejected(session, w, problems)
                rejected.append(problems)
                continue
            good.append((w, pdf, report.signatures[-1].signer if report.signatures else ""))
        if good:
            await self._save(session, good)
        return rejected

    async def _save(self, session: SignSession, good: list[tuple[Work, bytes, str]]) -> None:
        """Every checked signature of a round in one transaction: each record compared and swapped on its
        version with the new file's proof, the signed steps in one statement per signer, the next turns opened
        once per class (their notices debounced together), the audit events in one insert."""
        now = self.clock.now()
        opened: dict[int, list[int]] = {}
        completed: set[int] = set()
        signed_steps: dict[str, list[int]] = {}
        events = []
        async with in_transaction() as conn:
            for w, pdf, signed_by in good:
                advance = stages.after_signing(step_states(w.steps), [w.step.id])
                length, digest = proof(pdf)
                saved = await SchoolRecord.filter(id=w.record.id, version=w.record.version,
                                                  held_by=session.id).using_db(conn).update(
                    pdf=pdf, version=F("version") + 1, signatures=F("signatures") + 1, held_by=None,
                    stage=advance.stage, state="signed" if advance.complete else "signing", updated_at=now,
                    pdf_sha256=digest, pdf_length=length)
                if not saved:  # re-made after a cancellation meanwhile: this signature belongs to the old file
                    await SignatureStep.filter(id=w.step.id, session_id=session.id).using_db(conn).update(
                        session_id=None)
                    continue
                signed_steps.setdefault(signed_by[:300], []).append(w.step.id)
                opened.setdefault(w.record.klass_id, []).extend(advance.opened)
                if advance.complete:
                    completed.add(w.record.klass_id)
                events.append(AuditEvent(at=now, actor=session.actor, action="record_signed",
                                         detail={"record": w.record.id, "field": w.step.field, "stage": w.step.stage,
                                                 "signer": signed_by[:200], "session": session.id}))
            for signed_by, ids in signed_steps.items():
                await SignatureStep.filter(id__in=ids).using_db(conn).update(
                    state="signed", signed_at=now, signed_by=signed_by, session_id=None, prepared=None)
            for class_id, step_ids in opened.items():
                await open_steps(conn, self.queue, self.settings, self.clock, class_id, step_ids)
            if events:
                await AuditEvent.bulk_create(events, using_db=conn)
            for class_id in sorted(completed):
                await record_completed(conn, self.queue, self.settings, class_id)
        self.queue.wake()
        await self.holds.wake_waiting()

    async def _rejected(self, session: SignSession, w: Work, problems: list[str]) -> None:
        log.error("signature on record %s (%s) failed its check: %s", w.record.id, w.step.field, problems)
        await SchoolRecord.filter(id=w.record.id, held_by=session.id).update(held_by=None)
        await SignatureStep.filter(id=w.step.id).update(session_id=None, prepared=None)
        await AuditEvent.create(at=self.clock.now(), actor=session.actor, action="record_signature_rejected",
                                detail={"record": w.record.id, "field": w.step.field, "problems": problems[:10]})

    async def _failed(self, session: SignSession, rejected: list[list[str]]) -> None:
        """Signatures made but failing their own check: the session fails, the signer and the admins are told
        in plain words (nothing of it is stored, nothing says it was signed)."""
        from edudesk.core.chats.notify import enqueue_notice

        reasons = "; ".join(dict.fromkeys(plain_problem(p) for problems in rejected for p in problems[:3]))
        signed = await SignatureStep.filter(id__in=[int(i) for i in session.steps], state="signed").count()
        detail = (f"chữ ký trên {len(rejected)} học bạ không qua được bước kiểm tra sau khi ký nên KHÔNG được lưu "
                  f"({reasons}). Các học bạ đó vẫn chờ ký; quản trị viên đã được báo."
                  + (f" ({signed} học bạ khác đã ký và lưu bình thường.)" if signed else ""))
        teacher = await Teacher.get_or_none(id=session.teacher_id) if session.teacher_id else None
        who = f"{teacher.name} ({teacher.code})" if teacher else "chữ ký phát hành của nhà trường"
        text = (f"<b>Ký học bạ không thành công</b> — {esc(who)}: chữ ký trên {len(rejected)} học bạ không qua "
                f"kiểm tra nên không được lưu ({esc(reasons)}). Hãy kiểm tra chứng thư số và [records] trusted_roots.")
        for admin in await staff_holding(Role.ADMIN, self.settings):
            await enqueue_notice(None, self.queue, f"signfailed:{session.id}:{admin.id}", f"staff:{admin.id}", text)
        await enqueue_notice(None, self.queue, f"signfailed:{session.id}:head", "head", text)
        await self._end(session, "refused", detail[0].upper() + detail[1:])

    async def _release(self, session: SignSession, work: list[Work]) -> None:
        for w in work:
            await SchoolRecord.filter(id=w.record.id, held_by=session.id).update(held_by=None)
            await SignatureStep.filter(id=w.step.id, session_id=session.id).update(session_id=None, prepared=None)
        await self.holds.wake_waiting()

    async def _end(self, session: SignSession, state: str, detail: str = "") -> None:
        """Close the session; steps it did not sign go back to their teacher, who is told why."""
        now = self.clock.now()
        await self.signers.forget(session.id)  # a key its teacher's PIN opened lives no longer than the session
        await self.holds.let_go(session)
        await SignatureStep.filter(session_id=session.id).update(session_id=None, prepared=None)
        await SignSession.filter(id=session.id).update(state=state, detail=detail[:2000], updated_at=now)
        await AuditEvent.create(at=now, actor=session.actor, action=f"records_sign_{state}",
                                detail={"session": session.id, "detail": detail[:500]})
        if state == "refused" and session.teacher_id is not None:
            from edudesk.core.chats.notify import enqueue_notice

            teacher = await Teacher.get(id=session.teacher_id)
            if teacher.staff_id is not None:
                await enqueue_notice(None, self.queue, f"signrefused:{session.id}", f"staff:{teacher.staff_id}",
                                     f"Chưa ký được: {detail}\nThầy/Cô có thể bấm «Ký ngay» để gửi lại yêu cầu ký.")
                self.queue.wake()

