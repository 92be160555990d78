"""ImapIntake against a real, private Dovecot: what reaches the intake ledger, and when mail is flagged."""

from __future__ import annotations

import asyncio
import dataclasses
import email.policy
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from itertools import count

import pytest

from edudesk.core.config import ImapSettings
from edudesk.core.ports import StoreResult
from edudesk.mailer.imap import ImapIntake
from tests.servers.dovecot import DEFAULT_PASSWORD, DEFAULT_USER, DovecotServer

# The `dovecot` fixture comes from tests/conftest.py (tests.servers.dovecot.dovecot_fixture).

_ids = count(1)


def make_mail(subject: str, body: str = "Kính gửi phòng CNTT.") -> bytes:
    """A small mail with a Vietnamese (RFC 2047) subject and a unique Message-ID."""
    mail = EmailMessage()
    mail["From"] = "Nguyễn Văn An <an@school.test>"
    mail["To"] = DEFAULT_USER
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{next(_ids)}.{time.time_ns()}@school.test>"
    mail.set_content(body)
    return mail.as_bytes()


def subject_of(raw: bytes) -> str:
    """The decoded Subject of a raw mail or header block."""
    return str(BytesHeaderParser(policy=email.policy.default).parsebytes(raw)["Subject"])


@dataclasses.dataclass
class StoreCall:
    raw: bytes
    source: str
    source_key: str | None
    oversize: int | None
    result: StoreResult | None = None


class MemorySink:
    """An in-memory IntakeSink: idempotent on source_key, Message-ID and content hash, like the ledger."""

    def __init__(self) -> None:
        self.mails: dict[int, bytes] = {}
        self.known: dict[str, int] = {}
        self.calls: list[StoreCall] = []
        self.checkpoints: dict[str, tuple[int, int]] = {}
        self.health: list[tuple[bool, str]] = []
        self.fail_when: Callable[[bytes], bool] = lambda raw: False
        self.after_store: Callable[[], Awaitable[None]] | None = None

    async def store(self, raw: bytes, *, source: str, source_key: str | None = None, envelope_from: str = "",
                    envelope_to: tuple[str, ...] = (), oversize: int | None = None) -> StoreResult:
        call = StoreCall(raw, source, source_key, oversize)
        self.calls.append(call)
        if self.fail_when(raw):
            raise RuntimeError("database is locked")
        message_id = BytesHeaderParser().parsebytes(raw).get("Message-ID", "")
        keys = [k for k in (source_key, message_id, hashlib.sha256(raw).hexdigest()) if k]
        known = next((self.known[k] for k in keys if k in self.known), None)
        call.result = StoreResult(known or len(self.mails) + 1, duplicate=known is not None)
        self.mails.setdefault(call.result.mail_id, raw)
        self.known.update(dict.fromkeys(keys, call.result.mail_id))
        if self.after_store is not None:
            await self.after_store()  # the commit is done: anything failing now is "after store"
        return call.result

    async def load_checkpoint(self, key: str) -> tuple[int, int] | None:
        return self.checkpoints.get(key)

    async def save_checkpoint(self, key: str, uidvalidity: int, last_uid: int) -> None:
        self.checkpoints[key] = (uidvalidity, last_uid)

    async def report_health(self, channel: str, ok: bool, detail: str = "") -> None:
        assert channel == "imap"
        self.health.append((ok, detail))

    def subjects(self) -> list[str]:
        """Subjects of the stored mails, in storing order."""
        return [subject_of(raw) for raw in self.mails.values()]

    @property
    def healthy(self) -> bool | None:
        """The last reported health."""
        return self.health[-1][0] if self.health else None


def imap_settings(server: DovecotServer, **changes: object) -> ImapSettings:
    """Settings for the private server, with short timings so tests stay quick."""
    base = ImapSettings(enabled=True, host=server.host, port=server.port, ssl=False, username=DEFAULT_USER,
                        backlog_since="all", idle_timeout=60, poll_interval=0.2, backoff_initial=0.05,
                        backoff_max=0.3)
    return base.model_copy(update=changes)


def make_intake(server: DovecotServer, sink: MemorySink, *, max_message_size: int = 1_000_000,
                password: str = DEFAULT_PASSWORD, **changes: object) -> ImapIntake:
    """An ImapIntake watching the private server's INBOX."""
    return ImapIntake(imap_settings(server, **changes), password, sink, checkpoints=sink, health=sink,
                      max_message_size=max_message_size)


