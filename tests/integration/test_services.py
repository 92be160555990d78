"""The decision services against a real database: roles, stale and forged taps, double taps, provisioning,
and the password kept out of everything but the requester's mail."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.accounts.models import Account, AccountLog, PendingSecret
from edudesk.core.errors import EdudeskError
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.models import Staff
from edudesk.core.people.staff import Actor, NotAllowed, Role, actor_for_telegram
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from edudesk.core.requests.service import AlreadyDecided
from edudesk.directories.local import verify_password

pytestmark = pytest.mark.db

OFFICE = Actor("tg:1", "Lê Văn Phòng", frozenset({Role.OFFICE}))
TECH = Actor("tg:2", "Trần Kỹ Thuật", frozenset({Role.TECHNICAL}))
STRANGER = Actor("tg:9", "Người Lạ", frozenset())


async def make_request(app: Any, kind: str = "new_account", people: int = 1) -> Request:
    now = app.clock.now()
    request = await Request.create(kind=kind, population="student", state="received", sender="an.nv@gmail.com",
                                   sender_name="Nguyễn Văn An", subject="Cấp tài khoản", received_at=now,
                                   deadline=now + timedelta(hours=24), updated_at=now)
    for i in range(people):
        await RequestPerson.create(request=request, row=i, person_id=f"2021{i:04d}", full_name=f"Nguyễn Văn An {i}",
                                   proposed_address=f"an.nv{i}@sis.hust.edu.vn",
                                   data={"student_id": f"2021{i:04d}", "full_name": f"Nguyễn Văn An {i}"})
    return request


def body_of(path: Path) -> str:
    """The plain-text body of a stored mail, decoded."""
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    part = message.get_body(("plain",))
    return part.get_content() if part is not None else ""  # type: ignore[union-attr]


async def test_approve_then_provision_creates_the_account_and_mails_the_password_once(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    # delivery = "mail": the password inside the result mail (the default is a one-time link).
    app = await app_factory(settings_factory(provisioning={"delivery": "mail"}), clock=clock, inline_analysis=True)
    request = await make_request(app)
    await app.services.act(request.id, "approve", OFFICE, version=0)
    await app.services.act(request.id, "provision", TECH, version=1)
    await app.worker.drain()
    request = await Request.get(id=request.id)
    assert request.state == "done"
    account = await Account.get(address="an.nv0@sis.hust.edu.vn")
    done = await OutgoingMail.get(key=f"done:{request.id}")
    assert done.state == "sent" and done.recipient == "an.nv@gmail.com"
    # The one place the password lives: the maildir sink's copy of the result mail.
    outbox = app.settings.path(app.settings.outgoing.maildir) / "new"
    (message,) = [m for m in map(body_of, outbox.iterdir()) if "Mật khẩu tạm thời: " in m]
    password = message.split("Mật khẩu tạm thời: ")[1].split()[0]
    assert verify_password(password, account.password_hash)
    assert not await PendingSecret.all().exists(), "sealed password must be deleted once sent"
    for event in await AuditEvent.all():
        assert password not in str(event.detail) and password not in event.actor
    for job in await Job.all():
        assert password not in str(job.payload)
    actions = [e.action for e in await AuditEvent.filter(request_id=request.id).order_by("id")]
    assert actions[:3] == ["request_approve", "request_provision", "request_provisioned"]


async def test_a_tap_without_the_role_is_refused_and_audited(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await make_request(app)
    with pytest.raises(NotAllowed):
        await app.services.act(request.id, "approve", STRANGER)
    with pytest.raises(NotAllowed):
        await app.services.act(request.id, "provision", OFFICE)
    assert (await Request.get(id=request.id)).state == "received"
    refused = await AuditEvent.filter(action="action_refused").order_by("id")
    assert [e.detail["reason"] for e in refused] == ["not_allowed", "not_allowed"]
    assert refused[0].actor == "Người Lạ (tg:9)"


async def test_forged_and_stale_taps_change_nothing(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await make_request(app)
    with pytest.raises(EdudeskError) as unknown:
        await app.services.act(999, "approve", OFFICE)
    assert unknown.value.code == "not_found"
    with pytest.raises(EdudeskError) as bad:
        await app.services.act(request.id, "drop_table", OFFICE)
    assert bad.value.code == "bad_action"
    await app.services.act(request.id, "approve", OFFICE, version=0)
    with pytest.raises(AlreadyDecided) as stale:
        await app.services.act(request.id, "reject", OFFICE, reason="x", version=0)
    assert "Lê Văn Phòng" in stale.value.message and "Hợp lệ" in stale.value.message
    assert (await Request.get(id=request.id)).state == "approved"
    assert await AuditEvent.filter(action="action_refused").count() == 3


async def test_two_people_tapping_at_once_exactly_one_wins(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await make_request(app)
    other = Actor("tg:3", "Phạm Thị Hai", frozenset({Role.OFFICE}))
    results = await asyncio.gather(
        app.services.act(request.id, "approve", OFFICE, version=0),
        app.services.act(request.id, "reject", other, reason="Trùng yêu cầu", version=0),
        return_exceptions=True)
    wins = [r for r in results if isinstance(r, Request)]
    losses = [r for r in results if isinstance(r, AlreadyDecided)]
    assert len(wins) == 1 and len(losses) == 1
    decisions = await AuditEvent.filter(request_id=request.id, action__in=["request_approve", "request_reject"])
    assert len(decisions) == 1


async def test_reject_and_ask_info_need_a_reason_and_mail_it(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await make_request(app)
    with pytest.raises(EdudeskError) as missing:
        await app.services.act(request.id, "ask_info", OFFICE, reason="  ")
    assert missing.value.code == "reason_missing"
    await app.services.act(request.id, "ask_info", OFFICE, reason="Đề nghị bổ sung số điện thoại")
    await app.worker.drain()
    mail = await OutgoingMail.get(request_id=request.id, template="need_info")
    assert mail.state == "sent"
    outbox = app.settings.path(app.settings.outgoing.maildir) / "new"
    assert any("Đề nghị bổ sung số điện thoại" in body_of(p) for p in outbox.iterdir())
    assert (await Request.get(id=request.id)).state == "need_info"


async def test_a_taken_address_takes_the_next_free_suffix_and_the_requester_is_told_it(app_factory: Any,
                                                                                        settings_factory: Any) -> None:
    app = await app_factory(settings_factory(provisioning={"delivery": "mail"}), inline_analysis=True)
    request = await make_request(app, people=2)
    await Account.create(address="an.nv0@sis.hust.edu.vn", population="student", person_id="someone-else",
                         created_at=app.clock.now())
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    request = await Request.get(id=request.id)
    assert request.state == "done"
    first, second = await RequestPerson.filter(request_id=request.id).order_by("row")
    # an.nv1 is proposed for the list's second person: the first takes an.nv2, the second keeps its own.
    assert (first.final_address, second.final_address) == ("an.nv2@sis.hust.edu.vn", "an.nv1@sis.hust.edu.vn")
    assert (await Account.get(address="an.nv0@sis.hust.edu.vn")).person_id == "someone-else"
    outbox = app.settings.path(app.settings.outgoing.maildir) / "new"
    (message,) = [m for m in map(body_of, outbox.iterdir()) if "Mật khẩu tạm thời: " in m]
    assert "an.nv2@sis.hust.edu.vn" in message and "an.nv0@" not in message


async def test_provisioning_job_run_twice_creates_one_account_with_one_password(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await make_request(app, kind="bulk_new_accounts", people=3)
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    job = await Job.get(kind="provision")
    # A crash after the directory calls and before the state change: the job runs again.
    first = app.provisioning._passwords
    seen: list[str] = []

    async def spy(request_id: int, persons: list[Any]) -> dict[int, tuple[str, str]]:
        got = await first(request_id, persons)
        seen.extend(pw for _, pw in got.values())
        return got

    app.provisioning._passwords = spy  # type: ignore[method-assign]
    await app.provisioning(job)
    await Request.filter(id=request.id).update(state="provisioning", version=2)  # as if the finish never landed
    await RequestPerson.filter(request_id=request.id).update(outcome="")  # ... nor the rows' outcomes
    await app.provisioning(job)
    assert await Account.all().count() == 3
    assert seen[:3] == seen[3:6], "a re-run must set the same passwords it already generated"


async def test_roles_come_from_config_and_from_the_staff_table(app_factory: Any, settings_factory: Any) -> None:
    settings = settings_factory(roles={"office": ["tg:11"], "technical": ["thuy@hust.edu.vn"]})
    app = await app_factory(settings, inline_analysis=True)
    await Staff.create(name="Thuỷ", email="thuy@hust.edu.vn", telegram_id=12, roles=["head"],
                       created_at=app.clock.now())
    a = await actor_for_telegram(11, "X", settings)
    b = await actor_for_telegram(12, "Y", settings)
    c = await actor_for_telegram(13, "Z", settings)
    assert a.roles == {Role.OFFICE}
    assert b.roles == {Role.TECHNICAL, Role.HEAD} and b.name == "Thuỷ"
    assert c.roles == frozenset()


async def test_a_request_without_a_registry_match_cannot_take_over_an_existing_account(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await make_request(app)
    await RequestPerson.filter(request_id=request.id).update(person_id="")
    await Account.create(address="an.nv0@sis.hust.edu.vn", population="staff", person_id="",
                         full_name="Hiệu trưởng", password_hash="x", created_at=app.clock.now())
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "done"  # under the next free address
    assert (await Account.get(address="an.nv0@sis.hust.edu.vn")).password_hash == "x"  # never touched
    assert (await RequestPerson.get(request_id=request.id)).final_address == "an.nv1@sis.hust.edu.vn"


async def test_a_request_with_nobody_on_it_cannot_be_approved_or_provisioned(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await make_request(app, people=0)
    with pytest.raises(EdudeskError) as refused:
        await app.services.act(request.id, "approve", OFFICE)
    assert refused.value.code == "no_persons"
    await Request.filter(id=request.id).update(state="provisioning")  # as if it got there anyway
    await app.queue.enqueue("provision", "provision:x", {"request_id": request.id})
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "approved"  # handed back
    assert not await OutgoingMail.filter(template="done").exists()


async def test_a_reassignment_during_provisioning_does_not_leave_it_stuck(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    head = Actor("tg:5", "Trưởng phòng", frozenset({Role.HEAD}))
    staff = await Staff.create(name="Kỹ thuật 2", roles=["technical"], created_at=app.clock.now())
    request = await make_request(app)
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    await app.services.reassign(request.id, staff.id, head)  # version bumps while the job is queued
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "done"
    assert await Account.filter(address="an.nv0@sis.hust.edu.vn").count() == 1


async def test_moving_to_provisioning_keeps_the_reminder_state_of_the_technical_step(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await make_request(app)
    await app.services.act(request.id, "approve", OFFICE)
    await Request.filter(id=request.id).update(reminded_at=app.clock.now())
    await app.services.act(request.id, "provision", TECH)
    assert (await Request.get(id=request.id)).reminded_at is not None  # same step, same deadline: no 2nd reminder


async def test_a_password_reset_sets_a_new_password_on_the_existing_account(app_factory: Any,
                                                                         settings_factory: Any) -> None:
    from edudesk.directories.local import hash_password

    app = await app_factory(settings_factory(provisioning={"delivery": "mail"}), inline_analysis=True)
    request = await make_request(app, kind="password_reset")
    await Account.create(address="an.nv0@sis.hust.edu.vn", population="student", person_id="20210000",
                         password_hash=hash_password("old-Passw0rd"), created_at=app.clock.now())
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "done"
    outbox = app.settings.path(app.settings.outgoing.maildir) / "new"
    (message,) = [m for m in map(body_of, outbox.iterdir()) if "Mật khẩu tạm thời: " in m]
    password = message.split("Mật khẩu tạm thời: ")[1].split()[0]
    account = await Account.get(address="an.nv0@sis.hust.edu.vn")
    assert verify_password(password, account.password_hash) and not verify_password("old-Passw0rd",
                                                                                     account.password_hash)


async def test_accounts_of_students_who_left_are_suspended_then_deleted_after_the_grace_period(
        app_factory: Any, clock: Any) -> None:
    app = await app_factory(clock=clock, inline_analysis=True)
    request = await make_request(app, kind="delete_accounts", people=2)
    await Account.create(address="an.nv0@sis.hust.edu.vn", population="student", person_id="20210000",
                         password_hash="x", created_at=app.clock.now())
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "done"
    account = await Account.get(address="an.nv0@sis.hust.edu.vn")
    assert account.state == "suspended" and account.password_hash == ""
    event = await AuditEvent.get(action="request_provisioned")
    assert [a["result"] for a in event.detail["accounts"]] == ["suspended", "absent"]
    outbox = app.settings.path(app.settings.outgoing.maildir) / "new"
    (message,) = [m for m in map(body_of, outbox.iterdir()) if "tạm khóa" in m]
    assert "an.nv0@sis.hust.edu.vn" in message and "Mật khẩu" not in message and "30 ngày" in message
    clock.advance(timedelta(days=29))
    await app.worker.drain()
    assert (await Account.get(address="an.nv0@sis.hust.edu.vn")).state == "suspended"  # still in its grace
    clock.advance(timedelta(days=1, minutes=1))
    await app.worker.drain()
    assert (await Account.get(address="an.nv0@sis.hust.edu.vn")).state == "deleted"
    log = [(e.action, e.address, e.approved_by) for e in await AccountLog.all().order_by("id")]
    assert log == [("suspend", "an.nv0@sis.hust.edu.vn", "Lê Văn Phòng (tg:1)"),
                   ("suspend", "an.nv1@sis.hust.edu.vn", "Lê Văn Phòng (tg:1)"),
                   ("delete", "an.nv0@sis.hust.edu.vn", "Lê Văn Phòng (tg:1)")]


async def test_who_may_reassign_and_to_whom_is_one_rule_for_every_surface(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    head = Actor("tg:5", "Trưởng phòng", frozenset({Role.HEAD}))
    now = app.clock.now()
    tech = await Staff.create(name="Kỹ thuật 2", roles=["technical"], created_at=now)
    await Staff.create(name="Nghỉ việc", roles=["office"], active=False, created_at=now)
    admin = await Staff.create(name="Quản trị", roles=["admin"], created_at=now)
    request = await make_request(app)
    assert [s.id for s in await app.services.reassign_offer(request.id, head)] == [tech.id]
    assert await app.services.reassign_offer(request.id, OFFICE) == []  # the page shows no picker
    with pytest.raises(NotAllowed):
        await app.services.reassign_choices(request.id, OFFICE)  # a forged tap on the picker
    assert await AuditEvent.filter(action="action_refused", request_id=request.id).count() == 1
    with pytest.raises(EdudeskError):
        await app.services.reassign(request.id, admin.id, head)  # not someone the head was offered
    await app.services.reassign(request.id, tech.id, head)
    assert (await Request.get(id=request.id)).assignee_id == tech.id
    await app.services.act(request.id, "reject", OFFICE, reason="Sai mẫu")
    assert await app.services.reassign_offer(request.id, head) == []  # closed: nothing to give
    with pytest.raises(EdudeskError):
        await app.services.reassign_choices(request.id, head)
