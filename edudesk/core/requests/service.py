"""The decision use cases: a tap from any chat surface calls one of these with the actor.

Each checks the actor's role, moves the request through the state machine, writes an audit event and
enqueues the side effects (mail, cards, provisioning) in one transaction. Two taps on one card: the
conditional update on `version` lets exactly one win; the other gets `AlreadyDecided`.
"""

from __future__ import annotations

import enum
import html
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise.transactions import in_transaction

from edudesk.core.accounts.models import PendingSecret
from edudesk.core.chats.notify import enqueue_cards, enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError, InvalidTransition, NotFound
from edudesk.core.intake import confirm
from edudesk.core.intake.models import SenderConfirmation
from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Actor, NotAllowed, Role, assignable_staff
from edudesk.core.ports import Clock
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.workflow import OPEN_STATES, Decision, EffectKind, Event, State, next_deadline, transition
from edudesk.core.secrets import load_secret_box
from edudesk.core.text import local_time, printable
from edudesk.core.words import t

if TYPE_CHECKING:
    from edudesk.core.requests.rows import RowDesk


class Action(enum.StrEnum):
    """What staff can do to a request."""

    APPROVE = "approve"
    REJECT = "reject"
    ASK_INFO = "ask_info"
    PROVISION = "provision"


EVENTS = {Action.APPROVE: Event.APPROVE, Action.REJECT: Event.REJECT, Action.ASK_INFO: Event.ASK_INFO,
          Action.PROVISION: Event.PROVISION}
ROLES: dict[Action, tuple[Role, ...]] = {
    Action.APPROVE: (Role.OFFICE, Role.HEAD), Action.REJECT: (Role.OFFICE, Role.HEAD),
    Action.ASK_INFO: (Role.OFFICE, Role.HEAD), Action.PROVISION: (Role.TECHNICAL,),
}
ACTION_LABELS = {Action.APPROVE: "Hợp lệ", Action.REJECT: "Từ chối", Action.ASK_INFO: "Yêu cầu bổ sung",
                 Action.PROVISION: "Thực hiện trên hệ thống"}


MAX_ID = 2**63  # ids in callback data and forms are untrusted: past BIGINT they are simply unknown


class _Lost(Exception):
    """The conditional update found the request changed: another tap won."""


class AlreadyDecided(EdudeskError):
    """Someone else acted on the request first, or the card was out of date."""

    code = "stale"


