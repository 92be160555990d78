"""One writer per record: a signing session holds the records it signs (`school_record.held_by`, one
conditional UPDATE) from the moment their signatures are prepared until they are saved or let go, and a
session that found records held by another waits for them. Waiting is not a fixed round: whoever lets go of
records wakes the waiting sessions' jobs at once (`wake_waiting`), so twelve subject teachers who tap Ký ngay
together sign one after the other without a pause between them (and, as a local key holds a part of its
records at a time, `hold(limit=...)`, each signs a part while the one before signs the next)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from tortoise.expressions import Q

from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import Clock
from edudesk.core.signing import stages
from edudesk.core.signing.increment import CheckItem, proof
from edudesk.core.signing.models import SchoolRecord, SignatureStep, SignSession
from edudesk.core.signing.service import step_states
from edudesk.core.signing.spec import Stage


@dataclass
class Work:
    """One step a session signs now, with its held record and every step of that record."""

    step: SignatureStep
    record: SchoolRecord
    steps: list[SignatureStep] = field(default_factory=list)  # every step of the record, as held

    def proven(self) -> bool:
        """Whether the stored file is still the one the last check proved (its SHA-256 and length); a record
        without a signature has nothing to prove yet, one from before the proof was kept gets the full check."""
        if not self.record.signatures or not self.record.pdf_sha256:
            return True
        return proof(bytes(self.record.pdf)) == (self.record.pdf_length, self.record.pdf_sha256)

    def check_item(self, signed: bytes) -> CheckItem:
        """The signed PDF as the pool checks it: the full validation at issue (and for a record whose proof
        predates its keeping), else only the new revision."""
        full = None
        if self.step.stage == Stage.ISSUER:
            full = tuple(s.field for s in self.steps)
        elif self.record.signatures and not self.record.pdf_sha256:
            full = ()
        return CheckItem(signed, proof(bytes(self.record.pdf)), self.step.field, full)


class Holds:
    """Holding, letting go and waking, for the signing jobs of this process."""

    def __init__(self, clock: Clock, queue: JobQueue) -> None:
        self.clock = clock
        self.queue = queue
        self.releases = 0  # how often this process let go of records

    async def hold(self, session: SignSession, limit: int | None = None) -> tuple[list[Work], int]:
        """The session's open steps whose record it could hold (in its stage's turn, in record order), at most
        `limit` records; how many wait (held by another session, or past the limit). The records are held
        first (one conditional UPDATE) and only the held ones are read, so a session woken while another still
        holds everything costs a few short statements. A record whose step is out of turn is let go again and
        the step refused (a remote signer's session lets go of everything when any record is held by another
        one: sign_batch)."""
        steps = await SignatureStep.filter(session_id=session.id, state="open").order_by("id")
        if not steps:
            return [], 0
        free = Q(held_by__isnull=True) | Q(held_by=session.id)
        wanted = list(dict.fromkeys(s.record_id for s in steps))
        if limit is not None and len(wanted) > limit:
            wanted = cast(list[int], await SchoolRecord.filter(free, state="signing", id__in=wanted)
                          .order_by("id").limit(limit).values_list("id", flat=True))
        await SchoolRecord.filter(free, state="signing", id__in=wanted).update(held_by=session.id)
        held = {r.id: r for r in await SchoolRecord.filter(id__in=[s.record_id for s in steps], held_by=session.id)}
        by_record: dict[int, list[SignatureStep]] = {}
        for other in await SignatureStep.filter(record_id__in=list(held)):
            by_record.setdefault(other.record_id, []).append(other)
        signing = set(await SchoolRecord.filter(id__in=[s.record_id for s in steps if s.record_id not in held],
                                                state="signing").values_list("id", flat=True))
        work, waiting = [], 0
        for step in steps:
            record = held.get(step.record_id)
            if record is None:
                if step.record_id in signing:
                    waiting += 1  # held by another session
                else:
                    await self.out_of_turn(session, step, stages.OutOfOrder("Học bạ đang chờ xử lý báo sai sót."))
                continue
            try:
                stages.check_may_sign(step_states(by_record[record.id]), step.id)
            except stages.OutOfOrder as exc:
                await SchoolRecord.filter(id=record.id, held_by=session.id).update(held_by=None)
                await self.out_of_turn(session, step, exc)
                continue
            work.append(Work(step, record, by_record[record.id]))
        return work, waiting

    async def out_of_turn(self, session: SignSession, step: SignatureStep, exc: stages.OutOfOrder) -> None:
        await SignatureStep.filter(id=step.id).update(session_id=None)
        await AuditEvent.create(at=self.clock.now(), actor=session.actor, action="records_refused",
                                detail={"action": "sign", "reason": exc.code, "record": step.record_id,
                                        "field": step.field, "text": str(exc)})

    async def let_go(self, session: SignSession) -> None:
        """Let go of every record the session holds, waking the sessions that wait for them."""
        if await SchoolRecord.filter(held_by=session.id).update(held_by=None):
            await self.wake_waiting()

    async def wake_waiting(self) -> None:
        """Records were let go: sessions waiting for them (a sign_batch put back for runner.ROUND_WAIT) run now, not
        when their wait ends. A session that put itself back just after this still runs at its
        round (or at once: `releases` changed while it looked, runner.sign_batch)."""
        self.releases += 1
        now = self.clock.now()
        if await Job.filter(kind=JobKind.SIGN_BATCH, state="pending", run_after__gt=now).update(run_after=now):
            self.queue.wake()
