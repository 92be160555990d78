"""Where a staff member's own notices go is their choice, made through one use case (the console's /whoami
form calls it): a person who is no staff member, or a value naming no channel, changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from edudesk.core.errors import EdudeskError, NotAllowed
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Actor, Role, choose_notify_via

pytestmark = pytest.mark.db


async def test_a_staff_member_chooses_where_notices_go_and_the_choice_is_audited(app_factory: Any) -> None:
    app = await app_factory()
    staff = await Staff.create(name="Cô Hoa", roles=["teacher"], created_at=app.clock.now())
    me = Actor(f"web:{staff.id}", staff.name, frozenset({Role.TEACHER}), staff.id)
    await choose_notify_via(me, "email", app.clock.now())
    assert (await Staff.get(id=staff.id)).notify_via == "email"
    [event] = await AuditEvent.filter(action="notify_via_changed")
    assert event.detail == {"staff_id": staff.id, "notify_via": "email"} and event.actor == me.label

    with pytest.raises(EdudeskError) as bad:
        await choose_notify_via(me, "fax", app.clock.now())
    assert bad.value.code == "bad_notify_via"
    with pytest.raises(NotAllowed):
        await choose_notify_via(Actor("tg:5", "Người lạ", frozenset({Role.TEACHER})), "telegram", app.clock.now())
    assert (await Staff.get(id=staff.id)).notify_via == "email"
    assert await AuditEvent.filter(action="notify_via_changed").count() == 1
