"""Issue 15, the sender policy: a reset, a deletion or a changed form claiming a school sender without an aligned
DMARC/DKIM pass is an "unverified sender" that one tap cannot approve; the office mails a one-time link to the
address the registry holds for the person, and the request moves on when it is used. Official business from
free mail is flagged, or refused under Circular 53/2012.

Real database, job worker, maildir outbox and started web console (aiohttp client); a test clock.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edudesk.app import App
from edudesk.bot.cards import build_card, load_view
from edudesk.bot.textcommands import TextContext, handle
from edudesk.bot.zalo.render import render as zalo_render
from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.surfaces import Surface
from edudesk.core.errors import EdudeskError
from edudesk.core.intake.confirm import CONFIRMED, UNVERIFIED, mask
from edudesk.core.intake.domain import Population
from edudesk.core.intake.models import InboundMail, SenderConfirmation
from edudesk.core.intake.sender import is_free_mail
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.models import RegistryEntry, Staff
from edudesk.core.people.registry import import_registry
from edudesk.core.people.staff import Actor, Role
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.ports import FakeClock
from edudesk.core.requests.models import OutgoingMail, Request
from tests.mails import mail

pytestmark = pytest.mark.db
OFFICE = Actor("tg:1", "Lê Văn Phòng", frozenset({Role.OFFICE}))
TECH = Actor("tg:2", "Trần Kỹ Thuật", frozenset({Role.TECHNICAL}))
TRUSTED = "mx.truong.edu.vn"
RESET = "Đề nghị cấp lại mật khẩu.\nHọ và tên: Nguyễn Văn An\nMã số sinh viên: 20201234\nSố điện thoại: 0912345678\n"
DELETE = ("Đơn vị đề nghị xoá tài khoản thư điện tử của cán bộ đã nghỉ việc:\nHọ và tên: Trần Văn Bình\n"
          "Mã cán bộ: 001234\n")
NEW_STAFF = ("Đề nghị cấp tài khoản thư điện tử cho cán bộ mới.\nHọ và tên: Lê Thị Cúc\nMã cán bộ: 005678\n"
             "Ngày sinh: 01/02/1990\nĐơn vị: Khoa CNTT\nSố điện thoại: 0912345678\n")
PERSONAL = "an.nguyen.2003@gmail.com"


@dataclass
class Desk:
    """The running service: the console on a free port, the outbox, a test clock."""

    app: App
    clock: FakeClock

    @property
    def url(self) -> str:
        assert self.app.web is not None
        return self.app.web.base_url

    async def take(self, raw: bytes) -> Request:
        """Store and process one mail as the intake does; the request it made or joined."""
        sender = email.utils.parseaddr(email.message_from_bytes(raw, policy=email.policy.default)["From"])[1]
        stored = await self.app.ledger.store(raw, source="smtp", envelope_from=sender)  # SMTP's MAIL FROM
        await self.app.pipeline.process(stored.mail_id)
        row = await InboundMail.get(id=stored.mail_id)
        return await Request.get(id=row.request_id)  # type: ignore[attr-defined]

    def outbox(self) -> list[email.message.EmailMessage]:
        """Every mail handed to the maildir transport so far."""
        s = self.app.settings
        folder = Path(s.outgoing.maildir.format(data_dir=s.data_dir))
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
                for p in sorted(folder.rglob("*")) if p.is_file()]

    async def confirmation_mail(self) -> tuple[email.message.EmailMessage, str, str]:
        """Run the jobs; the confirmation mail sent, its plain text and the token of its link."""
        await self.app.worker.drain()
        sent = [m for m in self.outbox() if "/confirm/" in _text(m)]
        assert len(sent) == 1, [m["Subject"] for m in self.outbox()]
        text = _text(sent[0])
        token = re.search(r"/confirm/([A-Za-z0-9_-]+)", text)
        assert token is not None
        return sent[0], text, token[1]

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def _text(message: email.message.EmailMessage) -> str:
    body = message.get_body(("plain",))
    return body.get_content() if body is not None else ""  # type: ignore[union-attr]


def reset_mail(*, auth: str | None = None, sender: str = "Nguyễn Văn An <an.nv@sis.hust.edu.vn>",
               message_id: str | None = None) -> bytes:
    """A password reset from a school address, with the receiving server's Authentication-Results if given."""
    headers = {"Authentication-Results": auth} if auth else {}
    return mail(sender=sender, subject="Cấp lại mật khẩu email", body=RESET, headers=headers,
                message_id=message_id)