class RequestService:
    """approve / reject / ask_info / provision / reassign, for any chat surface."""

    def __init__(self, settings: Settings, clock: Clock, queue: JobQueue) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue

    async def refuse(self, actor: Actor, action: str, request_id: int | None, error: EdudeskError,
                     **detail: Any) -> EdudeskError:
        """Audit a refused action and hand back the error to raise (forged, stale, not allowed...)."""
        await AuditEvent.create(at=self.clock.now(), actor=actor.label, action="action_refused",
                                request_id=request_id if request_id and 0 < request_id < MAX_ID else None,
                                detail={"action": action, "reason": error.code, **detail})
        return error

    async def _last_decision(self, request: Request) -> str:
        event = await AuditEvent.filter(request_id=request.id, action__startswith="request_").order_by("-id").first()
        if event is None:
            return f"Yêu cầu YC-{request.id} đã thay đổi; vui lòng xem lại thẻ mới nhất."
        when = local_time(event.at, self.settings.general.timezone)
        return (f"Yêu cầu YC-{request.id} đã được {event.actor.split(' (')[0]} xử lý "
                f"({event.detail.get('label', event.action)}) lúc {when}.")

    async def check(self, request_id: int, action: Action | str, actor: Actor,
                    version: int | None = None) -> Request:
        """Whether `actor` may do `action` to the request as the card showed it (`version`) now; raises
        the audited error otherwise. Pickers (reasons, questions) call this before showing choices."""
        try:
            action = Action(action)
        except ValueError:
            raise await self.refuse(actor, printable(str(action), 32), request_id,
                                    EdudeskError("Thao tác không hợp lệ.", code="bad_action")) from None
        request = await Request.get_or_none(id=request_id) if 0 < request_id < MAX_ID else None
        if request is None:
            raise await self.refuse(actor, action.value, request_id if 0 < request_id < MAX_ID else None,
                                    NotFound(f"Không có yêu cầu số {str(request_id)[:20]}."))
        if not actor.has(*ROLES[action]):
            raise await self.refuse(actor, action.value, request_id, NotAllowed(
                f"Anh/Chị không có quyền '{ACTION_LABELS[action]}' (cần vai trò "
                f"{', '.join(r.value for r in ROLES[action])})."))
        if version is not None and version != request.version:
            raise await self.refuse(actor, action.value, request_id,
                                    AlreadyDecided(await self._last_decision(request)), version=version)
        try:
            transition(State(request.state), EVENTS[action])
        except InvalidTransition as exc:
            raise await self.refuse(actor, action.value, request_id,
                                    AlreadyDecided(await self._last_decision(request))) from exc
        if action in (Action.APPROVE, Action.PROVISION) and not await RequestPerson.filter(
                request_id=request.id).exists():
            raise await self.refuse(actor, action.value, request_id, EdudeskError(
                f"YC-{request.id} không có người nào (không đọc được phiếu): hãy yêu cầu bổ sung hoặc từ chối.",
                code="no_persons"))
        if action in (Action.APPROVE, Action.PROVISION) and await confirm.confirmation_pending(request):
            # An unverified school sender: one tap cannot approve it; the registry's address confirms first.
            sent = await SenderConfirmation.filter(request_id=request.id).exists()
            raise await self.refuse(actor, action.value, request_id, EdudeskError(
                t("confirm.waiting" if sent else "confirm.blocked", "vi", id=request.id), code="unverified_sender"))
        return request

    async def send_confirmation(self, request_id: int, actor: Actor, version: int | None = None) -> confirm.Sent:
        """Mail the confirmation link of an unverified sender's request (office, head, admin; audited)."""
        return await confirm.send_confirmation(self, load_secret_box(self.settings), request_id, actor, version)

    @property
    def rows(self) -> RowDesk:
        """Decisions about one row: approve a row held back, the form's spelling of a name, keep an account."""
        from edudesk.core.requests.rows import RowDesk

        return RowDesk(self)

    async def act(self, request_id: int, action: Action | str, actor: Actor, *, reason: str = "",
                  version: int | None = None, confirmed: bool = False) -> Request:
        """Apply one staff action; raises an EdudeskError with a Vietnamese message (and audits it).

        "Hợp lệ" over a difference from the registry (name, date of birth) raises `ConfirmNeeded` naming them
        unless `confirmed` (the surface's second, explicit tap)."""
        request = await self.check(request_id, action, actor, version)
        action = Action(action)
        reason = printable(reason)
        if action in (Action.REJECT, Action.ASK_INFO) and not reason:
            raise await self.refuse(actor, action.value, request_id, EdudeskError(
                "Vui lòng chọn hoặc nhập lý do.", code="reason_missing"))
        extra: dict[str, Any] = {}
        if action is Action.APPROVE:
            from edudesk.core.requests.rows import ConfirmNeeded, mismatch_rows

            lines, rows = await mismatch_rows(request)
            if rows and not confirmed:
                raise ConfirmNeeded(request.id, lines)
            extra = {"mismatch_rows": rows} if rows else {}
        decision = transition(State(request.state), EVENTS[action])
        now = self.clock.now()
        old = State(request.state)
        try:
            version_now = await self._apply(request, action, actor, decision, old, now, reason, extra)
        except _Lost:
            fresh = await Request.get(id=request.id)
            raise await self.refuse(actor, action.value, request.id,
                                    AlreadyDecided(await self._last_decision(fresh)), version=request.version) from None
        self.queue.wake()
        request.state, request.version = decision.state.value, version_now
        return request

    async def _apply(self, request: Request, action: Action, actor: Actor, decision: Decision, old: State,
                     now: datetime, reason: str, extra: dict[str, Any] | None = None) -> int:
        deadline = next_deadline(old, decision.state, request.deadline, now, self.settings.sla)
        async with in_transaction() as conn:
            won = await Request.filter(id=request.id, version=request.version).using_db(conn).update(
                state=decision.state.value, version=request.version + 1, updated_at=now,
                deadline=deadline,
                # A new deadline is a new step: it may be reminded of and escalated again; the same one not.
                reminded_at=None if deadline != request.deadline else request.reminded_at,
                escalated_at=None if deadline != request.deadline else request.escalated_at)
            if not won:
                raise _Lost
            version_now = request.version + 1
            await AuditEvent.create(at=now, actor=actor.label, action=f"request_{action.value}",
                                    request_id=request.id, using_db=conn,
                                    detail={"from": old.value, "to": decision.state.value,
                                            "label": ACTION_LABELS[action], "reason": reason,
                                            "version": version_now, **(extra or {})})
            if decision.state is State.REJECTED:
                # Passwords generated by a provisioning attempt that failed will never be mailed now.
                await PendingSecret.filter(request_id=request.id).using_db(conn).delete()
            for effect in decision.effects:
                if effect.kind is EffectKind.CARD:
                    await enqueue_cards(conn, self.queue, request.id, version_now, decision.state)
                elif effect.kind is EffectKind.PROVISION:
                    await self.queue.enqueue(JobKind.PROVISION, f"provision:{request.id}:{version_now}",
                                             {"request_id": request.id, "version": version_now}, connection=conn)
                elif effect.kind is EffectKind.MAIL and request.sender:
                    context = await self._mail_context(request, effect.template, reason)
                    await queue_mail(conn, self.queue, self.clock, self.settings,
                                     key=f"{effect.template}:{request.id}:{version_now}", template=effect.template,
                                     recipient=request.sender, context=context, request_id=request.id,
                                     in_reply_to=request.message_id, automatic=False)
        return version_now

    async def _mail_context(self, request: Request, template: str, reason: str) -> dict[str, Any]:
        context = {**mail_context(self.settings, request.sender_name), "number": request.id, "kind": request.kind,
                   "lang": request.lang or self.settings.general.language, "reason": reason}
        if template == "need_info":
            persons = await RequestPerson.filter(request_id=request.id).order_by("row")
            context["persons"] = [{"full_name": p.full_name, "staff_id": p.data.get("staff_id", ""),
                                   "student_id": p.data.get("student_id", ""),
                                   "problems": [x for x in p.problems or [] if x.get("severity") != "info"]}
                                  for p in persons]
            context["problems"] = [{"message": reason}] + [
                x for x in request.problems or [] if x.get("severity") != "info"]
        return context

    @staticmethod
    def may_reassign(request: Request, actor: Actor) -> bool:
        """The rule: a head may give an open request to someone else."""
        return actor.has(Role.HEAD) and State(request.state) in OPEN_STATES

    async def reassign_offer(self, request_id: int, actor: Actor) -> list[Staff]:
        """The staff a page offers for `reassign` (none when the actor may not reassign this request)."""
        request = await Request.get_or_none(id=request_id) if 0 < request_id < MAX_ID else None
        return await assignable_staff(limit=None) if request and self.may_reassign(request, actor) else []

    async def _reassignable(self, request_id: int, actor: Actor) -> Request:
        """The open request a head may give to someone else; refused (and audited) otherwise."""
        request = await Request.get_or_none(id=request_id) if 0 < request_id < MAX_ID else None
        if request is None:
            raise await self.refuse(actor, "reassign", request_id if 0 < request_id < MAX_ID else None,
                                    NotFound(f"Không có yêu cầu số {str(request_id)[:20]}."))
        if not actor.has(Role.HEAD):
            raise await self.refuse(actor, "reassign", request_id,
                                     NotAllowed("Chỉ trưởng bộ phận mới giao lại được yêu cầu."))
        if not self.may_reassign(request, actor):
            raise await self.refuse(actor, "reassign", request_id, AlreadyDecided(await self._last_decision(request)))
        return request

    async def reassign_choices(self, request_id: int, actor: Actor, limit: int = 20) -> list[Staff]:
        """The same offer for a picker a tap opened: a tap that may not reassign is refused and audited."""
        await self._reassignable(request_id, actor)
        return await assignable_staff(limit=limit)

    async def reassign(self, request_id: int, staff_id: int, actor: Actor) -> Request:
        """A head gives an open request to one staff member, who is told in private."""
        request = await self._reassignable(request_id, actor)
        offered = {s.id: s for s in await assignable_staff(limit=None)}
        staff = offered.get(staff_id)
        if staff is None:  # not active, or not office or technical staff: nobody the head was offered
            raise await self.refuse(actor, "reassign", request_id, NotFound("Không có cán bộ này."))
        now = self.clock.now()
        async with in_transaction() as conn:
            version_now = request.version + 1
            won = await Request.filter(id=request.id, version=request.version).using_db(conn).update(
                assignee_id=staff.id, version=version_now, updated_at=now)
            if not won:
                raise AlreadyDecided(f"Yêu cầu YC-{request.id} vừa được người khác xử lý.")
            await AuditEvent.create(at=now, actor=actor.label, action="request_reassign", request_id=request.id,
                                    detail={"assignee": staff.id, "assignee_name": staff.name,
                                            "label": f"Giao cho {staff.name}", "version": version_now},
                                    using_db=conn)
            await enqueue_cards(conn, self.queue, request.id, version_now, State(request.state))
            await enqueue_notice(conn, self.queue, f"assign:{request.id}:{version_now}", f"staff:{staff.id}",
                                 f"{html.escape(actor.name)} giao cho Anh/Chị xử lý yêu cầu YC-{request.id}.",
                                 request.id)
        self.queue.wake()
        request.assignee_id, request.version = staff.id, version_now
        return request
