"""A unit's list carried out as one job: resumed after a crash without a second account, progress on the
card, refused rows listed and retried, the account log filled, passwords kept out of it."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import timedelta
from typing import Any

import pytest

from edudesk.bot.cards import load_view, render_text
from edudesk.core.accounts.models import Account, AccountLog
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.staff import Actor, Role
from edudesk.core.ports import AccountSpec, ProvisionError
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from edudesk.directories.local import LocalProvisioner
from tests.conftest import wait_until

pytestmark = pytest.mark.db

OFFICE = Actor("tg:1", "Lê Văn Phòng", frozenset({Role.OFFICE}))
TECH = Actor("tg:2", "Trần Kỹ Thuật", frozenset({Role.TECHNICAL}))


def body_of(path: Any) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    part = message.get_body(("plain",))
    return part.get_content() if part is not None else ""  # type: ignore[union-attr]


async def bulk_request(app: Any, people: int) -> Request:
    now = app.clock.now()
    request = await Request.create(kind="bulk_new_accounts", population="student", state="received",
                                   sender="k62@hust.edu.vn", sender_name="Văn phòng Khoa CNTT",
                                   subject="Danh sách sinh viên K70", received_at=now,
                                   deadline=now + timedelta(hours=24), updated_at=now)
    await RequestPerson.bulk_create([
        RequestPerson(request=request, row=i, person_id=f"2025{i:04d}", full_name=f"Phạm Thị Hương {i}",
                      proposed_address=f"huong.pt{i:04d}@sis.hust.edu.vn",
                      data={"student_id": f"2025{i:04d}", "full_name": f"Phạm Thị Hương {i}"})
        for i in range(people)])
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    return request


class RefusingProvisioner(LocalProvisioner):
    """The local directory, refusing the addresses in `refuse` (as a real back end refuses a bad row)."""

    def __init__(self, clock: Any, refuse: set[str], permanent: bool = True) -> None:
        super().__init__(clock)
        self.refuse, self.permanent = refuse, permanent

    async def create(self, spec: AccountSpec, password: str) -> str:
        if spec.address in self.refuse:
            raise ProvisionError(f"Máy chủ từ chối {spec.address}: mật khẩu không đạt chính sách.",
                                 permanent=self.permanent)
        return await super().create(spec, password)


async def test_a_list_interrupted_midway_resumes_without_a_second_account(app_factory: Any,
                                                                          settings_factory: Any) -> None:
    # Chunks of 16 rows (concurrency 2): the crash lands with chunks recorded, one in flight, others untouched.
    app = await app_factory(settings_factory(provisioning={"concurrency": 2}), inline_analysis=True)
    request = await bulk_request(app, 60)
    job = await Job.get(kind="provision")
    async def twenty_done() -> bool:
        return await RequestPerson.filter(request_id=request.id, outcome="done").count() >= 20

    async with asyncio.TaskGroup() as group:
        run = group.create_task(app.provisioning(job))
        await wait_until(twenty_done, interval=0.005)
        run.cancel()  # the process dies here: some rows done, some in flight, the rest untouched
    assert run.cancelled()
    done_before = await RequestPerson.filter(request_id=request.id, outcome="done").count()
    assert 20 <= done_before < 60
    await app.provisioning(job)  # the job runs again after the restart
    assert (await Request.get(id=request.id)).state == "done"
    accounts = await Account.filter(population="student").order_by("address")
    assert len(accounts) == 60 and {a.state for a in accounts} == {"active"}
    assert [a.address for a in accounts] == [f"huong.pt{i:04d}@sis.hust.edu.vn" for i in range(60)]
    assert await OutgoingMail.filter(key=f"done:{request.id}").count() == 1
    created = await AccountLog.filter(request_id=request.id, action__in=["create", "link"]).count()
    assert created >= 60 and not await AccountLog.filter(action="taken").exists()


class DyingProvisioner(LocalProvisioner):
    """The local directory; the process "dies" (its job is cancelled) right after the `die_after`-th account."""

    def __init__(self, clock: Any, die_after: int) -> None:
        super().__init__(clock)
        self.die_after = die_after
        self.job: asyncio.Task[Any] | None = None
        self.results: list[tuple[str, str]] = []
        self.passwords: dict[str, set[str]] = {}

    async def create(self, spec: AccountSpec, password: str) -> str:
        self.passwords.setdefault(spec.address, set()).add(password)  # every password a call tried to set
        result = await super().create(spec, password)
        self.results.append((spec.address, result))
        if len(self.results) == self.die_after and self.job is not None:
            self.job.cancel()
        return result


async def test_a_chunk_killed_half_way_resumes_without_a_second_account_or_a_new_password(
        app_factory: Any, settings_factory: Any, clock: Any) -> None:
    # Chunks of 16 rows (concurrency 2), pipelined: the kill after the 24th account lands in the middle of the
    # second chunk, while the first chunk's outcomes are being recorded and the third chunk's journalled.
    provisioner = DyingProvisioner(clock, die_after=24)
    app = await app_factory(settings_factory(provisioning={"concurrency": 2}), clock=clock, inline_analysis=True,
                            provisioner=provisioner)
    request = await bulk_request(app, 60)
    job = await Job.get(kind="provision")
    async with asyncio.TaskGroup() as group:
        provisioner.job = run = group.create_task(app.provisioning(job))
    assert run.cancelled()
    assert await RequestPerson.filter(request_id=request.id, outcome="done").count() < 24
    assert await Account.filter(population="student", state="pending").exists()  # journalled, never sent
    provisioner.job = None
    await app.provisioning(job)  # after the restart
    assert (await Request.get(id=request.id)).state == "done"
    accounts = await Account.filter(population="student").order_by("address")
    assert [a.address for a in accounts] == [f"huong.pt{i:04d}@sis.hust.edu.vn" for i in range(60)]
    assert {a.state for a in accounts} == {"active"}
    created = [address for address, result in provisioner.results if result == "created"]
    assert len(created) == len(set(created)), "no account may be made twice"
    # The kill may land after an account was made but before its answer came back: the re-run links it.
    assert {address for address, _ in provisioner.results} == {a.address for a in accounts}
    assert all(len(sets) == 1 for sets in provisioner.passwords.values()), "a re-run must set the same password"
    assert await OutgoingMail.filter(key=f"done:{request.id}").count() == 1


async def test_progress_is_shown_on_the_card_while_a_list_runs(app_factory: Any, settings_factory: Any,
                                                              monkeypatch: Any) -> None:
    import edudesk.core.provisioning.job as job_module

    monkeypatch.setattr(job_module, "PROGRESS_MIN_SECONDS", 0.0)
    app = await app_factory(settings_factory(provisioning={"progress_every": 10, "concurrency": 1}),
                            inline_analysis=True)
    request = await bulk_request(app, 50)  # chunks of 16 rows at concurrency 1
    seen: list[str] = []
    original = app.provisioning._bump

    async def watch(request_id: int) -> None:
        await original(request_id)
        seen.append(render_text(await load_view(request_id), app.settings, app.clock.now()))

    app.provisioning._bump = watch  # type: ignore[method-assign]
    await app.provisioning(await Job.get(kind="provision"))
    assert [s.split("Đã thực hiện <b>")[1].split("</b>")[0] for s in seen] == ["16/50", "32/50", "48/50"]
    versions = [j.key for j in await Job.filter(kind="refresh_cards").order_by("id")]
    assert len(versions) == len(set(versions)) >= 4  # one card edit per step, none lost to a duplicate key
    final = render_text(await load_view(request.id), app.settings, app.clock.now())
    assert "Đã thực hiện <b>50/50</b>" in final and "✓ <code>huong.pt0000@sis.hust.edu.vn</code>" in final


async def test_refused_rows_are_listed_handed_back_and_retried_alone(app_factory: Any, clock: Any) -> None:
    refuse = {"huong.pt0003@sis.hust.edu.vn"}
    app = await app_factory(clock=clock, inline_analysis=True, provisioner=RefusingProvisioner(clock, refuse))
    request = await bulk_request(app, 5)
    await app.worker.drain()
    request = await Request.get(id=request.id)
    assert request.state == "approved"  # back to technical staff, the provision button again
    failed = await AuditEvent.get(request_id=request.id, action="request_provision_failed")
    assert failed.detail["error"].startswith("1/5 người chưa thực hiện được — Phạm Thị Hương 3: Máy chủ từ chối")
    card = render_text(await load_view(request.id), app.settings, clock.now())
    assert "Đã thực hiện <b>4/5</b> · <b>1</b> lỗi" in card and "✗ Chưa thực hiện được: Máy chủ từ chối" in card
    assert not await OutgoingMail.filter(template="done").exists()
    refuse.clear()  # the technician fixed the cause
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "done"
    log = await AccountLog.filter(request_id=request.id).order_by("id")
    assert [(e.action, e.ok) for e in log].count(("create", True)) == 5  # the four were not redone
    assert [e.address for e in log if not e.ok] == ["huong.pt0003@sis.hust.edu.vn"]
    assert all(e.executed_by.startswith("Trần Kỹ Thuật") for e in log)


async def test_a_transient_refusal_retries_the_job_for_the_failed_rows_only(app_factory: Any, clock: Any) -> None:
    refuse = {"huong.pt0001@sis.hust.edu.vn"}
    provisioner = RefusingProvisioner(clock, refuse, permanent=False)
    app = await app_factory(clock=clock, inline_analysis=True, provisioner=provisioner)
    request = await bulk_request(app, 3)
    job = await Job.get(kind="provision")
    with pytest.raises(ProvisionError):
        await app.provisioning(job)  # the worker retries this with backoff
    assert (await Request.get(id=request.id)).state == "provisioning"
    refuse.clear()
    await app.provisioning(job)
    assert (await Request.get(id=request.id)).state == "done"
    assert await AccountLog.filter(request_id=request.id, action="create", ok=True).count() == 3


async def test_the_account_log_never_holds_a_password(app_factory: Any, settings_factory: Any) -> None:
    app = await app_factory(settings_factory(provisioning={"delivery": "mail"}), inline_analysis=True)
    request = await bulk_request(app, 3)
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "done"
    from edudesk.core.accounts.log import export_csv, log_rows
    from edudesk.core.accounts.models import PendingSecret

    assert not await PendingSecret.all().exists()  # sent, so gone
    exported = export_csv(await log_rows(request_id=request.id)).decode("utf-8-sig")
    assert exported.count("huong.pt") == 3 and "Lê Văn Phòng" in exported and "Trần Kỹ Thuật" in exported
    outbox = app.settings.path(app.settings.outgoing.maildir) / "new"
    bodies = [body_of(p) for p in outbox.iterdir()]
    passwords = [line.split(": ", 1)[1] for b in bodies for line in b.splitlines()
                 if line.startswith("Mật khẩu tạm thời: ")]
    assert len(passwords) == 3
    events = " ".join(f"{e.actor} {e.detail}" for e in await AuditEvent.all())
    logged = " ".join(f"{e.answer} {e.executed_by}" for e in await AccountLog.all())
    for password in passwords:
        assert password not in exported and password not in events and password not in logged


async def test_a_list_into_ldap_interrupted_midway_makes_no_second_entry(app_factory: Any, settings_factory: Any,
                                                                          slapd: Any, monkeypatch: Any) -> None:
    from ldap3 import SUBTREE

    monkeypatch.setenv("EDUDESK_TEST_LDAP_PASSWORD", slapd.service_password)
    settings = settings_factory(provisioning={"backend": "ldap", "concurrency": 2, "ldap": {
        "url": slapd.url, "bind_dn": slapd.service_dn, "bind_password_env": "EDUDESK_TEST_LDAP_PASSWORD",
        "staff_base": slapd.staff_base, "student_base": slapd.student_base, "pool_size": 2}})
    app = await app_factory(settings, inline_analysis=True)
    request = await bulk_request(app, 60)
    job = await Job.get(kind="provision")

    async def some_done() -> bool:
        return await RequestPerson.filter(request_id=request.id, outcome="done").count() >= 16

    async with asyncio.TaskGroup() as group:
        run = group.create_task(app.provisioning(job))
        await wait_until(some_done, interval=0.002)
        run.cancel()  # entries made in slapd whose outcome was never recorded, others never started
    before = await RequestPerson.filter(request_id=request.id, outcome="done").count()
    assert 16 <= before < 60
    await app.provisioning(job)
    assert (await Request.get(id=request.id)).state == "done"
    conn = slapd.connect(slapd.service_dn, slapd.service_password)
    conn.search(slapd.student_base, "(objectClass=inetOrgPerson)", SUBTREE, attributes=["mail"])
    mails = sorted(str(e.mail) for e in conn.entries)
    conn.unbind()
    assert mails == [f"huong.pt{i:04d}@sis.hust.edu.vn" for i in range(60)]  # each once, none under a suffix
    linked = await AccountLog.filter(request_id=request.id, action="link").count()
    assert await AccountLog.filter(request_id=request.id, action="create").count() + linked >= 60