@pytest.fixture
async def desk(app_factory: Any, settings_factory: Any) -> AsyncIterator[Desk]:
    clock = FakeClock()
    settings = settings_factory(web={"port": 0}, intake={"trusted_authserv_ids": [TRUSTED]})
    app = await app_factory(settings, clock=clock, inline_analysis=True)
    assert app.web is not None
    await app.web.start()
    now = clock.now()
    await RegistryEntry.create(population="student", person_id="20201234", full_name="Nguyễn Văn An",
                               name_key="nguyen van an", email="an.nv@sis.hust.edu.vn", personal_email=PERSONAL,
                               imported_at=now)
    yield Desk(app, clock)
    await app.web.stop()


async def test_a_reset_from_a_school_address_with_no_trusted_result_cannot_be_approved_with_one_tap(
        desk: Desk) -> None:
    request = await desk.take(reset_mail())
    assert request.kind == "password_reset" and request.sender_verified is None
    assert UNVERIFIED in request.flags
    found = next(p for p in request.problems if p["code"] == UNVERIFIED)
    assert "không có kết quả DMARC/DKIM" in found["message"] and "không được coi là đạt" in found["message"]
    with pytest.raises(EdudeskError) as refused:
        await desk.app.services.act(request.id, "approve", OFFICE)
    assert refused.value.code == "unverified_sender"
    assert "gửi liên kết xác nhận" in refused.value.message and "một lần bấm" in refused.value.message
    assert "send the confirmation link first" in refused.value.in_words("en")
    assert (await Request.get(id=request.id)).state == "received"
    audit = await AuditEvent.get(action="action_refused", request_id=request.id)
    assert audit.detail["reason"] == "unverified_sender" and audit.actor == OFFICE.label


async def test_a_result_from_an_untrusted_server_or_a_failed_dmarc_is_no_pass(desk: Desk) -> None:
    forged = await desk.take(reset_mail(auth="mx.evil.test; dmarc=pass header.from=sis.hust.edu.vn"))
    assert UNVERIFIED in forged.flags and forged.sender_verified is None
    failed = await desk.take(reset_mail(auth=f"{TRUSTED}; dmarc=fail header.from=sis.hust.edu.vn",
                                        message_id="<fail@sis.hust.edu.vn>"))
    assert UNVERIFIED in failed.flags and failed.sender_verified is False
    assert any("DMARC không đạt" in p["message"] for p in failed.problems if p["code"] == UNVERIFIED)


async def test_an_aligned_dmarc_pass_from_a_trusted_server_is_not_flagged_and_approves_at_once(desk: Desk) -> None:
    request = await desk.take(reset_mail(auth=f"{TRUSTED}; dmarc=pass header.from=sis.hust.edu.vn"))
    assert request.sender_verified is True and UNVERIFIED not in request.flags
    card = build_card(await load_view(request.id), "office", desk.app.settings, desk.clock.now())
    assert ButtonAction.SEND_CONFIRM not in {b.action for row in card.buttons for b in row}
    assert (await desk.app.services.act(request.id, "approve", OFFICE)).state == "approved"


