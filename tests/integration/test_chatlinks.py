"""One-time link codes and action tokens on the real database: used once (of two at once exactly one
wins), bound to their person, expired on time, guessing limited per account and overall, all audited."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from edudesk.core.models import AuditEvent
from edudesk.core.people.chatlinks import (
    LINK_ATTEMPTS_ALL,
    ActionRefused,
    LinkRefused,
    issue_action,
    issue_link_code,
    redeem_action,
    redeem_link_code,
)
from edudesk.core.people.models import Staff
from edudesk.core.ports import FakeClock

pytestmark = pytest.mark.db


@pytest.fixture
async def world(app_factory: Any, settings_factory: Any) -> Any:
    clock = FakeClock()
    app = await app_factory(settings_factory(web={"enabled": False}), clock=clock)
    staff = await Staff.create(name="Lê Văn Phòng", email="phong@hust.edu.vn", roles=["office"],
                               created_at=clock.now())
    return app, clock, staff


async def test_action_token_works_once_for_its_owner_until_it_expires(world: Any) -> None:
    app, clock, staff = world
    token = await issue_action(staff.id, "approve", 12, app.settings, clock, surface="zalo", version=3)
    results = await asyncio.gather(*(redeem_action(token, clock, actor="t") for _ in range(2)),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["ActionRefused", "Grant"]
    grant = next(r for r in results if not isinstance(r, Exception))
    assert (grant.staff_id, grant.action, grant.target, grant.version) == (staff.id, "approve", 12, 3)
    other = await issue_action(staff.id, "approve", 13, app.settings, clock, surface="zalo")
    with pytest.raises(ActionRefused, match="người khác"):
        await redeem_action(other, clock, actor="t", staff_id=staff.id + 1)
    clock.advance(timedelta(hours=app.settings.chat.action_link_hours, seconds=1))
    with pytest.raises(ActionRefused, match="hết hạn"):
        await redeem_action(other, clock, actor="t", staff_id=staff.id)
    with pytest.raises(ActionRefused, match="không hợp lệ"):
        await redeem_action("x" * 43, clock, actor="t")
    reasons = [e.detail["reason"] for e in await AuditEvent.filter(action="action_token_refused").order_by("id")]
    assert reasons == ["replayed", "not_yours", "expired", "forged"]


async def test_link_code_links_once_and_moves_the_account(world: Any) -> None:
    app, clock, staff = world
    before = await Staff.create(name="Người cũ", roles=[], zalo_id="z-1", created_at=clock.now())
    code = await issue_link_code(staff.id, "zalo", app.settings, clock, issued_by="test")
    linked = await redeem_link_code("zalo", "z-1", code, clock)
    assert linked.id == staff.id and linked.zalo_id == "z-1"
    assert (await Staff.get(id=before.id)).zalo_id is None  # an account belongs to one person
    with pytest.raises(LinkRefused):
        await redeem_link_code("zalo", "z-2", code, clock)
    late = await issue_link_code(staff.id, "zalo", app.settings, clock, issued_by="test")
    clock.advance(timedelta(minutes=app.settings.chat.link_code_minutes, seconds=1))
    with pytest.raises(LinkRefused):
        await redeem_link_code("zalo", "z-3", late, clock)


async def test_guessing_is_limited_overall(world: Any) -> None:
    app, clock, staff = world
    code = await issue_link_code(staff.id, "zalo", app.settings, clock, issued_by="test")
    wrong = "000000" if code != "000000" else "111111"
    for n in range(LINK_ATTEMPTS_ALL):
        with pytest.raises(LinkRefused):
            await redeem_link_code("zalo", f"attacker-{n}", wrong, clock)
    with pytest.raises(LinkRefused, match="mười phút"):
        await redeem_link_code("zalo", "attacker-x", code, clock)  # even the right code waits
    clock.advance(timedelta(minutes=11))
    fresh = await issue_link_code(staff.id, "zalo", app.settings, clock, issued_by="test")
    assert (await redeem_link_code("zalo", "owner", fresh, clock)).id == staff.id
