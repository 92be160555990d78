"""Mails that reach the decision together are decided in one transaction, in order: each sees the ones before
it (no address offered twice), and one that fails takes back only its own writes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.intake.decide import DecisionGroups
from edudesk.core.models import AuditEvent
from edudesk.core.requests.models import Request, RequestPerson
from tests.mails import student_form_mail

pytestmark = pytest.mark.db


@pytest.fixture
async def app(app_factory: Any) -> App:
    return await app_factory(inline_analysis=True)  # type: ignore[no-any-return]


async def test_namesakes_decided_together_get_one_request_each_and_different_addresses(app: App) -> None:
    ids = []
    for i in range(6):
        raw = student_form_mail(name="Nguyễn Văn An", sid=f"2022{i:04d}", message_id=f"<namesake-{i}@gmail.com>")
        ids.append((await app.ledger.store(raw, source="smtp")).mail_id)
    outcomes = await asyncio.gather(*(app.pipeline.process(i) for i in ids))
    assert outcomes == ["request_created"] * 6
    groups = app.pipeline._groups
    assert groups.decided == 6 and groups.groups < 6, (groups.groups, groups.decided)  # some shared a commit
    assert await Request.all().count() == 6
    addresses = await RequestPerson.all().values_list("proposed_address", flat=True)
    assert len(set(addresses)) == 6, addresses


async def test_a_mail_that_fails_in_a_group_takes_back_only_its_own_writes(app: App) -> None:
    groups = DecisionGroups(asyncio.Lock(), "edudesk:test-decision")
    now = app.clock.now()

    def writer(n: int, fail: bool = False) -> Any:
        async def decide() -> str:
            await AuditEvent.create(at=now, actor="system", action="mail_reprocess", mail_id=n, detail={})
            if fail:
                raise RuntimeError(f"mail {n} cannot be decided")
            return f"decided {n}"
        return decide

    results = await asyncio.gather(*(groups.decide(writer(n, fail=n == 2)) for n in range(1, 5)),
                                   return_exceptions=True)
    assert results[0] == "decided 1" and results[2:] == ["decided 3", "decided 4"]
    assert isinstance(results[1], RuntimeError)
    assert groups.groups < 4  # the failure was inside a group, not alone
    assert sorted(await AuditEvent.filter(action="mail_reprocess").values_list("mail_id", flat=True)) == [1, 3, 4]
