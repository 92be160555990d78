"""The account sheet on the result mail of a list: built at send time, through the real maildir sink and a
real SMTP server, with the passwords only in "mail" delivery, protected by the list password when set."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import msoffcrypto
import olefile
import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from tortoise.transactions import in_transaction

from edudesk.core.accounts.models import Account, PendingSecret
from edudesk.core.accounts.sheet import build_accounts_xlsx
from edudesk.core.models import Job
from edudesk.core.people.staff import Actor, Role
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import OutgoingMail, Request, RequestPerson
from edudesk.directories.local import verify_password
from edudesk.mailer.delivery import XLSX, MailDelivery
from edudesk.mailer.outbox import MailSendError, SmtpMailSender
from tests.servers.smtp_sink import SmtpSink, free_port

pytestmark = pytest.mark.db

OFFICE = Actor("tg:1", "Lê Văn Phòng", frozenset({Role.OFFICE}))
TECH = Actor("tg:2", "Trần Kỹ Thuật", frozenset({Role.TECHNICAL}))
UNIT = "vp.khoa-cntt@hust.edu.vn"
LIST_PASSWORD = "Khoa CNTT – K70"
NAMES = ("Phạm Thị Hương", "Nguyễn Đức Thắng", "Lê Thị Ngọc Ánh", "Trần Văn Đức")


async def approved_list(app: Any, people: int = 3) -> Request:
    """A unit's list of students, approved and sent to provisioning (the provision job is queued)."""
    now = app.clock.now()
    request = await Request.create(kind="bulk_new_accounts", population="student", state="received",
                                   sender=UNIT, sender_name="Văn phòng Khoa Công nghệ Thông tin",
                                   subject="Danh sách sinh viên K70", received_at=now,
                                   deadline=now + timedelta(hours=24), updated_at=now)
    await RequestPerson.bulk_create([
        RequestPerson(request=request, row=i, person_id=f"2025{i:04d}", full_name=NAMES[i],
                      proposed_address=f"sv{i:04d}.k70@sis.hust.edu.vn",
                      data={"student_id": f"2025{i:04d}", "full_name": NAMES[i]}) for i in range(people)])
    await app.services.act(request.id, "approve", OFFICE)
    await app.services.act(request.id, "provision", TECH)
    return request


def maildir_mails(app: Any) -> list[EmailMessage]:
    new = Path(app.settings.data_dir) / "outbox" / "new"
    parsed = [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sorted(new.iterdir())]
    return [m for m in parsed if isinstance(m, EmailMessage)]


def result_mail(app: Any, request: Request) -> EmailMessage:
    (mail,) = [m for m in maildir_mails(app) if str(m["Subject"]).startswith(f"[YC-{request.id}] Đã cấp")]
    return mail


def attachments(mail: EmailMessage) -> dict[str, tuple[str, bytes]]:
    found = {}
    for part in mail.iter_attachments():
        assert isinstance(part, EmailMessage)
        found[str(part.get_filename())] = (part.get_content_type(), part.get_content())
    return found


def sheet_rows(data: bytes, password: str | None = None) -> list[list[Any]]:
    if password is not None:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        office.load_key(password=password)
        out = io.BytesIO()
        office.decrypt(out)
        data = out.getvalue()
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert isinstance(sheet, Worksheet)
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


