"""The `send_mail` job: render a queued mail, apply the automatic-reply rate cap, hand it to the transport."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tortoise.transactions import in_transaction

from edudesk.core.accounts.models import PendingSecret
from edudesk.core.accounts.sheet import build_accounts_xlsx
from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.db_sqlite import carried_by_a_later_commit
from edudesk.core.intake.confirm import TEMPLATE as CONFIRM_TEMPLATE
from edudesk.core.intake.confirm import mask
from edudesk.core.jobs import Handlers, JobKind, JobQueue, PermanentJobError, RetryLater, write_when_done
from edudesk.core.models import AuditEvent, Job
from edudesk.core.people.loginmail import mint_signin_link
from edudesk.core.ports import Clock, HealthReport, MailSender
from edudesk.core.prepared import Prepared
from edudesk.core.reports.models import ReportArchive
from edudesk.core.requests.mailqueue import NOTICES_PER_MINUTE, STAFF_NOTICES, is_staff_notice, mail_context, queue_mail
from edudesk.core.requests.models import OutgoingMail
from edudesk.core.secrets import SecretBox
from edudesk.mailer.outbox import MailSendError
from edudesk.mailer.render import build_message

log = logging.getLogger(__name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REPORT_TYPES = {"xlsx": XLSX, "pdf": "application/pdf"}
# Context fields naming a sealed value, and the field the opened value is rendered from.
_SEALED = {"password_secret": "password", "password_link_secret": "password_link"}
PACE_WINDOW = timedelta(minutes=1)
AUTH_RETRY_SECONDS = 300.0  # while the relay refuses our login, each waiting mail tries again this often


# The statements every automatic answer sends, built once (core/prepared.py): one acknowledgement a mail.
_MAIL = Prepared(lambda conn, _shape, mail_id: OutgoingMail.filter(id=mail_id).limit(1).using_db(conn))
_SLOTS_USED = Prepared(lambda conn, _shape, recipient, since: OutgoingMail.filter(
    recipient=recipient, automatic=True, state__in=["sent", "sending"], sent_at__gte=since).using_db(conn).count())
_TAKE_SLOT = Prepared(lambda conn, _shape, mail_id, now: OutgoingMail.filter(id=mail_id, state="pending").using_db(
    conn).update(state="sending", sent_at=now))
_SENT_STAMPED = Prepared(lambda conn, _shape, *ids: OutgoingMail.filter(id__in=ids).using_db(conn).update(
    state="sent"))
_SENT = Prepared(lambda conn, _shape, mail_id, sent_at: OutgoingMail.filter(id=mail_id).using_db(conn).update(
    state="sent", sent_at=sent_at))


async def _take_free_slot(conn: Any, mail_id: int, recipient: str, now: datetime, since: datetime,
                          limit: int) -> bool:
    """SQLite: take the mail's slot when the recipient has one free, in one statement; False when it did not
    (no slot free, or the mail is no longer pending: the transaction in `_reserve` then decides).

    One UPDATE holds SQLite's write lock from its start (it is a write statement), so its count and its change
    are one step for every process, as the transaction with its lock is on PostgreSQL. Four statements (BEGIN,
    the count, the update, COMMIT) become one on the path every acknowledgement takes.
    """
    take, take_values = _TAKE_SLOT.statement(conn, (mail_id, now))
    used, used_values = _SLOTS_USED.statement(conn, (recipient, since))
    taken = await conn.execute_query(f"{take} AND ({used})<?", [*take_values, *used_values, limit])
    return int(taken[0]) == 1


@dataclass(frozen=True, slots=True)
class _Sent:
    """A mail the relay took, to be marked sent with its audit entry (`_write_sent`)."""

    mail_id: int
    stamped: bool  # its sent_at is the slot's (the reserve or the pace set it); else it is stamped `at`
    at: datetime
    request_id: int | None
    detail: dict[str, str]


async def _write_sent(conn: Any, items: list[_Sent]) -> None:
    """Mark the mails sent and audit each, in the transaction that marks their jobs done: one update for the
    mails whose slot stamped them, one insert for all the audit entries."""
    stamped = [item.mail_id for item in items if item.stamped]
    if stamped:
        await _SENT_STAMPED.count(conn, stamped)
    for item in items:
        if not item.stamped:
            await _SENT.count(conn, (item.mail_id, item.at))
    await AuditEvent.bulk_create([AuditEvent(at=item.at, actor="system", action="mail_sent",
                                             request_id=item.request_id, detail=item.detail) for item in items],
                                 using_db=conn)


def _bracket(mid: str) -> str:
    return mid if not mid or mid.startswith("<") else f"<{mid}>"


async def _reports(context: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """The archived reports a mail carries (the monthly BM03), read from the archive when it is sent."""
    ids = [int(i) for i in context.get("report_ids") or []]
    if not ids:
        return []
    found = {r.id: r for r in await ReportArchive.filter(id__in=ids)}
    return [(found[i].filename, REPORT_TYPES.get(found[i].fmt, "application/octet-stream"), bytes(found[i].content))
            for i in ids if i in found]


class MailDelivery:
    """Job handler for `send_mail`; one automatic answer stream per sender is capped (loop breaker)."""

    def __init__(self, settings: Settings, clock: Clock, sender: MailSender, templates_dir: Path,
                 box: SecretBox | None = None, queue: JobQueue | None = None,
                 health: HealthReport | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.sender = sender
        self.templates_dir = templates_dir
        self.box = box
        self.queue = queue  # to tell the alert addresses about a staff notice that failed
        self.health = health  # the "outgoing" channel: a refused login alerts staff once per outage
        self._failing: bool | None = None  # None: not known since start (the first send reports its state)

    async def _open_secrets(self, context: dict[str, Any]) -> list[str]:
        """Put the sealed passwords and link URLs into the context (only in memory, only for rendering)."""
        accounts = context.get("accounts", [])
        keys = list(dict.fromkeys(a[field] for a in accounts for field in _SEALED if a.get(field)))
        link_key = str(context.get("link_secret") or "")  # a one-time link of its own (a sender confirmation)
        if link_key:
            keys.append(link_key)
        if not keys:
            return []
        if self.box is None:
            raise PermanentJobError("a mail carries passwords but no secret key is configured")
        sealed = {s.key: s.sealed for s in await PendingSecret.filter(key__in=keys)}
        missing = [k for k in keys if k not in sealed]
        if missing:
            raise PermanentJobError(f"sealed secrets are gone: {len(missing)} of {len(keys)}")
        opened = {k: self.box.open(v) for k, v in sealed.items()}
        context["accounts"] = [{**{k: v for k, v in a.items() if k not in _SEALED},
                                **{plain: opened[a[field]] for field, plain in _SEALED.items() if a.get(field)}}
                               for a in accounts]
        if link_key:
            context["link"] = opened[context.pop("link_secret")]
        return keys

    async def _sheet(self, context: dict[str, Any], request_id: int | None) -> list[tuple[str, str, bytes]]:
        """The unit's account sheet, built now from the context's accounts (with passwords only when
        `_open_secrets` put them there) and never stored; none unless the context asks for it."""
        if not context.get("accounts_sheet"):
            return []
        env_name = self.settings.provisioning.list_password_env
        password = self.settings.secret(env_name)
        if env_name and not password:
            log.warning("%s is empty: the account sheet goes out without a password", env_name)
        rows = [{k: str(a.get(k) or "") for k in ("full_name", "address", "person_id", "password", "result", "detail")}
                for a in context.get("accounts", [])]
        lang = context.get("lang", self.settings.general.language)
        # Encryption derives its key with 100,000 SHA-512 rounds: off the event loop.
        data = await asyncio.to_thread(build_accounts_xlsx, rows, lang=lang, password=password or None)
        number = context.get("number") or request_id
        return [(f"tai-khoan-YC-{number}.xlsx", XLSX, data)]

    async def _reserve(self, mail: OutgoingMail) -> bool:
        """Take one of the recipient's automatic-mail slots, or suppress the mail; atomic across workers.

        The count and the reservation happen in one transaction, serialised per recipient (a PostgreSQL
        advisory lock; SQLite runs one transaction at a time), so parallel jobs cannot all see a free slot.
        """
        out = self.settings.outgoing
        now = self.clock.now()
        since = now - timedelta(minutes=out.auto_reply_window_minutes)
        conn = OutgoingMail._choose_db(True)
        if conn.capabilities.dialect == "sqlite":
            with carried_by_a_later_commit():  # lost in a power cut: the mail is pending again, sent again as is
                if await _take_free_slot(conn, mail.id, mail.recipient, now, since, out.auto_reply_limit):
                    mail.sent_at = now
                    return True
        async with in_transaction() as conn:
            await lock_for_transaction(conn, f"edudesk:auto_reply:{mail.recipient}")
            used = await _SLOTS_USED.value(conn, (mail.recipient, since))
            if used >= out.auto_reply_limit:
                await OutgoingMail.filter(id=mail.id).using_db(conn).update(state="suppressed", detail="rate cap")
                await AuditEvent.create(at=now, actor="system", action="auto_reply_suppressed",
                                        request_id=mail.request_id, detail={"template": mail.template,
                                                                            "recipient": mail.recipient},
                                        using_db=conn)
                return False
            if await _TAKE_SLOT.count(conn, (mail.id, now)):
                mail.sent_at = now
        return True

    async def _pace(self, mail: OutgoingMail) -> float:
        """Take one of the recipient's notice slots this minute; else how many seconds until one frees up."""
        now = self.clock.now()
        since = now - PACE_WINDOW
        async with in_transaction() as conn:
            await lock_for_transaction(conn, f"edudesk:notice_pace:{mail.recipient}")
            recent = await OutgoingMail.filter(recipient=mail.recipient, template__in=list(STAFF_NOTICES),
                                               state__in=["sent", "sending"], sent_at__gte=since).using_db(
                conn).order_by("sent_at").values_list("sent_at", flat=True)
            if len(recent) >= NOTICES_PER_MINUTE:
                oldest: datetime = recent[len(recent) - NOTICES_PER_MINUTE]  # type: ignore[assignment]
                oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
                return max(1.0, (oldest + PACE_WINDOW - now).total_seconds())
            if await OutgoingMail.filter(id=mail.id, state="pending").using_db(conn).update(state="sending",
                                                                                          sent_at=now):
                mail.sent_at = now
        return 0.0

    async def _report_failed_notice(self, conn: Any, mail: OutgoingMail, error: str) -> None:
        """A staff notice that will never arrive: audit it and tell the alert addresses (not about themselves)."""
        now = self.clock.now()
        await AuditEvent.create(at=now, actor="system", action="staff_notice_failed", request_id=mail.request_id,
                                detail={"template": mail.template, "recipient": mail.recipient,
                                        "error": error[:500]}, using_db=conn)
        alerts = self.settings.outgoing.alerts_to or (self.settings.institution.office_address,)
        if mail.key.startswith("notice_failed:") or self.queue is None:
            return  # the report itself failed: the audit row and the dead job are what is left
        en = self.settings.general.language == "en"
        subject = "A staff notice could not be sent" if en else "Thông báo gửi cán bộ không gửi được"
        text = (f"The notice mail to {mail.recipient} could not be delivered: {error[:300]}. "
                "Please check this staff member's e-mail address and chat link." if en else
                f"Thư thông báo gửi tới {mail.recipient} không gửi được: {error[:300]}. "
                "Vui lòng kiểm tra địa chỉ thư và liên kết trò chuyện của cán bộ này.")
        for recipient in alerts:
            if recipient and recipient.lower() != mail.recipient.lower():
                await queue_mail(conn, self.queue, self.clock, self.settings,
                                 key=f"notice_failed:{mail.id}:{recipient}", template="chat_notice",
                                 recipient=recipient, request_id=mail.request_id,
                                 context={**mail_context(self.settings), "subject": subject, "text": text,
                                          "link": "", "surface": ""})

    def handlers(self) -> Handlers:
        """The job this package runs: deliver one queued mail."""
        return {JobKind.SEND_MAIL: self}

    async def __call__(self, job: Job) -> None:
        """Send one queued mail (done once: a sent mail is never sent again by a re-run job)."""
        outgoing_id = job.payload.get("outgoing_id")
        found = await _MAIL.rows(OutgoingMail._choose_db(), (int(outgoing_id),)) if outgoing_id is not None else []
        if not found:
            raise PermanentJobError("outgoing mail row is gone")
        mail = OutgoingMail._init_from_db(**found[0])
        # "sending" is a slot taken by an attempt that crashed or failed before the relay said yes:
        # it is sent again under the same Message-ID, without taking a second slot.
        if mail.state not in ("pending", "sending"):
            return
        now = self.clock.now()
        if mail.automatic and mail.state == "pending" and not await self._reserve(mail):
            log.warning("automatic mail to %s suppressed by the rate cap", mail.recipient)
            return
        if not mail.automatic and is_staff_notice(mail.template) and mail.state == "pending":
            wait = await self._pace(mail)
            if wait:
                raise RetryLater(wait)  # delayed, never dropped
        context = dict(job.payload.get("context") or {})
        secret_keys = await self._open_secrets(context)
        await mint_signin_link(context, self.settings, self.clock)  # a sign-in link, made now: fresh, in no payload
        attachments = await self._sheet(context, mail.request_id) + await _reports(context)
        message = build_message(
            mail.template, lang=context.get("lang", self.settings.general.language), context=context,
            templates_dir=self.templates_dir, sender=self.settings.outgoing.from_address,
            sender_name=self.settings.outgoing.from_name, to=mail.recipient,
            message_id=_bracket(mail.message_id), in_reply_to=_bracket(job.payload.get("in_reply_to", "")),
            references=[_bracket(r) for r in job.payload.get("references", [])], date=now,
            display_timezone=self.settings.general.timezone, attachments=attachments, settings=self.settings,
        )
        try:
            await self.sender.send(message)
        except MailSendError as exc:
            if exc.auth:
                # The relay refused our own login: every mail waits (none is lost) until staff fix it.
                self._failing = True
                if self.health is not None:
                    await self.health.report_health("outgoing", False, exc.message)
                raise RetryLater(AUTH_RETRY_SECONDS) from exc
            if exc.permanent or job.attempts >= self.settings.jobs.max_attempts:
                async with in_transaction() as conn:
                    await OutgoingMail.filter(id=mail.id).using_db(conn).update(state="dead",
                                                                                detail=exc.message[:2000])
                    if is_staff_notice(mail.template):
                        await self._report_failed_notice(conn, mail, exc.message)
                    if secret_keys:
                        # Never to be delivered: do not keep the passwords (the accounts need a reset).
                        await PendingSecret.filter(key__in=secret_keys).using_db(conn).delete()
                raise PermanentJobError(exc.message) from exc
            raise
        if self._failing is not False and self.health is not None:
            self._failing = False
            await self.health.report_health("outgoing", True)
        # A personal address from the registry (a sender confirmation) is personal data: the trail masks it.
        recipient = mask(mail.recipient) if mail.template == CONFIRM_TEMPLATE else mail.recipient
        sent = _Sent(mail.id, mail.sent_at is not None, now, mail.request_id,
                     {"template": mail.template, "recipient": recipient, "message_id": mail.message_id})
        # The state and its audit entry go with the job's completion, batched with the other jobs completed then:
        # until it commits, a crash (or a power cut) re-runs the job, which sends again under the same
        # Message-ID from the "sending" state. Passwords are dropped at once, not left for later.
        if not secret_keys and write_when_done(_write_sent, sent):
            return
        # The same in one transaction of its own, whose fsync is the job's completion's (as above).
        with carried_by_a_later_commit():
            await self._mark_sent(sent, secret_keys)

    @staticmethod
    async def _mark_sent(sent: _Sent, secret_keys: list[str]) -> None:
        async with in_transaction() as conn:
            await _write_sent(conn, [sent])
            if secret_keys:
                # Delivered: the passwords (or the link) now live only in the requester's mailbox.
                await PendingSecret.filter(key__in=secret_keys).using_db(conn).delete()
                if sent.request_id is not None and any(k.startswith("pw:") for k in secret_keys):
                    # Passwords left from people a corrected list dropped are of no use any more (with link
                    # delivery the passwords stay sealed until the link is opened: not these).
                    await PendingSecret.filter(request_id=sent.request_id, key__startswith="pw:").using_db(
                        conn).delete()
