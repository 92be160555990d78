"""Checks the office can rely on, against a real database: list rows without an ID or unknown to the registry
are held back until approved row by row, duplicates named as such, "Hợp lệ" over a ✗ asks once more, the
account's name follows the registry, a leaver's account kept during its grace period (button and reply)."""

from __future__ import annotations

import email
import email.policy
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edudesk.bot.cards import build_card, load_view, render_text
from edudesk.bot.textcommands import TextContext, handle
from edudesk.core.accounts.models import Account, AccountLog
from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.surfaces import Surface
from edudesk.core.errors import NotAllowed
from edudesk.core.forms.records import build_persons
from edudesk.core.intake.checks import check_request
from edudesk.core.intake.domain import ExtractedRequest, IncomingMail, Kind, Population
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.models import RegistryEntry
from edudesk.core.people.staff import Actor, Role
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from edudesk.core.requests.rows import ConfirmNeeded
from tests.mails import mail

pytestmark = pytest.mark.db

OFFICE = Actor("tg:1", "Lê Văn Phòng", frozenset({Role.OFFICE}))
TECH = Actor("tg:2", "Trần Kỹ Thuật", frozenset({Role.TECHNICAL}))
UNIT = "k62@hust.edu.vn"


def body_of(path: Path) -> str:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    part = message.get_body(("plain",))
    return part.get_content() if part is not None else ""  # type: ignore[union-attr]


def outbox(app: Any) -> list[str]:
    return [body_of(p) for p in (app.settings.path(app.settings.outgoing.maildir) / "new").iterdir()]


async def registry(app: Any, rows: list[tuple[str, str, date | None]]) -> None:
    now = app.clock.now()
    await RegistryEntry.bulk_create([
        RegistryEntry(population="student", person_id=pid, full_name=name, name_key=name.lower(), date_of_birth=dob,
                      imported_at=now) for pid, name, dob in rows])


async def list_request(app: Any, records: list[dict[str, str]], kind: Kind = Kind.BULK_NEW_ACCOUNTS) -> Request:
    """A unit's list as intake stores it: the form reader's findings, then `check_request`."""
    persons, problems, _ = build_persons(records, staff=False, individual=kind is Kind.NEW_ACCOUNT, delete=False,
                                         repair=False)
    extracted = ExtractedRequest(kind, Population.STUDENT, tuple(persons), "xlsx", tuple(problems))
    checked = await check_request(extracted, IncomingMail("<l@hust.edu.vn>", "Danh sách", UNIT), app.settings)
    now = app.clock.now()
    request = await Request.create(kind=kind.value, population="student", state="received", sender=UNIT,
                                   sender_name="Văn phòng Khoa CNTT", subject="Danh sách", received_at=now,
                                   deadline=now + timedelta(hours=24), updated_at=now)
    await RequestPerson.bulk_create([
        RequestPerson(request=request, row=i, person_id=p.person_id, full_name=p.full_name,
                      proposed_address=p.proposed_address, data=p.to_json(),
                      problems=[x.to_json() for x in checked.person_problems[i]])
        for i, p in enumerate(checked.persons)])
    return request


def student(i: int, name: str = "") -> dict[str, str]:
    return {"student_id": f"2025{i:04d}", "full_name": name or f"Phạm Thị Hương {chr(65 + i % 26)}{i}",
            "date_of_birth": "05/03/2007"}


async def thirty(app: Any) -> Request:
    records = [student(i) for i in range(30)]
    records[6]["student_id"] = "20259999"  # row 7: an ID the registry does not know
    records[11]["student_id"] = ""  # row 12: no ID
    await registry(app, [(r["student_id"], r["full_name"], date(2007, 3, 5)) for r in records if r["student_id"]
                         and r["student_id"] != "20259999"])
    return await list_request(app, records)


