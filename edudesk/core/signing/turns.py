"""Turns: opening signature steps (with their deadline) and the ONE aggregated "sign now" message per
teacher, class and stage. Steps that open within `notice_delay_seconds` of each other share one message:
the opening enqueues a debounced `sign_notice` job; the job counts what is open when it runs, and waits
(a while at most) while the stage before is still being signed for more of that teacher's records."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from datetime import timedelta
from html import escape as esc
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.jobs import JobKind, JobQueue, RetryLater
from edudesk.core.models import Job
from edudesk.core.people.staff import Role, staff_holding
from edudesk.core.ports import Clock
from edudesk.core.signing.minutes_notice import minutes_notice
from edudesk.core.signing.models import (
    ClassSigner,
    CredentialState,
    RecordState,
    SchoolClass,
    SessionState,
    SignatureStep,
    SignerCredential,
    SignSession,
    StepState,
    Teacher,
)
from edudesk.core.signing.pin import needs_pin
from edudesk.core.text import local_time
from edudesk.core.words import words

log = logging.getLogger(__name__)
LOCAL_SESSION_WAIT_SECONDS = 600.0  # longest a sign-now notice waits for a session of the stage before


async def open_steps(conn: BaseDBAsyncClient, queue: JobQueue, settings: Settings, clock: Clock,
                     class_id: int, step_ids: Sequence[int]) -> None:
    """Open steps (their turn has come): deadline set, and a debounced notice per signer enqueued."""
    if not step_ids:
        return
    now = clock.now()
    deadline = now + timedelta(days=settings.records.stage_days)
    await SignatureStep.filter(id__in=list(step_ids), state=StepState.WAITING).using_db(conn).update(
        state=StepState.OPEN, opened_at=now, deadline=deadline)
    delay = max(settings.records.notice_delay_seconds, 1.0)
    bucket = int(now.timestamp() // delay)
    rows = await SignatureStep.filter(id__in=list(step_ids)).using_db(conn).values_list("id", "teacher_id", "stage")
    issuing = [step_id for step_id, teacher_id, _ in rows if teacher_id is None]
    if issuing:
        # The issuing signature: the server signs, nobody is told. One job per opening, keyed by its first step
        # (not by a time bucket: a job of the same bucket that already ran would swallow these steps, and
        # nothing else signs them); it still waits `delay`, and signs every issuing step of the class then open.
        # The bucket too: a record signed again (a correction, an adjustment) opens the same step a second time.
        await queue.enqueue(JobKind.SIGN_ISSUE, f"issue:{class_id}:{min(issuing)}:{bucket}", {"class_id": class_id},
                            connection=conn, run_after=now + timedelta(seconds=delay))
    pairs = {(teacher_id, stage) for _, teacher_id, stage in rows if teacher_id is not None}
    for teacher_id, stage in sorted(pairs, key=lambda p: (p[1], p[0])):
        await queue.enqueue(JobKind.SIGN_NOTICE, f"signnotice:{teacher_id}:{class_id}:{stage}:{bucket}",
                            {"teacher_id": teacher_id, "class_id": class_id, "stage": stage},
                            connection=conn, run_after=now + timedelta(seconds=delay))


def sign_page(settings: Settings, class_id: int, stage: int) -> str:
    """The console page where a teacher signs that turn (and types the PIN of a key the server holds)."""
    return f"{settings.web_url}/records?class={class_id}&stage={stage}#turns"


async def teacher_needs_pin(teacher_id: int) -> bool:
    """Whether the teacher's approved credential is a key the server holds (signing asks for their PIN)."""
    return needs_pin(await SignerCredential.filter(teacher_id=teacher_id, state=CredentialState.APPROVED)
                     .order_by("-id").first())


def sign_buttons(settings: Settings, class_id: int, stage: int, *, pin: bool = False) -> list[list[dict[str, Any]]]:
    """Ký ngay, Xem danh sách and Báo sai sót (the class's page in the web console when it has a public
    address, else taps answered in the chat). With `pin` (a key the server holds) Ký ngay only opens the
    console's page, where the PIN is typed: a tap never signs with it."""
    sign: dict[str, Any] = {"label": "Ký ngay", "action": "rec_sign", "request_id": class_id, "arg": stage}
    if pin and settings.web.public_url:
        sign = {"label": "Ký ngay", "action": "noop", "request_id": 0, "url": sign_page(settings, class_id, stage)}
    rows: list[list[dict[str, Any]]] = [[sign]]
    if settings.web.public_url:
        page = f"{settings.web_url}/records/classes/{class_id}?stage={stage}"
        rows.append([{"label": "Xem danh sách", "action": "noop", "request_id": 0, "url": page},
                     {"label": "Báo sai sót", "action": "noop", "request_id": 0, "url": page + "#bao-sai-sot"}])
    else:  # no console reachable from the phone: the list and the report happen in the chat itself
        rows.append([{"label": "Xem danh sách", "action": "rec_list", "request_id": class_id, "arg": stage},
                     {"label": "Báo sai sót", "action": "rec_report", "request_id": class_id, "arg": stage}])
    return rows


async def role_text(teacher_id: int, class_id: int, stage: int, lang: str = "vi") -> str:
    """"Giáo viên bộ môn (Toán, Tin học)", "Giáo viên chủ nhiệm", "Ban giám hiệu" (English when asked)."""
    label = words(lang)(f"rec.stages.{int(stage)}")
    signer = await ClassSigner.get_or_none(klass_id=class_id, teacher_id=teacher_id, stage=stage)
    if signer is not None and signer.subjects:
        return f"{label} ({', '.join(signer.subjects)})"
    return label


