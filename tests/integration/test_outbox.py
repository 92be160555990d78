"""The two outgoing transports against real storage and a real SMTP server, and the factory."""

from __future__ import annotations

import asyncio
import email
import os
import shutil
import unicodedata
from dataclasses import replace
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from edudesk.core.config import OutgoingSettings, Settings, load_settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import OutgoingMessage
from edudesk.mailer.outbox import MaildirMailSender, MailSendError, SmtpMailSender, make_mail_sender, to_mime
from tests.servers.smtp_sink import SmtpSink, free_port
from tests.servers.smtp_sink import smtp_sink_fixture as smtp_sink_fixture  # noqa: F401 - the fixture
from tests.unit.test_render import OFFICE, OFFICE_NAME, build

REQUESTER = "hoa.nguyenthi@hust.edu.vn"


def message(**changes: object) -> OutgoingMessage:
    return replace(build(), **changes)  # type: ignore[arg-type]


def stored(maildir: Path) -> list[Path]:
    return sorted((maildir / "new").iterdir()) + sorted((maildir / "cur").iterdir())


async def test_maildir_stores_a_resent_message_id_once(tmp_path: Path) -> None:
    sender = MaildirMailSender(tmp_path / "outbox")
    await sender.send(message())
    await sender.send(message())
    files = stored(tmp_path / "outbox")
    assert len(files) == 1
    assert files[0].name == sender.file_name(message().message_id)
    assert list((tmp_path / "outbox" / "tmp").iterdir()) == []
    parsed = BytesParser(policy=policy.default).parsebytes(files[0].read_bytes())
    assert str(parsed["Subject"]).startswith("[YC-12] Đã tiếp nhận")
    assert b"\r\n" not in files[0].read_bytes()  # maildir files use LF


async def test_maildir_concurrent_sends_of_one_message_id_store_one_file(tmp_path: Path) -> None:
    sender = MaildirMailSender(tmp_path / "outbox")
    await asyncio.gather(*(sender.send(message()) for _ in range(8)))
    assert len(stored(tmp_path / "outbox")) == 1


async def test_maildir_does_not_redeliver_after_a_client_has_read_the_mail(tmp_path: Path) -> None:
    sender = MaildirMailSender(tmp_path / "outbox")
    await sender.send(message())
    (first,) = stored(tmp_path / "outbox")
    first.rename(tmp_path / "outbox" / "cur" / f"{first.name}:2,S")
    await sender.send(message())
    assert [p.name for p in stored(tmp_path / "outbox")] == [f"{first.name}:2,S"]


async def test_maildir_finds_a_read_mail_whatever_the_client_named_it_in_cur(tmp_path: Path) -> None:
    sender = MaildirMailSender(tmp_path / "outbox")
    cur = tmp_path / "outbox" / "cur"
    name = sender.file_name(message().message_id)
    await sender.send(message(message_id="<edudesk.other@hust.edu.vn>"))  # makes the folders
    (cur / f"{name}x:2,S").write_bytes(b"another name that starts the same")  # not this mail
    (cur / "unrelated:2,").write_bytes(b"x")
    await sender.send(message())
    assert (tmp_path / "outbox" / "new" / name).exists()
    for moved in (name, f"{name}:2,", f"{name}:2,RS"):  # no info part, an empty one, flags
        (tmp_path / "outbox" / "new" / name).rename(cur / moved)
        await sender.send(message())
        assert not (tmp_path / "outbox" / "new" / name).exists(), moved
        (cur / moved).rename(tmp_path / "outbox" / "new" / name)


async def test_maildir_makes_its_folders_again_when_they_were_removed(tmp_path: Path) -> None:
    sender = MaildirMailSender(tmp_path / "outbox")
    await sender.send(message(message_id="<edudesk.first@hust.edu.vn>"))
    shutil.rmtree(tmp_path / "outbox")  # an admin clearing the outbox while the service runs
    await sender.send(message())
    assert [p.name for p in stored(tmp_path / "outbox")] == [sender.file_name(message().message_id)]


async def test_maildir_keeps_different_message_ids_apart(tmp_path: Path) -> None:
    sender = MaildirMailSender(tmp_path / "outbox")
    await sender.send(message())
    await sender.send(message(message_id="<edudesk.mail-done-12@hust.edu.vn>"))
    assert len(stored(tmp_path / "outbox")) == 2


async def test_smtp_delivers_over_a_real_socket_with_the_vietnamese_subject(smtp_sink: SmtpSink) -> None:
    await SmtpMailSender(smtp_sink.host, smtp_sink.port, timeout=5).send(message())
    mail = await smtp_sink.wait_for(lambda m: REQUESTER in m.rcpt_tos)
    assert mail.mail_from == OFFICE  # the envelope carries the bare address, not the display name
    assert mail.subject == "[YC-12] Đã tiếp nhận yêu cầu cấp tài khoản"
    assert mail.message["From"].addresses[0].display_name == OFFICE_NAME
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message["X-Auto-Response-Suppress"] == "All"
    assert mail.message["X-Edudesk-Request"] == "12"
    body = mail.message.get_body(preferencelist=("plain",))
    assert body is not None and "Kính gửi Anh/Chị Nguyễn Thị Hoà," in body.get_content()


async def test_smtp_logs_in_when_credentials_are_configured() -> None:
    with SmtpSink(credentials=("edudesk", "mật-khẩu")) as sink:
        await SmtpMailSender(sink.host, sink.port, username="edudesk", password="mật-khẩu").send(message())
        await sink.wait_for()
        with pytest.raises(MailSendError) as err:
            await SmtpMailSender(sink.host, sink.port, username="edudesk", password="sai").send(message())
    assert err.value.auth and not err.value.permanent  # our login is refused: an outage to fix, the mail waits