async def test_the_office_confirms_through_the_registry_address_and_then_approves(desk: Desk) -> None:
    request = await desk.take(reset_mail())
    with pytest.raises(EdudeskError) as not_office:
        await desk.app.services.send_confirmation(request.id, TECH)
    assert not_office.value.code == "not_allowed"
    assert not await SenderConfirmation.all().exists()

    sent = await desk.app.services.send_confirmation(request.id, OFFICE, request.version)
    assert sent.count == 1 and mask(PERSONAL) in sent.text and PERSONAL not in sent.text
    message, text, token = await desk.confirmation_mail()
    assert message["To"] == PERSONAL and message["Subject"].startswith(f"[YC-{request.id}] Xác nhận yêu cầu")
    assert "an.nv@sis.hust.edu.vn" in text and "Nguyễn Văn An" in text and "dùng được một lần" in text
    # Until the person confirms, one tap still cannot approve, and says the link is on its way.
    with pytest.raises(EdudeskError) as waiting:
        await desk.app.services.act(request.id, "approve", OFFICE)
    assert "đang chờ người nhận bấm xác nhận" in waiting.value.message

    version = (await Request.get(id=request.id)).version
    async with desk.client() as client:
        for _ in range(3):  # a mail scanner, a link preview, then the person
            async with client.get(f"{desk.url}/confirm/{token}") as r:
                assert r.status == 200
                page = await r.text()
        assert "Tôi xác nhận" in page and f"YC-{request.id}" in page and 'action="/confirm/"' in page
        assert (await SenderConfirmation.get(request_id=request.id)).opened_at is None
        assert (await Request.get(id=request.id)).version == version  # looking changed nothing

        async with client.post(f"{desk.url}/confirm/", data={"token": token}) as r:
            assert r.status == 200
            assert "Đã xác nhận" in await r.text()
        async with client.post(f"{desk.url}/confirm/", data={"token": token}) as r:
            assert r.status == 404
            again = await r.text()
        assert "đã được dùng" in again
        async with client.post(f"{desk.url}/confirm/", data={"token": "x" * 43}) as r:
            assert r.status == 404 and "đã được dùng" in await r.text()  # unknown: the same answer

    fresh = await Request.get(id=request.id)
    assert CONFIRMED in fresh.flags and fresh.version == version + 1
    card = build_card(await load_view(request.id), "office", desk.app.settings, desk.clock.now())
    assert "Người gửi đã xác nhận" in card.text
    assert ButtonAction.SEND_CONFIRM not in {b.action for row in card.buttons for b in row}
    notices = [j.payload for j in await Job.filter(kind="chat_notice")]
    assert any(n["audience"] == "office" and "Nguyễn Văn An đã xác nhận yêu cầu" in n["text"] for n in notices)
    assert (await desk.app.services.act(request.id, "approve", OFFICE)).state == "approved"

    # Every step is in the audit trail; the token is in none of it, nor in any job.
    actions = [e.action for e in await AuditEvent.filter(request_id=request.id).order_by("id")]
    for step in ("mail_request_created", "request_confirm_sent", "request_sender_confirmed", "request_approve"):
        assert step in actions, actions
    assert actions.count("action_refused") == 2  # the technical tap, and the approval before confirming
    refused = await AuditEvent.filter(action="sender_confirmation_refused").order_by("id")
    assert [e.detail["reason"] for e in refused] == ["invalid", "invalid"]
    stored = json.dumps([e.detail for e in await AuditEvent.all()] + [j.payload for j in await Job.all()],
                        ensure_ascii=False)
    at = stored.find(token)
    assert at < 0, stored[max(0, at - 300):at + 100]
    assert PERSONAL not in json.dumps([e.detail for e in await AuditEvent.all()])


async def test_without_a_personal_address_in_the_registry_staff_get_a_clear_answer_and_nothing_is_sent(
        desk: Desk) -> None:
    await RegistryEntry.filter(person_id="20201234").update(personal_email="")
    request = await desk.take(reset_mail())
    with pytest.raises(EdudeskError) as refused:
        await desk.app.services.send_confirmation(request.id, OFFICE)
    assert refused.value.code == "no_personal_address"
    assert "không có địa chỉ thư cá nhân của Nguyễn Văn An" in refused.value.message
    assert not await SenderConfirmation.all().exists()
    assert not await OutgoingMail.filter(template="confirm_sender").exists()
    audit = await AuditEvent.get(action="action_refused", request_id=request.id)
    assert audit.detail == {"action": "send_confirm", "reason": "no_personal_address", "people": 1}


async def test_an_expired_link_is_refused_and_confirms_nothing(desk: Desk) -> None:
    request = await desk.take(reset_mail())
    await desk.app.services.send_confirmation(request.id, OFFICE)
    _, _, token = await desk.confirmation_mail()
    desk.clock.advance(timedelta(hours=desk.app.settings.intake.confirm_link_hours, minutes=1))
    async with desk.client() as client:
        async with client.get(f"{desk.url}/confirm/{token}") as r:
            assert r.status == 410 and "đã hết hạn" in await r.text()
        async with client.post(f"{desk.url}/confirm/", data={"token": token}) as r:
            assert r.status == 410 and "đã hết hạn" in await r.text()
    assert (await SenderConfirmation.get(request_id=request.id)).opened_at is None
    assert CONFIRMED not in (await Request.get(id=request.id)).flags
    refused = await AuditEvent.get(action="sender_confirmation_refused")
    assert refused.detail["reason"] == "expired" and refused.request_id == request.id
    with pytest.raises(EdudeskError):
        await desk.app.services.act(request.id, "approve", OFFICE)


