"""Issue #13, the ledger: one mail seen twice is stored once, whatever trace headers servers added on the
way; a different mail reusing an earlier Message-ID is a new mail (and audited); old rows still dedupe."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from edudesk.app import App
from edudesk.core.intake.models import InboundMail
from edudesk.core.models import AuditEvent
from edudesk.core.requests.models import Request
from tests.mails import student_form_mail

pytestmark = pytest.mark.db

TRACE = (b"Return-Path: <an.nv2003@gmail.com>\r\n"
         b"Delivered-To: office-bknic@hust.edu.vn\r\n"
         b"Received: from mx.hust.edu.vn (mx.hust.edu.vn [10.0.0.5])\r\n"
         b"\tby imap.hust.edu.vn with LMTP id 5Q; Mon, 1 Sep 2025 08:00:03 +0700\r\n"
         b"X-Spam-Status: No, score=-0.1\r\n"
         b"Authentication-Results: mx.hust.edu.vn; dkim=pass header.d=gmail.com\r\n")


def delivered(raw: bytes) -> bytes:
    """The same message as the mailbox server stores it: trace headers prepended."""
    return TRACE + raw


@pytest.fixture
async def app(app_factory: Any) -> App:
    return await app_factory(inline_analysis=True)  # type: ignore[no-any-return]


async def test_same_mail_over_smtp_then_imap_is_stored_once(app: App) -> None:
    raw = student_form_mail(message_id="<both-ways@gmail.com>")
    first = await app.ledger.store(raw, source="smtp", envelope_from="an.nv2003@gmail.com")
    again = await app.ledger.store(delivered(raw), source="imap", source_key="imap:INBOX:7:1")
    assert not first.duplicate and again.duplicate and again.mail_id == first.mail_id
    assert await InboundMail.all().count() == 1
    assert not await AuditEvent.filter(action="message_id_reused").exists()


async def test_same_mail_without_message_id_over_both_channels_is_stored_once(app: App) -> None:
    raw = b"".join(line for line in student_form_mail().splitlines(keepends=True)
                   if not line.startswith(b"Message-ID:"))
    first = await app.ledger.store(delivered(raw), source="imap", source_key="imap:INBOX:7:2")
    again = await app.ledger.store(raw, source="smtp")
    assert again.duplicate and again.mail_id == first.mail_id


async def test_different_mail_reusing_a_message_id_is_a_new_mail_and_is_audited(app: App) -> None:
    an = student_form_mail(message_id="<reused@bad-client>")
    binh = student_form_mail(name="Trần Thị Bình", sid="20205678", dob="12/11/2002",
                             message_id="<reused@bad-client>", sender="Bình <binh.tt@gmail.com>")
    first = await app.ledger.store(an, source="smtp")
    second = await app.ledger.store(binh, source="smtp")
    assert not second.duplicate and second.mail_id != first.mail_id
    audit = await AuditEvent.get(action="message_id_reused")
    assert audit.mail_id == second.mail_id
    assert audit.detail["first_mail_id"] == first.mail_id and audit.detail["message_id"] == "reused@bad-client"

    # Both become requests: the second is not swallowed as a duplicate of the first.
    await app.pipeline.process(first.mail_id)
    await app.pipeline.process(second.mail_id)
    assert sorted(r.sender for r in await Request.all()) == ["an.nv2003@gmail.com", "binh.tt@gmail.com"]

    # Each of the two, delivered again, is still the same mail.
    assert (await app.ledger.store(delivered(binh), source="imap")).mail_id == second.mail_id
    assert (await app.ledger.store(delivered(an), source="imap")).mail_id == first.mail_id
    assert await InboundMail.all().count() == 2
    assert await AuditEvent.filter(action="message_id_reused").count() == 1


async def test_rows_stored_before_the_written_hash_still_dedupe(app: App) -> None:
    with_id = student_form_mail(message_id="<old-row@gmail.com>")
    without_id = b"".join(line for line in student_form_mail(sid="20209999").splitlines(keepends=True)
                          if not line.startswith(b"Message-ID:"))
    now = app.clock.now()
    old = [await InboundMail.create(dedupe_key=key, message_id=mid, content_hash=hashlib.sha256(raw).hexdigest(),
                                    source="smtp", content=raw, size=len(raw), received_at=now, state="processed")
           for key, mid, raw in (("mid:old-row@gmail.com", "old-row@gmail.com", with_id),
                                 (f"sha256:{hashlib.sha256(without_id).hexdigest()}", "", without_id))]
    assert (await app.ledger.store(delivered(with_id), source="imap")).mail_id == old[0].id
    assert (await app.ledger.store(with_id, source="smtp")).mail_id == old[0].id
    assert (await app.ledger.store(without_id, source="smtp")).mail_id == old[1].id
    assert await InboundMail.all().count() == 2


async def test_nul_in_a_fetched_message_id_is_dropped_so_the_mail_can_be_stored(app: App) -> None:
    raw = student_form_mail(message_id="<x@y>").replace(b"<x@y>", b"<nul\x00id@gmail.com>")
    stored = await app.ledger.store(raw, source="imap", source_key="imap:INBOX:7:3")
    row = await InboundMail.get(id=stored.mail_id)
    assert row.message_id == "nulid@gmail.com"


async def test_the_same_mail_changed_by_a_relay_is_still_one_mail(app: App) -> None:
    """Microsoft 365 tags outside mail's Subject and appends a disclaimer: the copy fetched over IMAP after the
    listener had the original is the same mail (same Message-ID, From and Date), not a reuse."""
    original = student_form_mail(message_id="<tagged@gmail.com>")
    head, _, body = original.partition(b"\n\n") if b"\r\n\r\n" not in original else original.partition(b"\r\n\r\n")
    tagged = head.replace(b"Subject: ", b"Subject: [External] ", 1) + b"\r\n\r\n" + body + (
        b"\r\n-- \r\nThis message came from outside the organisation.\r\n")
    first = await app.ledger.store(original, source="smtp")
    again = await app.ledger.store(delivered(tagged), source="imap")
    assert again.duplicate and again.mail_id == first.mail_id
    assert not await AuditEvent.filter(action="message_id_reused").exists()
