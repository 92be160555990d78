"""The intake ledger: store each raw mail durably, once, with the job that processes it."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q
from tortoise.transactions import in_transaction

from edudesk.core.chats.notify import enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.intake.models import ChannelHealth, InboundMail
from edudesk.core.jobs import JobKind, JobQueue, JobState
from edudesk.core.models import AuditEvent, Job
from edudesk.core.ports import Clock, StoreResult
from edudesk.core.prepared import Prepared
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.words import words

log = logging.getLogger(__name__)

# Sent for every mail received, so built once (core/prepared.py).
_BACKLOG = Prepared(lambda conn, _shape, now: Job.filter(
    Q(kind=JobKind.PROCESS_MAIL, state__in=[JobState.PENDING, JobState.RUNNING])
    | Q(kind=JobKind.SEND_MAIL, state=JobState.RUNNING)
    | Q(kind=JobKind.SEND_MAIL, state=JobState.PENDING, run_after__lte=now)).using_db(conn).count())
_BY_KEYS = Prepared(lambda conn, _shape, *keys: InboundMail.filter(dedupe_key__in=keys).only(
    "id", "dedupe_key", "content_hash").limit(len(keys)).using_db(conn))
_MSGID = re.compile(r"<([^<>\s]+)>|(\S+@\S+)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_LIMIT = 256 * 1024  # Message-ID is in the header block; never scan a 30 MB body for it
_MID_KEY_LIMIT = 200  # longer Message-IDs are keyed by their hash (the key column holds 300)
# What the sender wrote: the same whichever servers carried the mail. Received, Return-Path,
# Delivered-To, Authentication-Results and X-* trace headers are added on the way and left out.
_WRITTEN = ("from", "sender", "to", "cc", "subject", "date", "message-id", "in-reply-to", "references",
            "mime-version", "content-type", "content-transfer-encoding")


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of a raw mail."""
    head = raw[:_HEADER_LIMIT]
    end, gap = head.find(b"\r\n\r\n"), 4
    if end < 0:
        end, gap = head.find(b"\n\n"), 2
    if end < 0:
        return head, b""
    return head[:end], raw[end + gap:]


def raw_message_id(raw: bytes) -> str:
    """The Message-ID header's value as sent ("" when missing), control characters and all."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(_split(raw)[0])
    return str(headers.get("Message-ID", "") or "").strip()


def message_id_of(raw: bytes) -> str:
    """The Message-ID of a raw mail without brackets ("" when missing), read from the headers only.

    Control characters are dropped: a NUL cannot be stored in PostgreSQL text, and a mail that cannot
    be stored would come back from IMAP forever.
    """
    match = _MSGID.search(_CONTROL.sub("", raw_message_id(raw)))
    return (match.group(1) or match.group(2)).strip()[:900] if match else ""


def written_hash(raw: bytes) -> str:
    """SHA-256 of what the sender wrote (the headers in `_WRITTEN` and the body), not of the trace
    headers servers prepend: the same mail fetched over IMAP and received over SMTP hashes the same."""
    head, body = _split(raw)
    headers = BytesHeaderParser(policy=compat32).parsebytes(head)
    digest = hashlib.sha256()
    for name in _WRITTEN:
        for value in headers.get_all(name) or ():
            text = " ".join(str(value).split())  # unfolded, whitespace as one space
            digest.update(f"{name}:{text}\n".encode("utf-8", "surrogateescape"))
    digest.update(b"\n")
    digest.update(body.replace(b"\r\n", b"\n").rstrip())
    return digest.hexdigest()


def sender_stamp(raw: bytes) -> str:
    """From and Date as the sender's client wrote them: relays that tag the Subject ("[External]"), append a
    disclaimer or re-encode the body leave them alone, so one mail keeps one stamp however it was carried."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(_split(raw)[0])
    return "\n".join(" ".join(str(headers.get(name, "") or "").split()) for name in ("from", "date"))


def message_id_key(message_id: str) -> str:
    """The ledger key of the first mail with this Message-ID (long ones by their hash)."""
    if len(message_id) <= _MID_KEY_LIMIT:
        return f"mid:{message_id}"
    return "mid:#" + hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def dedupe_key(raw: bytes, message_id: str) -> tuple[str, str]:
    """(dedupe key, written hash) of a mail seen for the first time: Message-ID, else the written hash."""
    digest = written_hash(raw)
    return (message_id_key(message_id) if message_id else f"sha256:{digest}"), digest


@dataclass
class _Entry:
    """One mail waiting for its group commit: the row's values, then its id (or the error) once tried."""

    values: dict[str, Any]
    first: int | None  # the first mail with this Message-ID, when this one reuses it with other content
    mail_id: int | None = None
    error: Exception | None = None