@asynccontextmanager
async def watching(intake: ImapIntake) -> AsyncIterator[asyncio.Task[None]]:
    """Run the watcher for the duration of the block, then stop it."""
    async with asyncio.TaskGroup() as group:
        task = group.create_task(intake.run())
        try:
            yield task
        finally:
            intake.close()


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until `check()` holds; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition still false after {within} s")
        await asyncio.sleep(0.02)


def flags_by_subject(server: DovecotServer, mailbox: str = "INBOX") -> dict[str, set[bytes]]:
    """Each message's flags in a mailbox, keyed by subject."""
    with server.connect() as client:
        client.select_folder(mailbox, readonly=True)
        data = client.fetch(client.search(["ALL"]), ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    return {subject_of(item[b"BODY[HEADER.FIELDS (SUBJECT)]"]): set(item[b"FLAGS"]) for item in data.values()}


PROCESSED = {b"\\Seen", b"$Edudesk"}


async def test_backlog_all_ingests_mail_delivered_before_start_and_flags_it(dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Cấp tài khoản"))
    dovecot.deliver(make_mail("Đặt lại mật khẩu"))
    sink = MemorySink()
    intake = make_intake(dovecot, sink)
    async with watching(intake):
        await eventually(lambda: len(sink.mails) == 2 and sink.healthy is True)
    assert sink.subjects() == ["Cấp tài khoản", "Đặt lại mật khẩu"]
    assert [c.source for c in sink.calls] == ["imap", "imap"]
    uidvalidity, last = sink.checkpoints[intake.checkpoint_key]
    assert last == 2
    assert sink.calls[1].source_key == f"{intake.checkpoint_key}:{uidvalidity}:2"
    assert intake.checkpoint_key == f"imap:{DEFAULT_USER}@127.0.0.1:{dovecot.port}/INBOX"
    assert all(flags >= PROCESSED for flags in flags_by_subject(dovecot).values())


async def test_mail_already_opened_in_a_mail_client_is_still_ingested(dovecot: DovecotServer) -> None:
    dovecot.deliver_seen(make_mail("Đã đọc trong Thunderbird"))
    sink = MemorySink()
    async with watching(make_intake(dovecot, sink)):
        await eventually(lambda: len(sink.mails) == 1)
    assert sink.subjects() == ["Đã đọc trong Thunderbird"]


async def test_new_mail_during_idle_is_ingested_within_seconds(dovecot: DovecotServer) -> None:
    sink = MemorySink()
    # An hour's poll interval: only IDLE can bring the mail in this fast.
    async with watching(make_intake(dovecot, sink, poll_interval=3600)):
        await eventually(lambda: sink.healthy is True)
        dovecot.deliver(make_mail("Mail mới"))
        await eventually(lambda: len(sink.mails) == 1, within=3)
    assert sink.subjects() == ["Mail mới"]


async def test_without_idle_new_mail_is_found_by_polling(dovecot: DovecotServer) -> None:
    sink = MemorySink()
    async with watching(make_intake(dovecot, sink, idle=False, poll_interval=0.2)):
        await eventually(lambda: sink.healthy is True)
        dovecot.deliver(make_mail("Qua polling"))
        await eventually(lambda: len(sink.mails) == 1, within=3)


async def test_restart_resumes_from_checkpoint_even_if_flags_were_cleared(dovecot: DovecotServer) -> None:
    sink = MemorySink()
    dovecot.deliver(make_mail("Một"))
    dovecot.deliver(make_mail("Hai"))
    async with watching(make_intake(dovecot, sink)):
        await eventually(lambda: len(sink.mails) == 2)
    with dovecot.connect() as client:  # someone marks everything unread and strips our keyword
        client.select_folder("INBOX")
        client.remove_flags(client.search(["ALL"]), [b"\\Seen", b"$Edudesk"])
    dovecot.deliver(make_mail("Ba"))
    async with watching(make_intake(dovecot, sink)):
        await eventually(lambda: len(sink.mails) == 3)
        await asyncio.sleep(0.3)  # a second pass must not pick the old two up again
    assert len(sink.calls) == 3
    assert sink.subjects() == ["Một", "Hai", "Ba"]


async def test_crash_after_store_before_flag_stores_once_then_flags(dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Sự cố"))
    sink = MemorySink()
    intake = make_intake(dovecot, sink)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(intake.run())

        async def crash() -> None:
            sink.after_store = None
            task.cancel()  # the process dies right after the ledger committed
            await asyncio.sleep(0)

        sink.after_store = crash
    assert task.cancelled()
    assert len(sink.mails) == 1
    assert not flags_by_subject(dovecot)["Sự cố"] & PROCESSED
    assert sink.checkpoints[intake.checkpoint_key][1] == 0
    async with watching(make_intake(dovecot, sink)):
        await eventually(lambda: flags_by_subject(dovecot)["Sự cố"] >= PROCESSED)
    assert len(sink.mails) == 1
    assert [c.result.duplicate for c in sink.calls if c.result] == [False, True]
    assert sink.checkpoints[intake.checkpoint_key][1] == 1


async def test_connection_lost_between_store_and_flag_stores_once(dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Mất kết nối"))
    sink = MemorySink()

    async def server_dies() -> None:
        sink.after_store = None
        await asyncio.to_thread(dovecot.stop)

    sink.after_store = server_dies
    async with watching(make_intake(dovecot, sink)):
        await eventually(lambda: sink.healthy is False)
        await asyncio.to_thread(dovecot.start)
        await eventually(lambda: sink.healthy is True)
    assert flags_by_subject(dovecot)["Mất kết nối"] >= PROCESSED
    assert len(sink.mails) == 1 and len(sink.calls) == 2


async def test_server_outage_is_reported_then_backlog_ingested_after_recovery(dovecot: DovecotServer) -> None:
    sink = MemorySink()
    async with watching(make_intake(dovecot, sink)) as task:
        await eventually(lambda: sink.healthy is True)
        await asyncio.to_thread(dovecot.stop)
        await eventually(lambda: sink.healthy is False)
        dovecot.deliver_offline(make_mail("Đến khi IMAP ngừng"))  # the MTA keeps delivering
        await asyncio.sleep(0.5)  # several failed reconnects
        assert not task.done()
        await asyncio.to_thread(dovecot.start)
        await eventually(lambda: len(sink.mails) == 1 and sink.healthy is True)
    assert sum(1 for ok, _ in sink.health if not ok) >= 2
    assert "ConnectionRefusedError" in " ".join(detail for ok, detail in sink.health if not ok)


async def test_wrong_password_is_reported_and_retried_not_fatal(dovecot: DovecotServer) -> None:
    sink = MemorySink()
    async with watching(make_intake(dovecot, sink, password="sai")) as task:
        await eventually(lambda: len(sink.health) >= 2)
        assert not task.done()
    assert sink.healthy is False and "LoginError" in sink.health[-1][1]


async def test_backlog_new_ignores_mail_already_there(dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Cũ"))
    sink = MemorySink()
    async with watching(make_intake(dovecot, sink, backlog_since="new")):
        await eventually(lambda: sink.healthy is True)
        dovecot.deliver(make_mail("Mới"))
        await eventually(lambda: len(sink.mails) == 1)
    assert sink.subjects() == ["Mới"]
    assert not flags_by_subject(dovecot)["Cũ"] & PROCESSED


async def test_backlog_since_date_takes_mail_from_that_date(dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Tháng tám"), when=datetime(2026, 8, 20, 9, 0))
    dovecot.deliver(make_mail("Tháng chín"), when=datetime(2026, 9, 2, 9, 0))
    sink = MemorySink()
    async with watching(make_intake(dovecot, sink, backlog_since="2026-09-01")):
        await eventually(lambda: sink.healthy is True)
    assert sink.subjects() == ["Tháng chín"]


async def test_oversize_mail_is_stored_as_headers_only(dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Tệp quá lớn", body="x" * 5000))
    sink = MemorySink()
    async with watching(make_intake(dovecot, sink, max_message_size=1000)):
        await eventually(lambda: len(sink.mails) == 1)
    call = sink.calls[0]
    assert call.oversize is not None and call.oversize > 5000
    assert b"Subject:" in call.raw and b"xxxx" not in call.raw
    assert flags_by_subject(dovecot)["Tệp quá lớn"] >= PROCESSED


async def test_processed_mail_is_moved_to_processed_mailbox(dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Chuyển thư mục"))
    sink = MemorySink()
    async with watching(make_intake(dovecot, sink, processed_mailbox="Processed")):
        await eventually(lambda: len(sink.mails) == 1 and sink.healthy is True)
    assert flags_by_subject(dovecot) == {}
    assert flags_by_subject(dovecot, "Processed")["Chuyển thư mục"] >= PROCESSED


async def test_bad_mail_does_not_block_later_mail_and_is_given_up_after_three_attempts(
        dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Thư lỗi"))
    dovecot.deliver(make_mail("Thư tốt"))
    sink = MemorySink()
    sink.fail_when = lambda raw: subject_of(raw) == "Thư lỗi"
    intake = make_intake(dovecot, sink)
    async with watching(intake):
        await eventually(lambda: sink.subjects() == ["Thư tốt"], within=2)
        await eventually(lambda: b"$EdudeskFailed" in flags_by_subject(dovecot)["Thư lỗi"])
        dovecot.deliver(make_mail("Thư sau"))
        await eventually(lambda: len(sink.mails) == 2)
    assert sum(1 for c in sink.calls if c.result is None) == 3
    assert any("skipped" in detail for ok, detail in sink.health if not ok)
    assert sink.checkpoints[intake.checkpoint_key][1] == 3


async def test_uidvalidity_change_rescans_without_duplicates(
        dovecot: DovecotServer, caplog: pytest.LogCaptureFixture) -> None:
    dovecot.deliver(make_mail("Trước"))
    sink = MemorySink()
    intake = make_intake(dovecot, sink)
    async with watching(intake):
        await eventually(lambda: len(sink.mails) == 1)
        old_validity = sink.checkpoints[intake.checkpoint_key][0]
        with dovecot.connect() as client:  # the restored mailbox lost our keyword: the sink must dedupe
            client.select_folder("INBOX")
            client.remove_flags(client.search(["ALL"]), [b"$Edudesk"])
        with caplog.at_level(logging.WARNING, logger="edudesk.mailer.imap"):
            await asyncio.to_thread(dovecot.recreate_mailbox_uidvalidity_change)
            dovecot.deliver(make_mail("Sau"))
            await eventually(lambda: len(sink.mails) == 2)
    assert sink.checkpoints[intake.checkpoint_key][0] != old_validity
    assert [c.result.duplicate for c in sink.calls if c.result] == [False, True, False]
    assert "UIDVALIDITY changed" in caplog.text


async def test_close_stops_an_idling_watcher_within_a_second(dovecot: DovecotServer) -> None:
    sink = MemorySink()
    intake = make_intake(dovecot, sink, idle_timeout=600)
    async with asyncio.TaskGroup() as group:
        task = group.create_task(intake.run())
        await eventually(lambda: sink.healthy is True)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        intake.close()
        await asyncio.wait_for(task, 1.0)
    assert time.monotonic() - started < 1.0


async def test_mail_arriving_while_a_pass_runs_is_not_left_waiting_for_idle(dovecot: DovecotServer) -> None:
    dovecot.deliver(make_mail("Đầu tiên"))
    sink = MemorySink()

    async def another_mail_arrives() -> None:
        # Announced in the answer to our flag update, so IDLE will not announce it a second time.
        sink.after_store = None
        dovecot.deliver(make_mail("Đến giữa chừng"))

    sink.after_store = another_mail_arrives
    async with watching(make_intake(dovecot, sink, poll_interval=3600, idle_timeout=600)):
        await eventually(lambda: len(sink.mails) == 2, within=3)


async def test_sink_outage_does_not_get_mails_marked_failed(dovecot: DovecotServer) -> None:
    for subject in ("A", "B", "C"):
        dovecot.deliver(make_mail(subject))
    sink = MemorySink()
    sink.fail_when = lambda raw: True  # the database is down for everything
    async with watching(make_intake(dovecot, sink)):
        await eventually(lambda: len(sink.calls) >= 12)  # four passes or more
        assert sink.healthy is False
        sink.fail_when = lambda raw: False
        await eventually(lambda: len(sink.mails) == 3 and sink.healthy is True)
    assert all(b"$EdudeskFailed" not in flags for flags in flags_by_subject(dovecot).values())


async def test_a_fetched_mail_loses_every_authentication_result_written_in_our_name(dovecot: DovecotServer) -> None:
    """Only edudesk's listener writes our authserv-id; in a mail fetched by IMAP such a header is the sender's."""
    forged = make_mail("Đặt lại mật khẩu").replace(
        b"Subject:", b"Authentication-Results: edudesk.truong.test; dmarc=pass header.from=hust.edu.vn\n"
                     b"Authentication-Results: mx.google.com; dmarc=fail header.from=hust.edu.vn\nSubject:", 1)
    assert forged.count(b"Authentication-Results") == 2
    dovecot.deliver(forged)
    sink = MemorySink()
    intake = ImapIntake(imap_settings(dovecot), DEFAULT_PASSWORD, sink, checkpoints=sink, health=sink,
                        max_message_size=1_000_000, own_authserv_id="edudesk.truong.test")
    async with watching(intake):
        await eventually(lambda: len(sink.mails) == 1)
    [raw] = sink.mails.values()
    assert b"edudesk.truong.test" not in raw and b"mx.google.com; dmarc=fail" in raw
    assert subject_of(raw) == "Đặt lại mật khẩu" and raw.endswith("\r\n\r\nKính gửi phòng CNTT.\r\n".encode())