async def test_a_list_with_two_bad_rows_is_carried_out_without_them_until_row_7_is_approved(
        app_factory: Any, clock: Any, settings_factory: Any) -> None:
    app = await app_factory(settings_factory(provisioning={"delivery": "mail"}), clock=clock, inline_analysis=True)
    request = await thirty(app)
    persons = await RequestPerson.filter(request_id=request.id).order_by("row")
    assert {p["code"] for p in persons[6].problems} == {"not_in_registry"}
    assert [(p["code"], p["severity"]) for p in persons[11].problems] == [("missing_id", "error")]
    view = await load_view(request.id)
    assert "30 người</b>, 2 người có lỗi" in render_text(view, app.settings, app.clock.now())
    english = settings_factory(general={"language": "en"})
    assert "30 people</b>, 2 with problems" in render_text(view, english, app.clock.now())

    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "done"
    assert await Account.filter(population="student", state="active").count() == 28
    skipped = await RequestPerson.filter(request_id=request.id, outcome="skipped").order_by("row")
    assert [(p.row + 1, p.outcome_detail) for p in skipped] == [(7, "Chưa duyệt dòng có lỗi"),
                                                                (12, "Chưa duyệt dòng có lỗi")]
    (result,) = [m for m in outbox(app) if "Mật khẩu tạm thời" in m]
    assert "Dòng 7: " + persons[6].full_name + " (20259999)" in result and "Dòng 12: " in result
    assert persons[6].proposed_address not in result

    # The office checked row 7 by phone: approving it sends the request back for that row only.
    await app.services.rows.approve_row(request.id, 7, OFFICE)
    request = await Request.get(id=request.id)
    assert request.state == "approved"
    event = await AuditEvent.get(action="request_row_approve")
    assert event.detail["row"] == 7 and event.actor == OFFICE.label
    assert persons[6].full_name not in str(event.detail) and "20259999" not in str(event.detail)
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    assert (await Request.get(id=request.id)).state == "done"
    row7 = await RequestPerson.get(request_id=request.id, row=6)
    assert row7.outcome == "done" and row7.approved_by == OFFICE.name
    assert await Account.filter(address=row7.final_address, state="active").exists()
    assert (await RequestPerson.get(request_id=request.id, row=11)).outcome == "skipped"
    assert await Account.filter(population="student", state="active").count() == 29
    second = await OutgoingMail.filter(request_id=request.id, template="done").order_by("id")
    assert [m.key for m in second] == [f"done:{request.id}", f"done:{request.id}:{request.version + 2}"]
    latest = [m for m in outbox(app) if row7.final_address in m]
    assert len(latest) == 1 and persons[0].proposed_address not in latest[0]


