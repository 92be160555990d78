"""Reminders and who is blocking: automatic reminders before a signing deadline (never in quiet hours),
escalation to the leadership after it, the vice principal's progress view and one-tap "remind everyone".

All reminders are `chat_notice` jobs, so they go through the chat's pacer (Telegram's 30 messages a second
overall and one a second per chat): a tap that reminds 200 teachers is spread out, never refused."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape as esc

from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.staff import Actor, Role, staff_holding
from edudesk.core.ports import Clock
from edudesk.core.signing.minutes_notice import minutes_notice
from edudesk.core.signing.models import (
    ClassSigner,
    ClassState,
    RecordState,
    SchoolClass,
    SchoolRecord,
    SignatureStep,
    StepState,
    Teacher,
)
from edudesk.core.signing.quiet import in_quiet_hours, parse_quiet_hours, quiet_until
from edudesk.core.signing.spec import STAGE_LABELS, Stage
from edudesk.core.signing.turns import role_text, sign_buttons, teacher_needs_pin
from edudesk.core.text import local_time
from edudesk.core.words import words

Key = tuple[int, int, int]  # (teacher, class, stage)


@dataclass(frozen=True)
class Blocking:
    """One class and stage: how many of its signers are done, and who still owes signatures."""

    class_id: int
    class_name: str
    stage: int
    done: int
    total: int
    waiting: tuple[tuple[str, str, int], ...]  # (teacher name, subjects, records still to sign)

    def text(self) -> str:
        """"10A1: Giáo viên bộ môn 9/12 — chờ Nguyễn Thị B (Hoá học, 40 HB), …"."""
        who = ", ".join(f"{n} ({s + ', ' if s else ''}{c} HB)" for n, s, c in self.waiting)
        return f"{self.class_name}: {STAGE_LABELS[Stage(self.stage)]} {self.done}/{self.total} — chờ {who}"


async def _open_by_signer(class_id: int | None = None) -> dict[Key, list[SignatureStep]]:
    query = SignatureStep.filter(state=StepState.OPEN, teacher_id__isnull=False, record__state=RecordState.SIGNING)
    if class_id is not None:
        query = query.filter(record__klass_id=class_id)
    grouped: dict[Key, list[SignatureStep]] = defaultdict(list)
    steps = await query
    # The records' classes only: prefetching the records would load every open record's PDFs (260 MB for a
    # school of 40 classes).
    ids = list({step.record_id for step in steps})  # type: ignore[attr-defined]
    klass_of: dict[int, int] = {}
    for chunk in range(0, len(ids), 900):
        klass_of.update(await SchoolRecord.filter(id__in=ids[chunk:chunk + 900]).values_list("id", "klass_id"))
    for step in steps:
        grouped[(int(step.teacher_id or 0), klass_of[step.record_id], step.stage)].append(step)  # type: ignore[attr-defined]
    return grouped


async def blocking(class_id: int | None = None) -> list[Blocking]:
    """Per class and stage with open turns: the signers done and those still to sign."""
    grouped = await _open_by_signer(class_id)
    stages = sorted({(c, s) for _, c, s in grouped})
    out = []
    for cid, stage in stages:
        klass = await SchoolClass.get(id=cid)
        signers = await ClassSigner.filter(klass_id=cid, stage=stage).order_by("position")
        waiting = []
        for signer in signers:
            steps = grouped.get((signer.teacher_id, cid, stage))
            if steps:
                teacher = await Teacher.get(id=signer.teacher_id)
                waiting.append((teacher.name, ", ".join(signer.subjects or []), len(steps)))
        out.append(Blocking(cid, klass.name, stage, len(signers) - len(waiting), len(signers), tuple(waiting)))
    return out


async def _remind(queue: JobQueue, settings: Settings, key: Key, steps: list[SignatureStep], job_key: str,
                  run_after: datetime | None, heading: str) -> bool:
    teacher = await Teacher.get(id=key[0])
    if teacher.staff_id is None:
        return False
    klass = await SchoolClass.get(id=key[1])
    deadline = min(s.deadline for s in steps if s.deadline is not None)
    lang = settings.general.language
    w = words(lang)
    buttons = sign_buttons(settings, key[1], key[2], pin=await teacher_needs_pin(key[0]))
    minutes = await minutes_notice(settings, klass, steps, deadline)  # minutes are named as minutes, not records
    if minutes is not None:
        text, buttons = f"{w(heading)}\n{minutes.text}", minutes.buttons(buttons)
    else:
        text = w(heading) + "\n" + w("rec.remind.body", klass=esc(klass.name),
                                     role=esc(await role_text(key[0], key[1], key[2], lang)), n=len(steps),
                                     when=local_time(deadline, settings.general.timezone))
    await queue.enqueue(JobKind.CHAT_NOTICE, f"notice:{job_key}",
                        {"audience": f"staff:{teacher.staff_id}", "text": text, "request_id": None,
                         "buttons": buttons}, run_after=run_after)
    return True


async def send_sign_reminders(settings: Settings, clock: Clock, queue: JobQueue) -> tuple[int, int]:
    """Remind teachers whose deadline is near and escalate those past it; nothing in quiet hours."""
    now = clock.now()
    records = settings.records
    if in_quiet_hours(now, parse_quiet_hours(records.quiet_hours), settings.general.timezone):
        return 0, 0
    before = timedelta(hours=records.remind_before_hours)
    reminded = escalated = 0
    for key, steps in (await _open_by_signer()).items():
        due = [s for s in steps if s.deadline and s.reminded_at is None and s.deadline - before <= now < s.deadline]
        if due and await SignatureStep.filter(id__in=[s.id for s in due], reminded_at__isnull=True).update(
                reminded_at=now):
            reminded += await _remind(queue, settings, key, steps, f"signremind:{key}:{now.date()}", None,
                                      "rec.remind.soon")
        late = [s for s in steps if s.deadline and s.escalated_at is None and s.deadline <= now]
        if late and await SignatureStep.filter(id__in=[s.id for s in late], escalated_at__isnull=True).update(
                escalated_at=now):
            escalated += await _escalate(queue, settings, key, late, now)
    if reminded or escalated:
        queue.wake()
    return reminded, escalated


async def _escalate(queue: JobQueue, settings: Settings, key: Key, late: list[SignatureStep], now: datetime) -> int:
    teacher = await Teacher.get(id=key[0])
    klass = await SchoolClass.get(id=key[1])
    lang = settings.general.language
    w = words(lang)
    text = w("rec.remind.late_minutes" if klass.state == ClassState.MINUTES else "rec.remind.late",
             teacher=esc(teacher.name), klass=esc(klass.name), role=esc(await role_text(key[0], key[1], key[2], lang)),
             n=len(late))
    buttons = [[{"label": w("rec.remind.all"), "action": "rec_remind", "request_id": key[1]}]]
    async with in_transaction() as conn:
        for staff in await staff_holding(Role.LEADER, settings, conn):
            await enqueue_notice(conn, queue, f"signlate:{key}:{now.date()}:{staff.id}", f"staff:{staff.id}",
                                 text, buttons=buttons)
        await enqueue_notice(conn, queue, f"signlate:{key}:{now.date()}:head", "head", text, buttons=buttons)
        await AuditEvent.create(at=now, actor="system", action="records_escalated", using_db=conn,
                                detail={"teacher": teacher.code, "class": klass.name, "records": len(late)})
    return 1


async def remind_pending(settings: Settings, clock: Clock, queue: JobQueue, actor: Actor,
                         class_id: int | None = None) -> tuple[int, datetime]:
    """One tap: remind every teacher still owing signatures (of one class, or all); paced by the chat.
    In quiet hours the reminders wait for the morning. Returns (teachers reminded, when they go out)."""
    now = clock.now()
    when = quiet_until(now, parse_quiet_hours(settings.records.quiet_hours), settings.general.timezone)
    teachers: set[int] = set()
    messages = 0
    for key, steps in (await _open_by_signer(class_id)).items():
        job_key = f"signnudge:{key}:{int(now.timestamp() // 60)}"
        if await _remind(queue, settings, key, steps, job_key, when, "rec.remind.leader"):
            teachers.add(key[0])  # one message per class and stage (each has its own Ký ngay), counted per person
            messages += 1
    await AuditEvent.create(at=now, actor=actor.label, action="records_reminded",
                            detail={"class_id": class_id, "teachers": len(teachers), "messages": messages,
                                    "at": when.isoformat()})
    queue.wake()
    return len(teachers), when


async def watch_signing(settings: Settings, clock: Clock, queue: JobQueue) -> None:
    """For the supervisor: reminders and escalations every `[chat].overdue_check_seconds`."""
    while True:
        await send_sign_reminders(settings, clock, queue)
        await asyncio.sleep(settings.chat.overdue_check_seconds)