async def test_smtp_refused_recipient_is_a_permanent_error() -> None:
    with SmtpSink(refuse={REQUESTER}) as sink:
        with pytest.raises(MailSendError) as err:
            await SmtpMailSender(sink.host, sink.port).send(message())
    assert err.value.permanent
    assert REQUESTER in err.value.message


async def test_smtp_unreachable_relay_is_a_temporary_error() -> None:
    with pytest.raises(MailSendError) as err:
        await SmtpMailSender("127.0.0.1", free_port(), timeout=2).send(message())
    assert not err.value.permanent


def test_sync_wait_times_out_with_what_arrived(smtp_sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError, match="no matching mail"):
        smtp_sink.wait_for_sync(timeout=0.1)


def test_factory_picks_the_maildir_sink_by_default(tmp_path: Path) -> None:
    sender = make_mail_sender(Settings(base_dir=str(tmp_path)))
    assert isinstance(sender, MaildirMailSender)
    assert sender.path == tmp_path / "data" / "outbox"


def test_factory_builds_the_smtp_relay_with_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDUDESK_TEST_SMTP_PW", "bí-mật")
    outgoing = OutgoingSettings(
        transport="smtp",
        smtp_host="relay.hust.edu.vn",
        smtp_port=587,
        smtp_starttls=True,
        smtp_username="edudesk",
        smtp_password_env="EDUDESK_TEST_SMTP_PW",
    )
    sender = make_mail_sender(load_settings(None, overrides={"outgoing": outgoing.model_dump()}, environ=os.environ))
    assert isinstance(sender, SmtpMailSender)
    assert (sender.host, sender.port, sender.starttls) == ("relay.hust.edu.vn", 587, True)
    assert (sender.username, sender.password) == ("edudesk", "bí-mật")


def test_an_unknown_transport_is_refused_when_the_config_is_read() -> None:
    with pytest.raises(ConfigError, match=r"\[outgoing\] transport: Input should be 'maildir' or 'smtp'"):
        load_settings(None, overrides={"outgoing": {"transport": "sendmail"}})


LONG_NAME = "Danh sách tài khoản sinh viên K70 – Trường Điện – Điện tử, Đại học Bách khoa Hà Nội.xlsx"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def with_files(*files: tuple[str, str, bytes]) -> OutgoingMessage:
    return build(attachments=files)


def test_a_mail_without_files_stays_multipart_alternative() -> None:
    parsed = BytesParser(policy=policy.default).parsebytes(to_mime(build()))
    assert parsed.get_content_type() == "multipart/alternative"
    assert list(parsed.iter_attachments()) == []


async def test_maildir_keeps_a_vietnamese_file_name_and_the_bytes_of_an_attachment(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40  # every byte value: nothing may be lost to a text encoding
    await MaildirMailSender(tmp_path / "outbox").send(with_files((LONG_NAME, XLSX_TYPE, data),
                                                                 ("biên bản.pdf", "application/pdf", b"%PDF-1.7")))
    (path,) = stored(tmp_path / "outbox")
    raw = path.read_bytes()
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed.get_content_type() == "multipart/mixed"
    files = [(p.get_filename(), p.get_content_type(), p.get_content()) for p in parsed.iter_attachments()]
    assert files == [(LONG_NAME, XLSX_TYPE, data), ("biên bản.pdf", "application/pdf", b"%PDF-1.7")]
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None and "Kính gửi Anh/Chị Nguyễn Thị Hoà," in body.get_content()
    assert raw.isascii()  # 7-bit clean: RFC 2231/2047 names, base64 data
    assert max(len(line) for line in raw.split(b"\n")) <= 78
    # The old-style parser (compat32, what many relays and scanners use) reads the same name.
    legacy = [p.get_filename() for p in email.message_from_bytes(raw).walk() if p.get_filename()]
    assert legacy == [LONG_NAME, "biên bản.pdf"]


async def test_smtp_carries_an_attachment_with_its_file_name(smtp_sink: SmtpSink) -> None:
    data = b"PK\x03\x04" + bytes(range(256)) * 8
    await SmtpMailSender(smtp_sink.host, smtp_sink.port, timeout=5).send(
        with_files(("tai-khoan-YC-12.xlsx", XLSX_TYPE, data)))
    mail = await smtp_sink.wait_for(lambda m: REQUESTER in m.rcpt_tos)
    (part,) = mail.message.iter_attachments()
    assert (part.get_filename(), part.get_content_type(), part.get_content()) == ("tai-khoan-YC-12.xlsx",
                                                                                  XLSX_TYPE, data)
    assert mail.message["X-Edudesk-Request"] == "12" and mail.message["Auto-Submitted"] == "auto-generated"


def test_an_attachment_needs_a_mime_type_and_gets_a_clean_name() -> None:
    with pytest.raises(ValueError):
        build(attachments=(("a.xlsx", "xlsx\r\nBcc: x@example.com", b"x"),))
    ((name, _, _),) = build(attachments=((unicodedata.normalize("NFD", "tài khoản.xlsx"), "text/plain", b"x"),
                                         )).attachments
    assert name == "tài khoản.xlsx" and unicodedata.is_normalized("NFC", name)
    ((name, _, _),) = build(attachments=(("../../etc/passwd\r\n.txt", "Text/Plain", b"x"),)).attachments
    assert name == "..-..-etc-passwd  .txt"