def as_dicts(rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


async def test_a_list_delivered_by_mail_carries_the_sheet_with_working_passwords(
    app_factory: Any, settings_factory: Any,
) -> None:
    app = await app_factory(settings_factory(provisioning={"delivery": "mail"}), inline_analysis=True)
    request = await approved_list(app)
    await app.worker.drain()
    mail = result_mail(app, request)
    files = attachments(mail)
    assert list(files) == [f"tai-khoan-YC-{request.id}.xlsx"]
    content_type, data = files[f"tai-khoan-YC-{request.id}.xlsx"]
    assert content_type == XLSX
    rows = as_dicts(sheet_rows(data))
    assert [(r["Họ và tên"], r["Mã cán bộ/sinh viên"], r["Địa chỉ thư điện tử"]) for r in rows] == [
        (NAMES[i], f"2025{i:04d}", f"sv{i:04d}.k70@sis.hust.edu.vn") for i in range(3)]
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()  # type: ignore[attr-defined]
    assert f"tệp đính kèm tai-khoan-YC-{request.id}.xlsx" in text
    for row in rows:
        account = await Account.get(address=row["Địa chỉ thư điện tử"])
        assert verify_password(row["Mật khẩu"], account.password_hash)  # the sheet's password signs in
        assert f"Mật khẩu tạm thời: {row['Mật khẩu']}" in text  # and agrees with the mail's text
    # Sent: the sealed passwords are gone, and the sheet was never kept anywhere but in the mail.
    assert not await PendingSecret.filter(request_id=request.id).exists()
    sent = await OutgoingMail.get(key=f"done:{request.id}")
    assert sent.state == "sent"
    job = await Job.get(kind="send_mail", key=f"send_mail:{sent.id}")
    assert all(r["Mật khẩu"] not in str(job.payload) for r in rows)  # the queue holds sealed keys only


async def test_a_list_delivered_by_link_carries_the_sheet_without_passwords(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    assert app.settings.provisioning.delivery == "link"
    request = await approved_list(app)
    await app.worker.drain()
    files = attachments(result_mail(app, request))
    _, data = files[f"tai-khoan-YC-{request.id}.xlsx"]
    rows = sheet_rows(data)
    assert rows[0] == ["STT", "Họ và tên", "Mã cán bộ/sinh viên", "Địa chỉ thư điện tử"]
    assert [r[1] for r in rows[1:]] == list(NAMES[:3])
    # The passwords wait sealed for the one-time link; none of them is anywhere in the sheet.
    secrets = await PendingSecret.filter(request_id=request.id)
    assert len(secrets) == 3
    cells = {str(c) for row in rows for c in row}
    assert all(app.box.open(s.sealed) not in cells for s in secrets)


async def test_the_list_password_from_the_environment_protects_the_sheet(
    app_factory: Any, settings_factory: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDUDESK_TEST_LIST_PASSWORD", LIST_PASSWORD)
    settings = settings_factory(provisioning={"delivery": "mail", "list_password_env": "EDUDESK_TEST_LIST_PASSWORD"})
    app = await app_factory(settings, inline_analysis=True)
    request = await approved_list(app)
    await app.worker.drain()
    _, data = attachments(result_mail(app, request))[f"tai-khoan-YC-{request.id}.xlsx"]
    assert olefile.isOleFile(data)
    with pytest.raises(zipfile.BadZipFile):  # openpyxl cannot read it without the password
        sheet_rows(data)
    rows = as_dicts(sheet_rows(data, LIST_PASSWORD))
    assert [r["Họ và tên"] for r in rows] == list(NAMES[:3]) and all(r["Mật khẩu"] for r in rows)
    with pytest.raises(msoffcrypto.exceptions.InvalidKeyError):
        sheet_rows(data, "Khoa CNTT - K70")


async def test_one_account_gets_no_sheet(app_factory: Any, settings_factory: Any) -> None:
    app = await app_factory(settings_factory(provisioning={"delivery": "mail"}), inline_analysis=True)
    request = await approved_list(app, people=1)
    await Request.filter(id=request.id).update(kind="new_account")
    await app.worker.drain()
    mail = result_mail(app, request)
    assert attachments(mail) == {} and mail.get_content_type() != "multipart/mixed"


async def queue_list_mail(app: Any, passwords: tuple[str, ...]) -> OutgoingMail:
    """The result mail of a list as the provisioning job queues it in "mail" delivery: sealed passwords."""
    now = app.clock.now()
    request = await Request.create(kind="bulk_new_accounts", population="student", state="done", sender=UNIT,
                                   received_at=now, updated_at=now)
    accounts = []
    for i, password in enumerate(passwords):
        key = f"pw:{request.id}:{i}"
        await PendingSecret.create(key=key, request_id=request.id, sealed=app.box.seal(password), created_at=now)
        accounts.append({"full_name": NAMES[i], "address": f"sv{i:04d}.k70@sis.hust.edu.vn",
                         "person_id": f"2025{i:04d}", "password_secret": key})
    context = {**mail_context(app.settings, "Văn phòng Khoa"), "number": request.id, "kind": request.kind,
               "accounts": accounts, "accounts_sheet": True, "login_url": "https://mail.hust.edu.vn"}
    async with in_transaction() as conn:
        await queue_mail(conn, app.queue, app.clock, app.settings, key=f"done:{request.id}", template="done",
                         recipient=UNIT, context=context, request_id=request.id, automatic=False)
    return await OutgoingMail.get(key=f"done:{request.id}")


async def test_the_sheet_goes_out_over_smtp_and_survives_a_relay_that_was_down(
    app_factory: Any, smtp_sink: SmtpSink,
) -> None:
    app = await app_factory(inline_analysis=True)
    passwords = ("Hx7-pq2m-Lzw", "Kt9#bd4R-qmx", "Vn3+Tq8s-Wep", "Rm4=Hp7w-Zkd")
    mail = await queue_list_mail(app, passwords)
    job = await Job.get(key=f"send_mail:{mail.id}")
    down = MailDelivery(app.settings, app.clock, SmtpMailSender("127.0.0.1", free_port(), timeout=2),
                        app.delivery.templates_dir, app.box)
    with pytest.raises(MailSendError):
        await down(job)
    # A temporary failure keeps the sealed passwords: the retry builds the same sheet again.
    assert await PendingSecret.filter(request_id=mail.request_id).count() == 4
    up = MailDelivery(app.settings, app.clock, SmtpMailSender(smtp_sink.host, smtp_sink.port, timeout=5),
                      app.delivery.templates_dir, app.box)
    await up(job)
    received = await smtp_sink.wait_for(lambda m: UNIT in m.rcpt_tos)
    assert received.message.get_content_type() == "multipart/mixed"
    files = attachments(received.message)
    assert list(files) == [f"tai-khoan-YC-{mail.request_id}.xlsx"]
    rows = as_dicts(sheet_rows(files[f"tai-khoan-YC-{mail.request_id}.xlsx"][1]))
    assert [(r["Họ và tên"], r["Mật khẩu"]) for r in rows] == list(zip(NAMES, passwords, strict=True))
    assert b"Hx7-pq2m-Lzw" not in received.raw.split(b"Content-Disposition: attachment")[1]  # base64 on the wire
    assert not await PendingSecret.filter(request_id=mail.request_id).exists()
    assert (await OutgoingMail.get(id=mail.id)).state == "sent"


async def test_the_sheet_matches_what_build_accounts_xlsx_makes_of_the_same_rows(app_factory: Any) -> None:
    app = await app_factory(inline_analysis=True)
    passwords = ("Hx7-pq2m-Lzw", "Kt9#bd4R-qmx")
    mail = await queue_list_mail(app, passwords)
    await app.worker.drain()
    (sent,) = maildir_mails(app)
    _, data = attachments(sent)[f"tai-khoan-YC-{mail.request_id}.xlsx"]
    expected = build_accounts_xlsx([{"full_name": NAMES[i], "address": f"sv{i:04d}.k70@sis.hust.edu.vn",
                                     "person_id": f"2025{i:04d}", "password": p} for i, p in enumerate(passwords)])
    assert sheet_rows(data) == sheet_rows(expected)
