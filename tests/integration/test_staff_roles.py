"""Who holds a role for notices: the staff table and config.toml's [roles] alike (a config-only admin is told)."""

from __future__ import annotations

from typing import Any

import pytest

from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Role, staff_holding

pytestmark = pytest.mark.db


async def test_staff_holding_a_role_counts_config_roles_and_skips_the_disabled(app_factory: Any,
                                                                              settings_factory: Any) -> None:
    settings = settings_factory(roles={"admin": ["Hieu.Truong@hust.edu.vn", "tg:4242"], "leader": ["tg:77"]})
    app = await app_factory(settings)
    now = app.clock.now()
    by_table = await Staff.create(name="Quản trị A", roles=["admin"], created_at=now)
    by_mail = await Staff.create(name="Hiệu trưởng", email="hieu.truong@hust.edu.vn", roles=[], created_at=now)
    by_tg = await Staff.create(name="Quản trị B", telegram_id=4242, roles=["office"], created_at=now)
    await Staff.create(name="Đã nghỉ", roles=["admin"], active=False, created_at=now)
    await Staff.create(name="Văn phòng", roles=["office"], created_at=now)
    leader = await Staff.create(name="Phó hiệu trưởng", telegram_id=77, roles=[], created_at=now)

    admins = {s.id for s in await staff_holding(Role.ADMIN, settings)}
    assert admins == {by_table.id, by_mail.id, by_tg.id}
    assert [s.id for s in await staff_holding(Role.LEADER, settings)] == [leader.id]
