"""The ledger commits mails that arrive together in one transaction (group commit): each sender still gets
its own id only once its mail is stored with its job, and a duplicate inside a group fails alone."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.intake.models import InboundMail
from edudesk.core.jobs import JobKind
from edudesk.core.models import Job
from tests.mails import student_form_mail

pytestmark = pytest.mark.db


@pytest.fixture
async def app(app_factory: Any) -> App:
    return await app_factory(inline_analysis=True)  # type: ignore[no-any-return]


def _mail(n: int) -> bytes:
    return student_form_mail(sid=f"2020{n:04d}", message_id=f"<group-{n}@gmail.com>")


async def test_mails_stored_at_once_each_get_their_own_row_and_job(app: App) -> None:
    results = await asyncio.gather(*(app.ledger.store(_mail(n), source="smtp") for n in range(30)))
    ids = [r.mail_id for r in results]
    assert len(set(ids)) == 30 and not any(r.duplicate for r in results)
    rows = dict(await InboundMail.all().values_list("id", "message_id"))
    assert {rows[r.mail_id] for r in results} == {f"group-{n}@gmail.com" for n in range(30)}
    keys = set(await Job.filter(kind=JobKind.PROCESS_MAIL).values_list("key", flat=True))
    assert keys == {f"process_mail:{i}" for i in ids}


async def test_the_same_mail_twice_in_one_group_is_stored_once_and_the_others_are_kept(app: App) -> None:
    raws = [_mail(1), _mail(2), _mail(1), _mail(3), _mail(1)]
    results = await asyncio.gather(*(app.ledger.store(raw, source="smtp") for raw in raws))
    assert await InboundMail.all().count() == 3
    assert await Job.filter(kind=JobKind.PROCESS_MAIL).count() == 3
    same = {r.mail_id for raw, r in zip(raws, results, strict=True) if raw == raws[0]}
    assert len(same) == 1
    assert sum(not r.duplicate for r in results) == 3


async def test_the_listener_backlog_counts_answers_due_now_but_not_those_waiting_for_a_retry(app: App) -> None:
    await app.ledger.store(_mail(1), source="smtp")
    queue, now = app.ledger.queue, app.ledger.clock.now()
    await queue.enqueue(JobKind.SEND_MAIL, "send_mail:1", {"outgoing_id": 1})
    await queue.enqueue(JobKind.SEND_MAIL, "send_mail:2", {"outgoing_id": 2},
                        run_after=now + timedelta(minutes=5))  # the relay failed: retried later
    await queue.enqueue(JobKind.CHAT_NOTICE, "notice:x", {"audience": "office", "text": "x"})
    assert await app.ledger.backlog() == 2
