"""Replies that carry a corrected form, through the real intake pipeline and database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edudesk.core.accounts.models import Account
from edudesk.core.intake.domain import Population
from edudesk.core.intake.models import InboundMail
from edudesk.core.people.registry import import_registry
from edudesk.core.people.staff import Actor, Role
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from tests.mails import registry_xlsx, student_form_mail

pytestmark = pytest.mark.db
OFFICE = Actor("tg:1", "Văn phòng", frozenset({Role.OFFICE}))


async def received(app: Any, raw: bytes) -> None:
    await app.ledger.store(raw, source="cli")
    await app.worker.drain()


@pytest.fixture
async def app(app_factory: Any, tmp_path: Path) -> Any:
    app = await app_factory(inline_analysis=True)
    await import_registry(registry_xlsx(tmp_path / "sv.xlsx", [
        ("20201234", "Nguyễn Văn An", "05/03/2003", "CNTT-01 K65", ""),
        ("20205678", "Trần Thị Bình", "12/11/2002", "KTMT-02 K65", "")]), Population.STUDENT, app.settings, app.clock)
    return app


async def test_a_corrected_form_after_a_half_done_provisioning_keeps_the_accounts_already_made(app: Any) -> None:
    await received(app, student_form_mail(message_id="<half@gmail.com>"))
    request = await Request.get()
    await app.services.act(request.id, "approve", OFFICE)
    # The first run created An's account, then stopped; the request went back to technical staff.
    await Account.create(address="an.nguyenvan@sis.hust.edu.vn", population="student", person_id="20201234",
                         full_name="Nguyễn Văn An", request_id=request.id, created_at=app.clock.now())
    ack = await OutgoingMail.get(key=f"ack:{request.id}")
    await received(app, student_form_mail(message_id="<half-2@gmail.com>", subject="Re: [YC-1] bổ sung",
                                          headers={"In-Reply-To": f"<{ack.message_id}>"}))
    request = await Request.get(id=request.id)
    assert request.state == "received"  # a new form: the office checks again
    person = await RequestPerson.get(request_id=request.id)
    assert person.proposed_address == "an.nguyenvan@sis.hust.edu.vn"  # not an.nguyenvan2
    assert not [p for p in person.problems if p["code"] == "has_account"]


async def test_a_form_from_someone_else_in_the_thread_is_kept_but_not_applied(app: Any) -> None:
    await received(app, student_form_mail(message_id="<cc@gmail.com>"))
    request = await Request.get()
    ack = await OutgoingMail.get(key=f"ack:{request.id}")
    await received(app, student_form_mail(name="Trần Thị Bình", sid="20205678", message_id="<cc-2@gmail.com>",
                                          sender="Kẻ lạ <stranger@gmail.com>", subject="Re: [YC-1]",
                                          headers={"In-Reply-To": f"<{ack.message_id}>"}))
    assert [p.full_name for p in await RequestPerson.filter(request_id=request.id)] == ["Nguyễn Văn An"]
    reply = await InboundMail.get(message_id="cc-2@gmail.com")
    assert reply.request_id == request.id and reply.outcome == "reply"  # attached, for the office to read