async def test_a_row_approval_needs_the_office_and_a_row_with_a_problem(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await thirty(app)
    with pytest.raises(NotAllowed):
        await app.services.rows.approve_row(request.id, 7, TECH)
    refused = await AuditEvent.get(action="action_refused")
    assert refused.detail["action"] == "row_approve" and refused.detail["row"] == 7
    with pytest.raises(Exception, match="không có lỗi cần duyệt"):
        await app.services.rows.approve_row(request.id, 1, OFFICE)
    with pytest.raises(Exception, match="không có dòng 31"):
        await app.services.rows.approve_row(request.id, 31, OFFICE)
    # The chat command does the same, with the same checks.
    ctx = TextContext(app.settings, app.clock, app.queue, app.services, None, Surface.ZALO)
    office = Actor("zl:1", "Lê Văn Phòng", frozenset({Role.OFFICE}), staff_id=1)
    assert await handle(ctx, office, "zl:1", f"/duyetdong {request.id} 12") == f"✓ YC-{request.id}: đã duyệt dòng 12."
    assert (await RequestPerson.get(request_id=request.id, row=11)).approved_by == "Lê Văn Phòng"
    assert "2 người có lỗi" not in render_text(await load_view(request.id), app.settings, app.clock.now())


async def test_duplicates_in_a_list_are_named_as_duplicates_not_given_a_changed_address(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    records = [student(0, "Nguyễn Văn An"), student(1, "Trần Thị Bình"), student(0, "Nguyễn Văn An"),
               {**student(3, "Trần Thị Bình"), "date_of_birth": "05/03/2007"}]
    await registry(app, [(r["student_id"], r["full_name"], date(2007, 3, 5)) for r in records[:2] + records[3:]])
    request = await list_request(app, records)
    persons = await RequestPerson.filter(request_id=request.id).order_by("row")
    codes = [[p["code"] for p in x.problems] for x in persons]
    assert codes[0] == [] and codes[1] == []
    assert codes[2] == ["duplicate_in_list"] and "dòng 1" in persons[2].problems[0]["message"]
    assert codes[3] == ["duplicate_in_list"] and "dòng 2" in persons[3].problems[0]["message"]
    assert persons[2].proposed_address == persons[0].proposed_address  # not an.nv2: the same person
    assert persons[3].proposed_address == persons[1].proposed_address


async def dob_request(app: Any) -> Request:
    await registry(app, [("20201234", "Nguyễn Văn An", date(2003, 1, 2))])
    return await list_request(app, [{"student_id": "20201234", "full_name": "Nguyễn Văn An",
                                     "date_of_birth": "01/02/2003", "mobile": "0912345678"}], Kind.NEW_ACCOUNT)


async def test_approving_over_a_mismatch_asks_once_more_naming_it(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await dob_request(app)
    with pytest.raises(ConfirmNeeded) as asked:
        await app.services.act(request.id, "approve", OFFICE, version=0)
    assert "Dòng 1: ngày sinh 01/02/2003 ≠ 02/01/2003 theo danh sách của trường" in asked.value.in_words("vi")
    assert "Row 1: date of birth 01/02/2003 ≠ 02/01/2003 in the school's registry" in asked.value.in_words("en")
    assert (await Request.get(id=request.id)).state == "received"
    assert not await AuditEvent.filter(action="request_approve").exists()
    # Telegram/Zalo: the card asks with a button of its own.
    from edudesk.bot.cards import confirm_card

    card = confirm_card(await load_view(request.id), asked.value.lines["vi"], app.settings, app.clock.now())
    assert [b.action for row in card.buttons for b in row] == [ButtonAction.APPROVE_CONFIRM, ButtonAction.BACK]
    await app.services.act(request.id, "approve", OFFICE, version=0, confirmed=True)
    request = await Request.get(id=request.id)
    assert request.state == "approved"
    assert (await AuditEvent.get(action="request_approve")).detail["mismatch_rows"] == [1]


async def test_the_chat_command_asks_for_the_confirmation_then_approves(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    request = await dob_request(app)
    ctx = TextContext(app.settings, app.clock, app.queue, app.services, None, Surface.ZALO)
    office = Actor("zl:1", "Lê Văn Phòng", frozenset({Role.OFFICE}), staff_id=1)
    first = await handle(ctx, office, "zl:1", f"/duyet {request.id}")
    assert "ngày sinh 01/02/2003 ≠ 02/01/2003" in first and f"/duyet {request.id} xacnhan" in first
    assert (await Request.get(id=request.id)).state == "received"
    assert (await handle(ctx, office, "zl:1", f"/duyet {request.id} xacnhan")).startswith("✓")
    assert (await Request.get(id=request.id)).state == "approved"


async def test_the_account_is_named_as_the_registry_spells_it_unless_the_office_picks_the_form(
        app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    await registry(app, [("20250000", "Nguyễn Văn An", date(2007, 3, 5)),
                         ("20250001", "Trần Thị Bình", date(2007, 3, 5))])
    request = await list_request(app, [student(0, "Nguyen Van An"), student(1, "Tran Thi Binh")])
    await app.services.rows.use_form_name(request.id, 2, OFFICE)
    assert (await AuditEvent.get(action="request_name_form")).detail["row"] == 2
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    names = dict(await Account.filter(population="student").values_list("person_id", "full_name"))
    assert names == {"20250000": "Nguyễn Văn An", "20250001": "Tran Thi Binh"}
    with pytest.raises(NotAllowed):
        await app.services.rows.use_form_name(request.id, 1, TECH)


async def deletion(app: Any, clock: Any) -> Request:
    now = app.clock.now()
    request = await Request.create(kind="delete_accounts", population="student", state="received", sender=UNIT,
                                   sender_name="Phòng Công tác sinh viên", subject="Xoá tài khoản sinh viên thôi học",
                                   message_id="<del@hust.edu.vn>", received_at=now,
                                   deadline=now + timedelta(hours=24), updated_at=now)
    for i in range(3):
        address = f"an.nv{i}@sis.hust.edu.vn"
        await Account.create(address=address, population="student", person_id=f"2021{i:04d}", password_hash="x",
                             created_at=now, full_name=f"Nguyễn Văn An {i}")
        await RequestPerson.create(request=request, row=i, person_id=f"2021{i:04d}", full_name=f"Nguyễn Văn An {i}",
                                   proposed_address=address,
                                   data={"student_id": f"2021{i:04d}", "full_name": f"Nguyễn Văn An {i}"})
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    await app.worker.drain()
    assert {a.state for a in await Account.all()} == {"suspended"}
    return await Request.get(id=request.id)


async def test_a_leavers_account_kept_by_the_office_or_by_the_units_reply_is_never_deleted(
        app_factory: Any, settings_factory: Any, clock: Any) -> None:
    settings = settings_factory(intake={"trusted_authserv_ids": ["mx.hust.edu.vn"]})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    request = await deletion(app, clock)
    view = await load_view(request.id)
    assert view.keepable == {0, 1, 2}
    with pytest.raises(NotAllowed):
        await app.services.rows.keep_account(request.id, 1, TECH)
    clock.advance(timedelta(days=3))
    await app.services.rows.keep_account(request.id, 1, OFFICE)  # the button on the web page
    done = await OutgoingMail.get(key=f"done:{request.id}")
    body = ("Kính gửi Văn phòng,\nĐề nghị giữ lại tài khoản an.nv1@sis.hust.edu.vn (sinh viên đã "
            "quay lại học).\n\n> - Nguyễn Văn An 2: an.nv2@sis.hust.edu.vn\n")
    # Unproven (no trusted Authentication-Results): nothing changes, the office is asked to do it by hand.
    forged = mail(sender=f"Phòng CTSV <{UNIT}>", subject=f"Re: [YC-{request.id}] Đã tạm khoá tài khoản", body=body,
                  message_id="<keep-forged@hust.edu.vn>", headers={"In-Reply-To": done.message_id})
    await app.ledger.store(forged, source="cli")
    await app.worker.drain()
    assert [p.result for p in await RequestPerson.filter(request_id=request.id).order_by("row")] == [
        "kept", "suspended", "suspended"]
    notices = [j.payload for j in await Job.filter(kind="chat_notice") if "không xác minh" in j.payload["text"]]
    assert len(notices) == 1 and notices[0]["audience"] == "office" and "dòng 2" in notices[0]["text"]
    reply = mail(sender=f"Phòng CTSV <{UNIT}>", subject=f"Re: [YC-{request.id}] Đã tạm khoá tài khoản", body=body,
                 message_id="<keep@hust.edu.vn>",
                 headers={"In-Reply-To": done.message_id,
                          "Authentication-Results": "mx.hust.edu.vn; dkim=pass header.d=hust.edu.vn; "
                                                    "dmarc=pass header.from=hust.edu.vn"})
    await app.ledger.store(reply, source="cli")
    await app.worker.drain()
    rows = await RequestPerson.filter(request_id=request.id).order_by("row")
    assert [p.result for p in rows] == ["kept", "kept", "suspended"]  # the quoted row 3 is not kept
    kept = await AuditEvent.filter(action="request_keep_account").order_by("id")
    assert [(e.detail["row"], e.detail["by"]) for e in kept] == [(1, "office"), (2, "reply")]
    assert kept[0].actor == OFFICE.label and kept[1].actor.startswith(f"Phòng Công tác sinh viên (mail:{UNIT}")
    states = dict(await Account.all().values_list("address", "state"))
    assert states == {"an.nv0@sis.hust.edu.vn": "active", "an.nv1@sis.hust.edu.vn": "active",
                      "an.nv2@sis.hust.edu.vn": "suspended"}
    log = await AccountLog.filter(action="restore").order_by("id").values_list("address", "approved_by")
    assert log == [("an.nv0@sis.hust.edu.vn", OFFICE.label), ("an.nv1@sis.hust.edu.vn", kept[1].actor)]
    told = [m for m in outbox(app) if "giữ lại" in m and "sẽ không bị xoá" in m]
    assert len(told) == 2 and any("Theo đề nghị của" in m for m in told)
    assert "Giữ tài khoản · Dòng 1" in render_text(await load_view(request.id), app.settings, app.clock.now())
    clock.advance(timedelta(days=31))
    await app.worker.drain()
    states = dict(await Account.all().values_list("address", "state"))
    assert states == {"an.nv0@sis.hust.edu.vn": "active", "an.nv1@sis.hust.edu.vn": "active",
                      "an.nv2@sis.hust.edu.vn": "deleted"}
    with pytest.raises(Exception, match="không còn chờ xoá"):
        await app.services.rows.keep_account(request.id, 3, OFFICE)  # deleted: too late


async def test_a_one_row_deletion_card_offers_keep_to_the_office(app_factory: Any, clock: Any) -> None:
    app = await app_factory(clock=clock, inline_analysis=True)
    request = await deletion(app, clock)
    await RequestPerson.filter(request_id=request.id, row__gt=0).delete()
    view = await load_view(request.id)
    office = [b for row in build_card(view, "office", app.settings, app.clock.now()).buttons for b in row]
    technical = [b for row in build_card(view, "technical", app.settings, app.clock.now()).buttons for b in row]
    assert [(b.action, b.arg) for b in office] == [(ButtonAction.KEEP_ACCOUNT, 0)]
    assert not technical
    await app.services.rows.keep_account(request.id, None, OFFICE, version=request.version)
    assert (await RequestPerson.get(request_id=request.id, row=0)).result == "kept"


async def test_the_request_page_approves_a_row_and_asks_before_approving_over_a_mismatch(
        app_factory: Any, settings_factory: Any) -> None:
    from edudesk.core.people.models import Staff
    from edudesk.core.people.webauth import issue_login_link

    app = await app_factory(settings_factory(web={"port": 0}), inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    url = app.web.base_url

    async def signed_in(role: str) -> tuple[aiohttp.ClientSession, str]:
        staff = await Staff.create(name=f"Cán bộ {role}", roles=[role], created_at=app.clock.now())
        token = (await issue_login_link(staff.id, app.settings, app.clock, base_url=url)).rsplit("/", 1)[1]
        client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        async with client.post(f"{url}/login", data={"token": token}, allow_redirects=False) as r:
            assert r.status == 303
        async with client.get(f"{url}/whoami") as r:
            page = await r.text()
        return client, page.split('name="csrf" value="', 1)[1].split('"', 1)[0]

    request = await thirty(app)
    office, csrf = await signed_in("office")
    technical, tech_csrf = await signed_in("technical")
    try:
        async with office.get(f"{url}/requests/{request.id}") as r:
            page = await r.text()
        assert page.count('data-what="approve_row"') == 2 and "Duyệt dòng 7" in page
        async with technical.get(f"{url}/requests/{request.id}") as r:
            assert 'data-what="approve_row"' not in await r.text()  # hidden; the use case refuses anyway
        form = {"csrf": tech_csrf, "what": "approve_row", "row": "7", "version": "0"}
        async with technical.post(f"{url}/requests/{request.id}/row", data=form, headers={"Origin": url}) as r:
            assert "không có quyền" in await r.text()
        form = {"csrf": csrf, "what": "approve_row", "row": "7", "version": "0"}
        async with office.post(f"{url}/requests/{request.id}/row", data=form, headers={"Origin": url}) as r:
            assert r.status == 200
        assert (await RequestPerson.get(request_id=request.id, row=6)).approved_by == "Cán bộ office"

        single = await dob_request(app)
        form = {"csrf": csrf, "action": "approve", "version": "0"}
        async with office.post(f"{url}/requests/{single.id}/act", data=form, headers={"Origin": url}) as r:
            page = await r.text()
        assert "Dòng 1: ngày sinh 01/02/2003 ≠ 02/01/2003 theo danh sách của trường" in page
        assert 'name="confirmed" value="1"' in page and (await Request.get(id=single.id)).state == "received"
        form = {**form, "confirmed": "1"}
        async with office.post(f"{url}/requests/{single.id}/act", data=form, headers={"Origin": url}) as r:
            assert r.status == 200
        assert (await Request.get(id=single.id)).state == "approved"
    finally:
        await office.close()
        await technical.close()


async def test_a_kept_account_signs_in_again_with_dovecot_its_old_password_standing(tmp_path: Path) -> None:
    from edudesk.directories.passwd_file import PasswdFile

    passwd = PasswdFile(tmp_path / "passwd")
    await passwd.set_password("an.nv0@sis.hust.edu.vn", "{BLF-CRYPT}$2y$05$abc", "/var/mail/an")
    await passwd.suspend("an.nv0@sis.hust.edu.vn")
    assert (await passwd.entry("an.nv0@sis.hust.edu.vn")).locked  # type: ignore[union-attr]
    assert await passwd.unlock("an.nv0@sis.hust.edu.vn")
    entry = await passwd.entry("an.nv0@sis.hust.edu.vn")
    assert entry is not None and not entry.locked and entry.password == "{BLF-CRYPT}$2y$05$abc"
    assert not await passwd.unlock("nobody@sis.hust.edu.vn")
