"""The request state machine as pure functions: every pair of state and event, the deadlines, the effects."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edudesk.core.config import SlaSettings
from edudesk.core.errors import EdudeskError, InvalidTransition
from edudesk.core.requests.workflow import (
    _TABLE,
    OPEN_STATES,
    EffectKind,
    Event,
    State,
    deadline_for,
    next_deadline,
    transition,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "edudesk" / "templates" / "email"
T0 = datetime(2026, 9, 7, 8, 0, tzinfo=UTC)
SLA = SlaSettings()


@pytest.mark.parametrize(("state", "event"), list(itertools.product(State, Event)))
def test_every_pair_is_either_a_rule_or_a_refusal_in_words(state: State, event: Event) -> None:
    if (state, event) in _TABLE:
        decision = transition(state, event)
        assert decision.state in State
        assert any(e.kind is EffectKind.CARD for e in decision.effects), "every change shows on the cards"
    else:
        with pytest.raises(InvalidTransition) as refused:
            transition(state, event)
        assert isinstance(refused.value, EdudeskError) and refused.value.code == "invalid_transition"
        message = refused.value.message
        assert message.strip() and event.value not in message and f"'{state.value}'" not in message  # words


def test_each_mail_effect_names_a_template_in_both_languages() -> None:
    templates = {e.template for d in _TABLE.values() for e in d.effects if e.kind is EffectKind.MAIL}
    assert templates == {"need_info", "rejected", "done"}
    for name, lang, ext in itertools.product(templates, ("vi", "en"), ("txt", "html")):
        assert (TEMPLATES / f"{name}.{lang}.{ext}.j2").exists(), (name, lang, ext)


def test_only_the_provision_tap_starts_the_directory_change() -> None:
    starts = [(s, e) for (s, e), d in _TABLE.items() if any(x.kind is EffectKind.PROVISION for x in d.effects)]
    assert starts == [(State.APPROVED, Event.PROVISION)]


def test_closed_requests_only_open_again_by_a_reply() -> None:
    for state in set(State) - set(OPEN_STATES):
        moves = {e for (s, e) in _TABLE if s is state}
        # ... or, once done, by a row held back that the office approves late (the technical staff carry it out)
        assert moves <= {Event.REPLY, Event.REPLY_WITH_FORM, Event.ROW_APPROVED}, state


def test_every_open_state_is_reachable_from_received_and_can_end() -> None:
    reached, frontier = {State.RECEIVED}, [State.RECEIVED]
    while frontier:
        state = frontier.pop()
        for (s, _e), d in _TABLE.items():
            if s is state and d.state not in reached:
                reached.add(d.state)
                frontier.append(d.state)
    assert reached == set(State)
    for state in OPEN_STATES:  # a way out to a closed state, not only loops among open ones
        seen, todo = {state}, [state]
        while todo:
            cur = todo.pop()
            for (s, _e), d in _TABLE.items():
                if s is cur and d.state not in seen:
                    seen.add(d.state)
                    todo.append(d.state)
        assert seen - set(OPEN_STATES), state


def test_a_new_step_gets_its_own_24_hours_and_provisioning_stays_inside_the_technical_step() -> None:
    received = deadline_for(State.RECEIVED, T0, SLA)
    assert received == T0 + timedelta(hours=24)
    later = T0 + timedelta(hours=5)
    approved = next_deadline(State.RECEIVED, State.APPROVED, received, later, SLA)
    assert approved == later + timedelta(hours=24)
    # Tapping provision, and the directory failing, keep the technical step's deadline.
    assert next_deadline(State.APPROVED, State.PROVISIONING, approved, later + timedelta(hours=3), SLA) == approved
    assert next_deadline(State.PROVISIONING, State.APPROVED, approved, later + timedelta(hours=4), SLA) == approved
    # Waiting for the requester, or closed: nobody on our side owes a step.
    for state in (State.NEED_INFO, State.REJECTED, State.DONE):
        assert next_deadline(State.RECEIVED, state, received, later, SLA) is None
    # Staying in a state keeps the deadline it had (a reply does not push it back).
    assert next_deadline(State.RECEIVED, State.RECEIVED, received, later, SLA) == received


def test_the_limits_come_from_config() -> None:
    sla = SlaSettings(check_hours=8, provision_hours=48)
    assert deadline_for(State.RECEIVED, T0, sla) == T0 + timedelta(hours=8)
    assert deadline_for(State.APPROVED, T0, sla) == T0 + timedelta(hours=48)