class MailLedger:
    """The `IntakeSink` both channels feed: `store` commits the raw mail and its job before returning. It is
    also the `HealthReport` of the channels (`report_health`); IMAP checkpoints are `DbImapCheckpoints`."""

    def __init__(self, queue: JobQueue, clock: Clock, settings: Settings) -> None:
        self.queue = queue
        self.clock = clock
        self.settings = settings
        self.alert_after_failures = settings.imap.alert_after_failures
        self._waiting: list[_Entry] = []  # stored mails waiting for the next group commit
        self._committing = asyncio.Lock()

    async def store(
        self,
        raw: bytes,
        *,
        source: str,
        source_key: str | None = None,
        envelope_from: str = "",
        envelope_to: tuple[str, ...] = (),
        oversize: int | None = None,
    ) -> StoreResult:
        """Store a raw mail unless the ledger has it (same source key, or same Message-ID and content).

        A different mail reusing an earlier Message-ID is stored as a new mail, keyed on the Message-ID
        and its written hash, and audited as `message_id_reused`.
        """
        message_id = message_id_of(raw)
        key, digest = dedupe_key(raw, message_id)
        existing, first = await self._find(raw, message_id, key, digest, source_key)
        if existing is not None:
            return StoreResult(existing, True)
        if first is not None:
            key = f"{key} sha256:{digest}"
        entry = _Entry(dict(dedupe_key=key, message_id=message_id, content_hash=digest, source=source,
                            source_key=source_key, envelope_from=envelope_from[:320],
                            envelope_to=list(envelope_to)[:50], size=oversize or len(raw), oversize=oversize,
                            content=raw), first)
        try:
            mail_id = await self._grouped(entry)
        except IntegrityError:
            # Another channel stored the same mail between our check and our insert, or another mail with the
            # same new Message-ID won the race: then this one is a reuse, stored under its own key on retry.
            existing, first = await self._find(raw, message_id, key, digest, source_key)
            if existing is None and first is not None and not key.endswith(f" sha256:{digest}"):
                return await self.store(raw, source=source, source_key=source_key, envelope_from=envelope_from,
                                        envelope_to=envelope_to, oversize=oversize)
            if existing is None:
                raise
            return StoreResult(existing, True)
        self.queue.wake()
        return StoreResult(mail_id, False)

    async def _grouped(self, entry: _Entry) -> int:
        """Commit this mail together with every other one waiting (group commit: one transaction, one fsync,
        for all the sessions that finished DATA meanwhile); returns its id once committed. A group that meets
        a duplicate key is stored again mail by mail, so only the duplicate fails."""
        self._waiting.append(entry)
        async with self._committing:
            if entry.mail_id is None and entry.error is None:
                group, self._waiting = self._waiting, []
                try:
                    await self._insert(group)
                except IntegrityError:
                    await self._insert_each(group)
                except BaseException as exc:
                    # Nothing of the group is known to be stored: every sender in it gets the 451 and retries.
                    failure = exc if isinstance(exc, Exception) else RuntimeError("the group commit was interrupted")
                    for other in group:
                        other.error = failure
                    raise
        if entry.error is not None:
            raise entry.error
        assert entry.mail_id is not None
        return entry.mail_id

    async def _insert_each(self, group: list[_Entry]) -> None:
        """The group again, one transaction per mail: only the duplicate fails."""
        for one in group:
            try:
                await self._insert([one])
            except IntegrityError as exc:
                one.error = exc
            except Exception as exc:  # noqa: BLE001 - told to its own sender as a 451 (SmtpIntakeHandler)
                one.error = exc

    async def _insert(self, group: list[_Entry]) -> None:
        """The mails of a group and their `process_mail` jobs, in one transaction (one statement for the jobs)."""
        now = self.clock.now()
        async with in_transaction() as conn:
            mails = [await InboundMail.create(**e.values, received_at=now, using_db=conn) for e in group]
            for entry, mail in zip(group, mails, strict=True):
                if entry.first is not None:
                    log.warning("mail %s reuses the Message-ID of mail %s with other content", mail.id, entry.first)
                    await AuditEvent.create(at=now, actor="system", action="message_id_reused", mail_id=mail.id,
                                            detail={"message_id": mail.message_id[:300],
                                                    "first_mail_id": entry.first, "source": mail.source},
                                            using_db=conn)
            await self.queue.enqueue_many(
                [(JobKind.PROCESS_MAIL, f"process_mail:{m.id}", {"mail_id": m.id}) for m in mails],
                connection=conn)
        for entry, mail in zip(group, mails, strict=True):
            entry.mail_id = mail.id

    async def backlog(self) -> int:
        """Stored mails not yet processed, and mails due to be sent now (their answers), in this process and any
        other sharing the database: what the listener holds senders back on. A mail waiting for a retry or a
        rate cap (due later) does not count, so an outgoing relay that is down never stops intake."""
        return int(await _BACKLOG.value(Job._choose_db(), (self.clock.now(),)))

    async def _find(self, raw: bytes, message_id: str, key: str, digest: str,
                    source_key: str | None) -> tuple[int | None, int | None]:
        """(the stored copy of this mail, the first mail with its Message-ID when that one differs)."""
        if source_key:
            row = await InboundMail.filter(source_key=source_key).only("id").first()
            if row is not None:
                return row.id, None
        if not message_id:
            # Rows stored before the written hash were keyed on the hash of the whole raw mail.
            keys = [key, f"sha256:{hashlib.sha256(raw).hexdigest()}"]
            row = await InboundMail.filter(dedupe_key__in=keys).only("id").first()
            return (row.id if row else None), None
        # One statement for both: this mail stored as a reuse of its Message-ID, and the first mail with it
        # (and a long Message-ID's key of old).
        reused_key = f"{key} sha256:{digest}"
        keys = list(dict.fromkeys([reused_key, key, f"mid:{message_id}"]))
        found = {row["dedupe_key"]: row for row in await _BY_KEYS.rows(InboundMail._choose_db(), keys)}
        if reused_key in found:
            return int(found[reused_key]["id"]), None
        first = next((found[k] for k in keys[1:] if k in found), None)
        if first is None:
            return None, None
        first_id = int(first["id"])
        if first["content_hash"] in (digest, hashlib.sha256(raw).hexdigest()):
            return first_id, None
        # A row stored before the written hash keeps the hash of its raw bytes: compare what was written.
        content = await InboundMail.filter(id=first_id).values_list("content", flat=True)
        if content and written_hash(bytes(content[0])) == digest:
            return first_id, None
        # The same Message-ID, From and Date: the same mail that a relay changed on one of its ways in.
        stamp = sender_stamp(raw)
        if content and stamp.strip() and sender_stamp(bytes(content[0])) == stamp:
            return first_id, None
        return None, first_id

    async def report_health(self, channel: str, ok: bool, detail: str = "") -> None:
        """Record a channel's health; after N failures in a row staff are alerted once (audit + mail).

        Counted with conditional updates, so jobs reporting at the same time neither lose a failure nor
        both send the alert.
        """
        now = self.clock.now()
        await ChannelHealth.bulk_create([ChannelHealth(channel=channel)], ignore_conflicts=True)
        if ok:
            row = await ChannelHealth.get(channel=channel)
            if not row.ok:
                # The recovery and its audit entry in one transaction: a task cancelled (or a process killed)
                # between two commits left the channel recovered with nothing in the trail (seen under load).
                async with in_transaction() as conn:
                    if await ChannelHealth.filter(channel=channel, ok=False).using_db(conn).update(
                            ok=True, failures=0, alerted=False, last_ok_at=now):
                        await AuditEvent.create(at=now, actor="system", action="channel_recovered", using_db=conn,
                                                detail={"channel": channel, "after_failures": row.failures})
                        return
            await ChannelHealth.filter(channel=channel).update(last_ok_at=now)
            return
        await ChannelHealth.filter(channel=channel).update(ok=False, failures=F("failures") + 1,
                                                           detail=detail[:2000], last_error_at=now)
        row = await ChannelHealth.get(channel=channel)
        if row.failures < self.alert_after_failures or row.alerted:
            return
        async with in_transaction() as conn:
            if not await ChannelHealth.filter(channel=channel, alerted=False).using_db(conn).update(alerted=True):
                return  # another job sent the alert
            log.error("channel %s keeps failing (%s times): %s", channel, row.failures, detail)
            await AuditEvent.create(at=now, actor="system", action="channel_failing", using_db=conn,
                                    detail={"channel": channel, "failures": row.failures, "error": detail[:500]})
            await self._alert_staff(conn, channel, row.failures, detail)
        self.queue.wake()

    async def _alert_staff(self, conn: BaseDBAsyncClient, channel: str, failures: int, detail: str) -> None:
        """Tell the technical staff by mail (queued with the audit entry, so it is sent once)."""
        stamp = int(self.clock.now().timestamp())
        label = words(self.settings.general.language).label("channel", channel)
        # Room for a whole fix in words (an OAuth2 refusal names the permissions and commands to run).
        context = {**mail_context(self.settings), "channel": channel, "channel_label": label, "failures": failures,
                   "error": detail[:1500]}
        # The technical chat too: when the failing channel is outgoing mail, an alert mail waits with the rest.
        text = words(self.settings.general.language)("notice.channel_failing", channel=label, failures=failures,
                                                      error=detail[:1500])
        await enqueue_notice(conn, self.queue, f"channel_failing:{channel}:{stamp}", "technical", text)
        for recipient in self.settings.outgoing.alerts_to or (self.settings.institution.office_address,):
            await queue_mail(conn, self.queue, self.clock, self.settings, template="channel_failing",
                             key=f"channel_failing:{channel}:{stamp}:{recipient}", recipient=recipient,
                             context=context)
