"""The request state machine and SLA deadlines: pure functions, no I/O (services persist the result)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from edudesk.core.config import SlaSettings
from edudesk.core.errors import InvalidTransition
from edudesk.core.words import words


class State(enum.StrEnum):
    """Where a request is: each step has its own owner and a 24-hour limit."""

    RECEIVED = "received"  # office checks it
    NEED_INFO = "need_info"  # waiting for the requester's reply
    APPROVED = "approved"  # technical staff provision
    PROVISIONING = "provisioning"  # the directory is being changed (a job)
    REJECTED = "rejected"
    DONE = "done"


class Event(enum.StrEnum):
    """What can happen to a request."""

    REPLY = "reply"  # the requester answered
    REPLY_WITH_FORM = "reply_with_form"  # ... with a corrected form: the people change, the office checks again
    ASK_INFO = "ask_info"
    APPROVE = "approve"
    REJECT = "reject"
    PROVISION = "provision"  # technical staff tapped the provisioning button
    PROVISIONED = "provisioned"  # the directory change succeeded
    PROVISION_FAILED = "provision_failed"  # the directory refused; back to technical staff
    ROW_APPROVED = "row_approved"  # the office approved a row held back (no ID, unknown ID, repeated row)


class EffectKind(enum.StrEnum):
    """What a decision makes happen, enqueued as a job in the decision's transaction."""

    MAIL = "mail"  # a mail to the requester (template named by the effect)
    CARD = "card"  # every card of the request brought up to date (core/chats/notify.py enqueue_cards)
    PROVISION = "provision"  # the directory change (job `provision`)


@dataclass(frozen=True)
class Effect:
    """A side effect the service must enqueue as a job in the same transaction."""

    kind: EffectKind
    template: str = ""


@dataclass(frozen=True)
class Decision:
    """The outcome of a transition: the new state and what must happen because of it."""

    state: State
    effects: tuple[Effect, ...] = ()


_CARD = Effect(EffectKind.CARD)
_PROVISION = Effect(EffectKind.PROVISION)


def _mail(template: str) -> Effect:
    return Effect(EffectKind.MAIL, template)


_TABLE: dict[tuple[State, Event], Decision] = {
    (State.RECEIVED, Event.ASK_INFO): Decision(State.NEED_INFO, (_mail("need_info"), _CARD)),
    (State.RECEIVED, Event.APPROVE): Decision(State.APPROVED, (_CARD,)),
    (State.RECEIVED, Event.REJECT): Decision(State.REJECTED, (_mail("rejected"), _CARD)),
    (State.RECEIVED, Event.REPLY): Decision(State.RECEIVED, (_CARD,)),
    (State.NEED_INFO, Event.REPLY): Decision(State.RECEIVED, (_CARD,)),
    (State.NEED_INFO, Event.REJECT): Decision(State.REJECTED, (_mail("rejected"), _CARD)),
    (State.NEED_INFO, Event.APPROVE): Decision(State.APPROVED, (_CARD,)),
    (State.APPROVED, Event.PROVISION): Decision(State.PROVISIONING, (_PROVISION, _CARD)),
    (State.APPROVED, Event.REJECT): Decision(State.REJECTED, (_mail("rejected"), _CARD)),
    (State.APPROVED, Event.REPLY): Decision(State.APPROVED, (_CARD,)),
    (State.PROVISIONING, Event.PROVISIONED): Decision(State.DONE, (_mail("done"), _CARD)),
    (State.PROVISIONING, Event.PROVISION_FAILED): Decision(State.APPROVED, (_CARD,)),
    (State.PROVISIONING, Event.REPLY): Decision(State.PROVISIONING, (_CARD,)),
    # A reply to a closed request re-opens it for the office: the requester may be contesting it.
    (State.REJECTED, Event.REPLY): Decision(State.RECEIVED, (_CARD,)),
    (State.DONE, Event.REPLY): Decision(State.DONE, (_CARD,)),
    # A row provisioning held back, approved after the request was done: back to technical staff for it.
    (State.DONE, Event.ROW_APPROVED): Decision(State.APPROVED, (_CARD,)),
    # New people need a new check, whatever was decided about the old ones. While the directory is being
    # changed, or once it has been, a new form cannot replace the people (it is kept with the mail).
    (State.RECEIVED, Event.REPLY_WITH_FORM): Decision(State.RECEIVED, (_CARD,)),
    (State.NEED_INFO, Event.REPLY_WITH_FORM): Decision(State.RECEIVED, (_CARD,)),
    (State.APPROVED, Event.REPLY_WITH_FORM): Decision(State.RECEIVED, (_CARD,)),
    (State.REJECTED, Event.REPLY_WITH_FORM): Decision(State.RECEIVED, (_CARD,)),
}

OPEN_STATES = (State.RECEIVED, State.NEED_INFO, State.APPROVED, State.PROVISIONING)


def transition(state: State, event: Event) -> Decision:
    """Apply an event; raises InvalidTransition with a Vietnamese message when not allowed."""
    decision = _TABLE.get((state, event))
    if decision is None:
        w = words("vi")
        raise InvalidTransition(w("workflow.refused", step=w(f"workflow.step.{event.value}"),
                                  state=w(f"state.{state.value}")))
    return decision


def deadline_for(state: State, since: datetime, sla: SlaSettings) -> datetime | None:
    """When the step that `state` starts must be finished (None: nobody on our side owes a step)."""
    hours = {State.RECEIVED: sla.check_hours, State.APPROVED: sla.provision_hours}.get(state)
    return since + timedelta(hours=hours) if hours is not None else None


def next_deadline(old: State, new: State, current: datetime | None, now: datetime,
                  sla: SlaSettings) -> datetime | None:
    """The deadline after a transition: a new step starts a new 24-hour limit; provisioning (and its
    failure) stays inside the technical step's limit; staying in a state keeps the deadline."""
    if old == new or {old, new} == {State.APPROVED, State.PROVISIONING}:
        return current
    return deadline_for(new, now, sla)