async def test_the_button_is_on_every_surface_and_only_office_roles_see_it_on_the_web(desk: Desk) -> None:
    request = await desk.take(reset_mail())
    view = await load_view(request.id)
    office = build_card(view, "office", desk.app.settings, desk.clock.now())
    assert ButtonAction.SEND_CONFIRM in {b.action for row in office.buttons for b in row}
    zalo = await zalo_render(office, desk.app.settings, desk.clock, staff_id=None, surface=Surface.ZALO)
    assert f"/xacnhan {request.id}" in zalo.text
    # Chat cards never carry the personal address.
    assert PERSONAL not in office.text and PERSONAL not in zalo.text

    staff = await Staff.create(name="Lê Văn Phòng", roles=["office"], email="phong@hust.edu.vn",
                               created_at=desk.clock.now())
    texts = TextContext(desk.app.settings, desk.clock, desk.app.queue, desk.app.services, None, Surface.ZALO)
    answer = await handle(texts, Actor("zalo:1", staff.name, frozenset({Role.TECHNICAL}), staff.id), "u1",
                          f"/xacnhan {request.id}")
    assert answer.startswith("⚠") and not await SenderConfirmation.all().exists()

    async def page_as(roles: list[str]) -> str:
        person = await Staff.create(name="Người dùng", roles=roles, created_at=desk.clock.now())
        token = (await issue_login_link(person.id, desk.app.settings, desk.clock, base_url=desk.url)).rsplit("/", 1)[1]
        async with desk.client() as client:
            async with client.post(f"{desk.url}/login", data={"token": token}, allow_redirects=False) as r:
                assert r.status == 303
            async with client.get(f"{desk.url}/requests/{request.id}") as r:
                return await r.text()

    assert 'value="send_confirm"' in await page_as(["office"])
    assert 'value="send_confirm"' not in await page_as(["technical"])

    answer = await handle(texts, Actor("zalo:2", staff.name, frozenset({Role.OFFICE}), staff.id), "u2",
                          f"/xacnhan {request.id}")
    assert answer.startswith("✓") and mask(PERSONAL) in answer
    assert await SenderConfirmation.filter(request_id=request.id).count() == 1


async def test_a_deletion_list_is_confirmed_by_the_requesting_unit_head(desk: Desk) -> None:
    await RegistryEntry.create(population="staff", person_id="000777", full_name="Phạm Văn Trưởng",
                               name_key="pham van truong", email="truong.pv@hust.edu.vn",
                               personal_email="truong.pham@yahoo.com", imported_at=desk.clock.now())
    request = await desk.take(mail(sender="Phạm Văn Trưởng <truong.pv@hust.edu.vn>",
                                   subject="Đề nghị xoá tài khoản thư điện tử cán bộ nghỉ việc", body=DELETE))
    assert request.kind == "delete_accounts" and UNVERIFIED in request.flags
    sent = await desk.app.services.send_confirmation(request.id, OFFICE)
    assert "Phạm Văn Trưởng" in sent.text
    message, _, _ = await desk.confirmation_mail()
    assert message["To"] == "truong.pham@yahoo.com"


async def test_a_changed_form_in_a_reply_from_an_unverified_school_sender_is_flagged(desk: Desk) -> None:
    first = await desk.take(mail(sender="Khoa CNTT <vp.cntt@hust.edu.vn>", subject="Đăng ký cấp tài khoản email cán bộ",
                                 body=NEW_STAFF, message_id="<list-1@hust.edu.vn>",
                                 headers={"Authentication-Results": f"{TRUSTED}; dmarc=pass header.from=hust.edu.vn"}))
    assert UNVERIFIED not in first.flags and first.sender_verified is True
    reply = mail(sender="Khoa CNTT <vp.cntt@hust.edu.vn>", subject=f"Re: [YC-{first.id}] Đăng ký cấp tài khoản",
                 body=NEW_STAFF.replace("Lê Thị Cúc", "Lê Thị Cúc Hoa"),
                 headers={"In-Reply-To": "<list-1@hust.edu.vn>"})
    again = await desk.take(reply)
    assert again.id == first.id and UNVERIFIED in again.flags and again.sender_verified is None
    assert any("Thư trả lời có phiếu mới" in p["message"] for p in again.problems)