async def sign_notice(settings: Settings, clock: Clock, queue: JobQueue, job: Job) -> None:
    """The aggregated "sign now" message of one teacher, class and stage (only if something is new)."""
    teacher_id, class_id, stage = (int(job.payload[k]) for k in ("teacher_id", "class_id", "stage"))
    teacher = await Teacher.get_or_none(id=teacher_id)
    klass = await SchoolClass.get_or_none(id=class_id)
    if teacher is None or klass is None:
        return
    steps = await SignatureStep.filter(teacher_id=teacher_id, stage=stage, state=StepState.OPEN,
                                       record__klass_id=class_id, record__state=RecordState.SIGNING)
    new = [s for s in steps if s.notified_at is None]
    if not new:
        return
    delay = max(settings.records.notice_delay_seconds, 1.0)
    first = min((s.opened_at for s in new if s.opened_at is not None), default=clock.now())
    if await _earlier_stage_signing(teacher_id, class_id, stage) and \
            clock.now() - first < timedelta(seconds=max(10 * delay, LOCAL_SESSION_WAIT_SECONDS)):
        # The stage before is being signed right now: more of this teacher's turns open in a moment. Wait
        # (a while at most) so that they get ONE message counting them all, not "37" and then "40". A local
        # session ends within minutes even on a busy small server; the cap only guards against a stuck one.
        raise RetryLater(delay)
    deadline = min(s.deadline for s in steps if s.deadline is not None)
    lang = settings.general.language
    w = words(lang)
    text = w("rec.notice.body", klass=esc(klass.name), year=esc(klass.year),
             role=esc(await role_text(teacher_id, class_id, stage, lang)), n=len(steps),
             when=local_time(deadline, settings.general.timezone))
    minutes = await minutes_notice(settings, klass, steps, deadline)  # a minutes book: the minutes' own wording
    text = minutes.text if minutes else text
    credential = await SignerCredential.filter(teacher_id=teacher_id,
                                               state=CredentialState.APPROVED).order_by("-id").first()
    if credential is None:
        text += "\n\n" + w("rec.notice.no_credential")
    else:
        text += await preflight_text(settings, clock, queue, teacher, credential)
        if needs_pin(credential):
            text += "\n" + w("rec.notice.pin")
        elif not settings.web.public_url:  # no console link in the message (a mail has no button): say where
            text += "\n" + w("rec.notice.where")
    async with in_transaction() as conn:
        # Two notice jobs of one teacher, class and stage may run at once (turns opened across a debounce
        # bucket): whoever claims the steps first sends the one message, the other finds nothing new.
        await lock_for_transaction(conn, f"edudesk:signnotice:{teacher_id}:{class_id}:{stage}")
        claimed = await SignatureStep.filter(id__in=[s.id for s in steps], notified_at__isnull=True).using_db(
            conn).update(notified_at=clock.now())
        if not claimed:
            return
        if teacher.staff_id is not None:
            buttons = sign_buttons(settings, class_id, stage, pin=needs_pin(credential))
            await enqueue_notice(conn, queue, f"{job.key}:sent", f"staff:{teacher.staff_id}", text,
                                 buttons=minutes.buttons(buttons) if minutes else buttons)
    queue.wake()


async def _earlier_stage_signing(teacher_id: int, class_id: int, stage: int) -> bool:
    """Whether a record where this teacher still waits has an earlier signature being made now (a session
    of the stage before, local or remote, not yet done)."""
    waiting = await SignatureStep.filter(teacher_id=teacher_id, stage=stage, state=StepState.WAITING,
                                         record__klass_id=class_id,
                                         record__state=RecordState.SIGNING).values_list("record_id", flat=True)
    if not waiting:
        return False
    sessions = list(set(await SignatureStep.filter(
        record_id__in=list(waiting), stage__lt=stage, state=StepState.OPEN, session_id__isnull=False,
    ).values_list("session_id", flat=True)))
    if not sessions:
        return False
    # A local session at work, or a remote one waiting for (or putting in) the phone's confirmation: either
    # ends within minutes as a rule, and the caller waits at most LOCAL_SESSION_WAIT_SECONDS for it.
    return await SignSession.filter(id__in=sessions, state__in=[SessionState.QUEUED, SessionState.PENDING]).exists()


async def preflight_text(settings: Settings, clock: Clock, queue: JobQueue, teacher: Teacher,
                         credential: SignerCredential) -> str:
    """Pre-flight of the teacher's certificate: warnings for the teacher (returned) and for the admins."""
    from edudesk.core.signing.preflight import check_certificate, summarise
    from edudesk.core.signing.trust import trust_material

    if not credential.certificate:
        return ""
    roots, crls = trust_material(settings)
    chain = [base64.b64decode(c) for c in (credential.config or {}).get("chain", [])]
    findings = check_certificate(bytes(credential.certificate), roster_name=teacher.name, trusted_roots=roots,
                                 crls=crls, chain=chain, now=clock.now(), warn_days=settings.records.warn_days)
    if not findings:
        return ""
    summary = summarise(findings)
    day = clock.now().date().isoformat()
    codes = ",".join(sorted(f.code for f in findings))
    admin_text = f"Chứng thư số của <b>{esc(teacher.name)}</b> ({esc(teacher.code)}):\n{summary}"
    for admin in await staff_holding(Role.ADMIN, settings):
        await enqueue_notice(None, queue, f"preflight:{credential.id}:{codes}:{day}:{admin.id}",
                             f"staff:{admin.id}", admin_text)
    await enqueue_notice(None, queue, f"preflight:{credential.id}:{codes}:{day}:head", "head", admin_text)
    return "\n\n" + words(settings.general.language)("rec.notice.preflight") + f"\n{summary}"
