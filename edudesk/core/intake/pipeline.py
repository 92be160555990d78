"""The `process_mail` job: from a stored raw mail to a checked request, an attached reply, or a
quarantined/ignored mail — each with an audit entry and, where a person wrote, an answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_cards, enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.db import dialect, lock_for_transaction, within_transaction
from edudesk.core.errors import EdudeskError, InvalidTransition
from edudesk.core.intake.checks import FREE_MAIL_OFFICIAL, Checked, check_request
from edudesk.core.intake.decide import DecisionGroups
from edudesk.core.intake.domain import ExtractedRequest, IncomingMail, Kind, Population, Severity
from edudesk.core.intake.filters import FILTERS, Filter, MailContext
from edudesk.core.intake.loops import may_auto_reply
from edudesk.core.intake.models import InboundMail
from edudesk.core.intake.partial import is_partial, partial_reply
from edudesk.core.intake.sender import from_untrusted, sender_domain, sender_verification
from edudesk.core.intake.threading import request_number_from_subject, thread_keys
from edudesk.core.jobs import Handlers, JobKind, JobQueue
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import Clock, MailAnalyser
from edudesk.core.prepared import Prepared
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from edudesk.core.requests.workflow import Event, State, deadline_for, next_deadline, transition
from edudesk.core.words import words

log = logging.getLogger(__name__)
# Sent for every mail, so built once (core/prepared.py).
_MAIL = Prepared(lambda conn, _shape, mail_id: InboundMail.filter(id=mail_id).limit(1).using_db(conn))
_FINISH = Prepared(lambda conn, _shape, mail_id, state, outcome, request_id: InboundMail.filter(id=mail_id).using_db(
    conn).update(state=state, outcome=outcome, request_id=request_id))
DECISION_LOCK = "edudesk:decision"  # the advisory lock of request decisions (PostgreSQL)


async def find_thread(mail: IncomingMail) -> Request | None:
    """The request a reply belongs to: by In-Reply-To/References, else by the number in the subject."""
    keys = [k for k in thread_keys(mail) if k]
    if keys:
        out = await OutgoingMail.filter(message_id__in=keys, request_id__not_isnull=True).first()
        if out is not None:
            return await Request.get_or_none(id=out.request_id)
        inbound = await InboundMail.filter(message_id__in=keys, request_id__not_isnull=True).first()
        if inbound is not None:
            return await Request.get_or_none(id=inbound.request_id)  # type: ignore[attr-defined]
    number = request_number_from_subject(mail.subject)
    if number is not None:
        request = await Request.get_or_none(id=number)
        # A bare number in a subject is easy to guess: only the requester threads by it.
        if request is not None and request.sender == mail.from_addr and not from_untrusted(mail):
            return request
    return None


class IntakePipeline:
    """Runs the intake filters in order for one stored mail; safe to run twice for the same mail."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue, analyser: MailAnalyser,
                 headers_only: Any, filters: Sequence[Filter] = FILTERS) -> None:
        self.filters = tuple(filters)
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.analyser = analyser
        self.headers_only = headers_only  # raw -> IncomingMail from the header block alone
        self._deciding = asyncio.Lock()
        self._groups = DecisionGroups(self._deciding, DECISION_LOCK)  # new requests, decided several at a time

    def handlers(self) -> Handlers:
        """The job this package runs: turn a stored mail into a request."""
        return {JobKind.PROCESS_MAIL: self.job}

    async def job(self, job: Job) -> None:
        """Job handler of `process_mail`."""
        await self.process(int(job.payload["mail_id"]))

    async def process(self, mail_id: int) -> str | None:
        """Process one stored mail (idempotent: a mail already processed is left alone): run the filters in
        order until one finishes it; returns its outcome (None when there was nothing to do)."""
        found = await _MAIL.rows(InboundMail._choose_db(), (mail_id,))
        if not found or found[0]["state"] != "pending":
            return None
        row = InboundMail._init_from_db(**found[0])
        ctx = MailContext(self, row, bytes(row.content))
        try:
            return await self._run(ctx, self.filters)
        finally:
            self.queue.wake()

    async def _run(self, ctx: MailContext, filters: Sequence[Filter]) -> str | None:
        """Each filter in turn; from the first one that `decides`, the rest run inside the decision."""
        for index, step in enumerate(filters):
            if step.decides:
                return await self._groups.decide(partial(self._run_each, ctx, tuple(filters[index:])))
            outcome = await self._run_each(ctx, (step,))
            if outcome is not None:
                return outcome
        return None

    @staticmethod
    async def _run_each(ctx: MailContext, filters: Sequence[Filter]) -> str | None:
        for step in filters:
            ctx.seen.append(step.name)
            outcome = await step.run(ctx)
            if outcome is not None:
                log.debug("mail %s: %s by the %s filter (after %s)", ctx.row.id, outcome, step.name, ctx.seen)
                return outcome
        return None

    @property
    def own_addresses(self) -> tuple[str, ...]:
        """The office's own addresses: never answered automatically, whatever the mail says."""
        s = self.settings
        found = (s.outgoing.from_address, s.institution.office_address, *s.smtpd.recipients, s.imap.username)
        return tuple(dict.fromkeys(a.strip().lower() for a in found if "@" in a))

    @staticmethod
    def _with_envelope(row: InboundMail, mail: IncomingMail) -> IncomingMail:
        """The SMTP envelope's null sender (MAIL FROM:<>) is the Return-Path the header block lacks."""
        if row.source == "smtp" and row.envelope_from in ("<>", "") and mail.return_path is None:
            return replace(mail, return_path="")
        return mail

    async def _finish(self, row: InboundMail, state: str, outcome: str, mail: IncomingMail | None,
                      conn: BaseDBAsyncClient | None = None, request_id: int | None = None,
                      detail: dict[str, Any] | None = None) -> None:
        async def write(c: BaseDBAsyncClient) -> None:
            await _FINISH.count(c, (row.id, state, outcome, request_id))
            await AuditEvent.create(at=self.clock.now(), actor="system", action=f"mail_{outcome}",
                                    request_id=request_id, mail_id=row.id, detail=detail or {}, using_db=c)
        if conn is not None:
            await write(conn)
        else:
            async with in_transaction() as c:
                await write(c)

    async def _quarantine(self, row: InboundMail, mail: IncomingMail, outcome: str, template: str,
                          detail: dict[str, Any]) -> None:
        """Park a mail we cannot read and tell the sender (unless it is automatic)."""
        async with in_transaction() as conn:
            await self._finish(row, "quarantined", outcome, mail, conn,
                               detail={**detail, "from": mail.from_addr, "subject": mail.subject[:200]})
            if may_auto_reply(mail, self.own_addresses):
                await queue_mail(conn, self.queue, self.clock, self.settings, key=f"{outcome}:{row.id}",
                                 template=template, recipient=self._reply_address(mail),
                                 context={**self._base_context(mail), **detail, "original_subject": mail.subject},
                                 in_reply_to=mail.message_id, references=mail.references)
        self.queue.wake()

    async def _find_thread(self, mail: IncomingMail) -> Request | None:
        return await find_thread(mail)

    @asynccontextmanager
    async def _decision(self) -> AsyncIterator[None]:
        """Checking (free addresses, open duplicates) and saving a request are one step.

        Two mails processed at once must not both be offered an.nguyenvan, nor miss each other as
        duplicates: one decision at a time in this process, and on PostgreSQL across replicas too, through
        an advisory lock held by a transaction that the check and the save run inside.
        """
        async with self._deciding:
            if dialect() != "postgres":
                yield  # SQLite: one process writes; the in-process lock is the whole story
                return
            async with in_transaction() as conn:
                await lock_for_transaction(conn, DECISION_LOCK)
                yield

    async def _attach_reply(self, row: InboundMail, mail: IncomingMail, request: Request,
                            extracted: ExtractedRequest | None) -> None:
        """A reply joins its request; it re-opens a request waiting for information."""
        async with self._decision():
            for _ in range(5):
                if await self._update_from_reply(row, mail, request, extracted):
                    break
                # A staff decision landed in between: apply the reply to the state it left.
                request = await Request.get(id=request.id)
            else:
                raise RuntimeError(f"request {request.id} keeps changing; the reply job will retry")
        if request.kind == Kind.DELETE_ACCOUNTS.value and not from_untrusted(mail):
            await self._keep_from_reply(request.id, mail)
        self.queue.wake()

    async def _keep_from_reply(self, request_id: int, mail: IncomingMail) -> None:
        """The unit answers a deletion with "giữ lại"/"không xoá" and an ID or address: those accounts are kept."""
        from edudesk.core.requests.service import RequestService

        try:
            await RequestService(self.settings, self.clock, self.queue).rows.keep_by_reply(
                request_id, mail.text, mail.from_addr,
                verified=sender_verification(mail, self.settings).verified is True)
        except EdudeskError as exc:  # kept a moment ago by the office, or deleted: the reply stays on record
            log.info("reply to YC-%s: account not kept (%s)", request_id, exc.code)

    async def _update_from_reply(self, row: InboundMail, mail: IncomingMail, request: Request,
                                 extracted: ExtractedRequest | None) -> bool:
        now = self.clock.now()
        state = State(request.state)
        decision = transition(state, Event.REPLY)
        checked = None
        form_kept = False
        fields_updated: list[str] = []  # a reply with only the missing fields: merged (core/intake/partial.py)
        if extracted is not None and is_partial(extracted) and state in (State.RECEIVED, State.NEED_INFO) \
                and mail.from_addr.lower() == request.sender.lower() and not from_untrusted(mail):
            merged = await partial_reply(request, extracted)
            extracted, fields_updated = merged if merged is not None else (None, [])
        if extracted is not None and extracted.persons:
            try:
                if mail.from_addr.lower() != request.sender.lower() or from_untrusted(mail):
                    # Someone else in the thread (a colleague in Cc): their form is kept, not applied.
                    raise InvalidTransition("not the requester")
                decision = transition(state, Event.REPLY_WITH_FORM)
            except InvalidTransition:
                form_kept = True  # provisioning or done, or not the requester: the office is told below
            else:
                # The requester's corrected form: check it again (as the request's kind and population)
                # and replace the people.
                extracted = ExtractedRequest(Kind(request.kind), Population(request.population), extracted.persons,
                                             extracted.source, extracted.problems, extracted.unit)
                checked = await check_request(extracted, mail, self.settings, exclude_request=request.id, reply=True)
        version = request.version + 1
        changes: dict[str, Any] = {"state": decision.state.value, "updated_at": now, "version": version}
        deadline = next_deadline(state, decision.state, request.deadline, now, self.settings.sla)
        if deadline != request.deadline:
            changes["deadline"] = deadline
            changes["reminded_at"] = changes["escalated_at"] = None
        if checked is not None:
            changes.update(problems=[p.to_json() for p in checked.problems], flags=checked.flags,
                           auth_results=checked.auth_results, sender_verified=checked.verified)
        try:
            async with in_transaction() as conn:
                if not await Request.filter(id=request.id, version=request.version).using_db(conn).update(**changes):
                    raise Raced
                if checked is not None:
                    await RequestPerson.filter(request_id=request.id).using_db(conn).delete()
                    await self._save_persons(conn, request.id, checked)
                await self._finish(row, "processed", "reply", mail, conn, request.id, detail={
                    "from": mail.from_addr, "state": decision.state.value, "updated_form": checked is not None,
                    "form_not_applied": form_kept, "fields_updated": fields_updated, "filter": "thread"})
                await enqueue_cards(conn, self.queue, request.id, version, decision.state)
                notice = ""
                if form_kept:
                    notice = (f"<b>YC-{request.id}</b>: có phiếu mới trong thư trả lời nhưng không được áp dụng "
                              "(yêu cầu đã/đang được thực hiện, hoặc người gửi không phải người đề nghị) — "
                              "xem thư trên trang quản trị.")
                elif decision.state != state:
                    what = "đã bổ sung thông tin" if state is State.NEED_INFO else "đã trả lời lại"
                    notice = f"<b>YC-{request.id}</b>: người gửi {what}; yêu cầu được mở lại để kiểm tra."
                elif checked is not None:
                    notice = f"<b>YC-{request.id}</b>: người gửi gửi phiếu đã sửa; danh sách đã được kiểm tra lại."
                if notice:
                    # The card is edited in place, far up the chat by now: say so where people look.
                    await enqueue_notice(conn, self.queue, f"reply:{request.id}:{version}", "office", notice,
                                         request.id)
        except Raced:
            return False
        return True

    async def _save_persons(self, conn: BaseDBAsyncClient, request_id: int, checked: Checked) -> None:
        await RequestPerson.bulk_create([
            RequestPerson(request_id=request_id, row=i, person_id=p.person_id, full_name=p.full_name,
                          proposed_address=p.proposed_address, data=p.to_json(),
                          problems=[x.to_json() for x in checked.person_problems[i]])
            for i, p in enumerate(checked.persons)
        ], batch_size=500, using_db=conn)

    async def _check_and_create(self, row: InboundMail, mail: IncomingMail, extracted: ExtractedRequest) -> None:
        """A new request with its findings, deadline, audit entry and acknowledgement, in one transaction (the
        `create_request` filter, inside the decision)."""
        now = self.clock.now()
        checked = await check_request(extracted, mail, self.settings)
        # Circular 53/2012 with [intake].free_mail_official = "refuse": official business from free mail is
        # refused here, with a mail naming the rule (the office still sees the request, closed).
        refused = FREE_MAIL_OFFICIAL in checked.flags and self.settings.intake.free_mail_official == "refuse"
        received_at = row.received_at
        # Inside the decision's savepoint for this mail (decide.py), which takes all of it back on an error; the
        # card's and the answer's jobs in one statement.
        async with within_transaction() as conn, self.queue.gathered(conn):
            request = await Request.create(
                kind=extracted.kind.value, population=extracted.population.value,
                state=(State.REJECTED if refused else State.RECEIVED).value, sender_verified=checked.verified,
                sender=mail.from_addr, sender_name=mail.from_name, subject=mail.subject[:900],
                message_id=mail.message_id, unit=extracted.unit, source=extracted.source,
                problems=[p.to_json() for p in checked.problems], flags=checked.flags,
                auth_results=checked.auth_results, lang=self.settings.general.language,
                received_at=received_at,
                deadline=None if refused else deadline_for(State.RECEIVED, received_at, self.settings.sla),
                updated_at=now, using_db=conn,
            )
            await self._save_persons(conn, request.id, checked)
            await self._finish(row, "processed", "request_created", mail, conn, request.id, detail={
                "kind": request.kind, "population": request.population, "persons": len(checked.persons),
                "problems": count_problems(checked), "flags": checked.flags, "from": mail.from_addr,
                "filter": "create_request"})
            await enqueue_cards(conn, self.queue, request.id, 0, State.REJECTED if refused else State.RECEIVED)
            if refused:
                await self._refuse_free_mail(conn, request, mail)
            elif may_auto_reply(mail, self.own_addresses):
                no_form = not checked.persons
                ack = "question" if extracted.kind is Kind.QUESTION else "unreadable" if no_form else "received"
                await queue_mail(
                    conn, self.queue, self.clock, self.settings, key=f"ack:{request.id}",
                    template=ack, recipient=self._reply_address(mail),
                    context=self._request_context(request, mail, checked, extracted),
                    request_id=request.id, in_reply_to=mail.message_id, references=mail.references,
                )

    async def _refuse_free_mail(self, conn: BaseDBAsyncClient, request: Request, mail: IncomingMail) -> None:
        """Close an official request sent from free mail (Circular 53/2012): audited, the sender told why."""
        w = words(request.lang)
        reason = w("freemail.refused", kind=w.label("mailkind", request.kind), domain=sender_domain(mail.from_addr),
                   domains=", ".join(self.settings.institution.domains))
        await AuditEvent.create(at=self.clock.now(), actor="system", action="request_reject", request_id=request.id,
                                using_db=conn, detail={"from": State.RECEIVED.value, "to": State.REJECTED.value,
                                                       "label": words("vi")("freemail.label"), "reason": reason,
                                                       "version": 0, "filter": "create_request"})
        if may_auto_reply(mail, self.own_addresses):
            await queue_mail(conn, self.queue, self.clock, self.settings, key=f"rejected:{request.id}:0",
                             template="rejected", recipient=self._reply_address(mail),
                             context={**self._base_context(mail), "number": request.id, "kind": request.kind,
                                      "lang": request.lang, "reason": reason},
                             request_id=request.id, in_reply_to=mail.message_id, references=mail.references)

    def _reply_address(self, mail: IncomingMail) -> str:
        return mail.from_addr

    def _base_context(self, mail: IncomingMail) -> dict[str, Any]:
        return mail_context(self.settings, mail.from_name)

    def _request_context(self, request: Request, mail: IncomingMail, checked: Checked,
                         extracted: ExtractedRequest) -> dict[str, Any]:
        """What the acknowledgement says: only what the sender wrote, never what the registry knows.

        The mail goes to whoever typed an ID; the registry's name, date of birth, accounts, proposed
        addresses (their numbering shows who exists) and other open requests stay with the office.
        """
        deadline: datetime | None = request.deadline
        written = [[p for p in extracted.problems if p.row == i and p.severity is not Severity.INFO]
                   for i in range(len(checked.persons))]
        return {
            **self._base_context(mail),
            "number": request.id, "kind": request.kind,
            "deadline": deadline.isoformat() if deadline else None,
            "persons": [{"full_name": p.full_name, "student_id": p.student_id, "staff_id": p.staff_id,
                         "problems": [x.to_json() for x in written[i]]}
                        for i, p in enumerate(checked.persons)],
            # The form reader's own findings about the request (not the person rows), plus the sender checks.
            "problems": [p.to_json() for p in checked.problems],
            # The attachment we could not open, named in the "unreadable" answer.
            "filename": next((a.filename for a in mail.attachments for p in checked.problems
                              if p.field == "attachment" and a.filename and a.filename in p.message), ""),
        }


class Raced(Exception):
    """The request changed between reading and writing it (a staff decision): read it again."""


def count_problems(checked: Checked) -> int:
    """The findings of a checked request: its own and its people's."""
    return len(checked.problems) + sum(len(p) for p in checked.person_problems)