async def test_official_business_from_free_mail_is_flagged_by_default(desk: Desk) -> None:
    request = await desk.take(mail(sender="Lê Thị Cúc <cuc.lt@gmail.com>", subject="Đăng ký cấp tài khoản email cán bộ",
                                   body=NEW_STAFF))
    assert request.state == "received" and "free_mail_official" in request.flags
    assert any("Thông tư 53/2012" in p["message"] for p in request.problems)
    student = await desk.take(mail(body=RESET, subject="Cấp lại mật khẩu email", message_id="<s@gmail.com>"))
    assert "free_mail_official" not in student.flags  # a student's own reset is not official business


async def test_official_business_from_free_mail_is_refused_with_the_circular_53_mail(
        app_factory: Any, settings_factory: Any) -> None:
    app = await app_factory(settings_factory(intake={"free_mail_official": "refuse",
                                                     "free_mail_domains": ["gmail.com", "truong-mien-phi.vn"]}),
                            clock=FakeClock(), inline_analysis=True)
    desk = Desk(app, app.clock)  # type: ignore[arg-type]
    request = await desk.take(mail(sender="Trưởng khoa <truongkhoa.cntt@truong-mien-phi.vn>",
                                   subject="Đề nghị xoá tài khoản thư điện tử cán bộ nghỉ việc", body=DELETE))
    assert request.state == "rejected" and request.deadline is None and "free_mail_official" in request.flags
    audit = await AuditEvent.get(action="request_reject", request_id=request.id)
    assert audit.actor == "system" and "Thông tư 53/2012" in audit.detail["reason"]
    await app.worker.drain()
    [answer] = [m for m in desk.outbox() if m["To"] == "truongkhoa.cntt@truong-mien-phi.vn"]
    assert answer["Subject"] == f"[YC-{request.id}] Yêu cầu chưa được chấp thuận"
    text = _text(answer)
    assert "Thông tư 53/2012/TT-BGDĐT" in text and "hust.edu.vn" in text and "truong-mien-phi.vn" in text
    with pytest.raises(EdudeskError):
        await app.services.act(request.id, "approve", OFFICE)
    assert is_free_mail("a@gmail.com") and not is_free_mail("a@gmail.com", ["yahoo.com"])


async def test_the_registry_keeps_a_personal_address_column(desk: Desk, tmp_path: Path) -> None:
    path = tmp_path / "canbo.csv"
    path.write_text("Mã cán bộ,Họ và tên,Email,Email cá nhân\n"
                    "000111,Đỗ Thị Lan,lan.dt@hust.edu.vn,Lan.Do@Gmail.com\n"
                    "000222,Vũ Văn Nam,nam.vv@hust.edu.vn,\n"
                    "000333,Hà Văn Sơn,son.hv@hust.edu.vn,son.hv@hust.edu.vn\n", encoding="utf-8")
    result = await import_registry(path, Population.STAFF, desk.app.settings, desk.clock)
    assert result.created == 3
    entries = {e.person_id: e for e in await RegistryEntry.filter(population="staff")}
    assert entries["000111"].personal_email == "lan.do@gmail.com" and entries["000111"].email == "lan.dt@hust.edu.vn"
    assert entries["000222"].personal_email == "" and entries["000333"].personal_email == ""  # a school address is not
    # A later export without the column leaves the kept addresses alone.
    path.write_text("Mã cán bộ,Họ và tên,Email\n000111,Đỗ Thị Lan,lan.dt@hust.edu.vn\n", encoding="utf-8")
    await import_registry(path, Population.STAFF, desk.app.settings, desk.clock)
    assert (await RegistryEntry.get(person_id="000111")).personal_email == "lan.do@gmail.com"
