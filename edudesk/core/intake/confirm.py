"""Confirming an unverified sender: a one-time link mailed to the address the registry holds for the person.

A password reset, a deletion list or a reply that changes a request, sent from a school address without an
aligned DMARC (or DKIM) pass, is flagged `unverified_sender` at intake (`core/intake/checks.py`); such a request
cannot be approved with one tap (`RequestService.check`). The office sends a confirmation link instead, and
the request moves on when every person it names has opened theirs.

Who "the person" is, i.e. whose registry address proves the request:

- a password reset: each person whose password it is (the request's rows, looked up in the registry of the
  request's population) — the owner of the account is who an impostor would harm;
- anything else (a deletion list, a unit's list, a changed form): the requester, a staff member found in the
  staff registry by the school address the mail came from (`RegistryEntry.email`) — a unit head answers
  for the list their unit sent.

Only the sha256 of a token is stored. Until the mail is handed to the transport its URL is held sealed
(`PendingSecret` "confirm:<hash>", like a password link) and the mail job names only that key. A GET of the
link changes nothing (mail scanners open links); only the page's POST confirms, once, before it expires.
Personal addresses are personal data (Decree 13/2023): staff are told only a masked form (`n***@gmail.com`),
never the token; the audit trail names the person, the masked address and who sent the link.
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tortoise.transactions import in_transaction

from edudesk.core.accounts.models import PendingSecret
from edudesk.core.chats.notify import enqueue_cards, enqueue_notice
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError, LinkRefused, NotFound
from edudesk.core.intake.checks import UNVERIFIED_SENDER
from edudesk.core.intake.domain import Kind, Population
from edudesk.core.intake.models import SenderConfirmation
from edudesk.core.jobs import JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import RegistryEntry
from edudesk.core.people.staff import Actor, NotAllowed, Role
from edudesk.core.people.webauth import token_hash
from edudesk.core.ports import Clock
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import Request, RequestPerson
from edudesk.core.requests.workflow import State
from edudesk.core.secrets import SecretBox
from edudesk.core.text import local_time
from edudesk.core.words import words

log = logging.getLogger(__name__)
UNVERIFIED = UNVERIFIED_SENDER  # the flag intake sets; the block on approving
CONFIRMED = "sender_confirmed"  # added when every person confirmed: the card says so
TOKEN_BYTES = 32
CONFIRM_PATH = "/confirm/"
SECRET_PREFIX = "confirm:"  # PendingSecret key of a sealed link URL waiting for its mail
TEMPLATE = "confirm_sender"
ACTOR = "web (confirmation link)"
SEND_ROLES = (Role.OFFICE, Role.HEAD)  # the office's step (admin holds every role)
SEND_ACTION = "send_confirm"
_OPEN_FOR_CHECK = (State.RECEIVED, State.NEED_INFO)
_ATTEMPTS = 5


class Refusal(enum.StrEnum):
    """Why a confirmation link does nothing."""

    INVALID = "invalid"  # unknown or used: one answer, so a stranger learns nothing from it
    EXPIRED = "expired"


class Desk(Protocol):
    """What sending needs from the decision service (`RequestService`): its settings, clock, queue, refusals."""

    settings: Settings
    clock: Clock
    queue: JobQueue

    async def refuse(self, actor: Actor, action: str, request_id: int | None, error: EdudeskError,
                     **detail: Any) -> EdudeskError:
        """Audit a refused action and hand back the error to raise."""
        ...


@dataclass(frozen=True)
class Target:
    """One person whose registry address confirms the request (`key` "" when the registry does not know them)."""

    key: str
    name: str
    address: str  # the registry's personal address, "" when it holds none


@dataclass(frozen=True)
class Sent:
    """What sending did, in words for the person who tapped (masked addresses only)."""

    request_id: int
    count: int
    text: str


@dataclass(frozen=True)
class LinkInfo:
    """What the page may say before the link is used: nothing secret."""

    request_id: int
    kind: str
    sender: str
    name: str
    expires_at: datetime
    lang: str


@dataclass(frozen=True)
class Confirmed:
    """A link used once: the request, and whether every person has now confirmed."""

    request_id: int
    lang: str
    complete: bool


def mask(address: str) -> str:
    """A personal address as staff may see it: first letter and domain ("n***@gmail.com")."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if at else "***"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # some SQLite drivers hand back naive UTC


def is_blocking(request: Request) -> bool:
    """Whether the request carries the flag that needs a confirmation (not whether one was opened)."""
    return UNVERIFIED in (request.flags or [])


async def targets(request: Request) -> list[Target]:
    """The people whose registry address confirms this request (see the module text for who they are)."""
    if request.kind == Kind.PASSWORD_RESET.value:
        rows = await RequestPerson.filter(request_id=request.id).order_by("row")
        ids = [p.person_id for p in rows if p.person_id]
        entries = {e.person_id: e for e in await RegistryEntry.filter(population=request.population,
                                                                      person_id__in=ids or [""])}
        found = []
        for p in rows:
            entry = entries.get(p.person_id)
            found.append(Target(entry.person_id if entry else "", (entry.full_name if entry else "") or p.full_name,
                                entry.personal_email if entry else ""))
        return found
    sender = request.sender.strip().lower()
    entry = (await RegistryEntry.filter(population=Population.STAFF.value, email__iexact=sender).first()
             if sender else None)
    if entry is None:
        return [Target("", request.sender_name or request.sender, "")]
    return [Target(entry.person_id, entry.full_name, entry.personal_email)]


async def _opened(request_id: int) -> set[str]:
    keys = await SenderConfirmation.filter(request_id=request_id, opened_at__isnull=False).values_list(
        "person_id", flat=True)
    return {str(k) for k in keys if k}


async def confirmation_pending(request: Request) -> bool:
    """True while an unverified sender's request still waits for someone's confirmation (approving is blocked)."""
    if not is_blocking(request):
        return False
    wanted = await targets(request)
    opened = await _opened(request.id)
    return not wanted or any(not t.key or t.key not in opened for t in wanted)


def _words(settings: Settings) -> Any:
    return words(settings.general.language)


async def send_confirmation(desk: Desk, box: SecretBox, request_id: int, actor: Actor,
                            version: int | None = None) -> Sent:
    """Mail a one-time confirmation link to the registry's personal address of each person still to confirm.

    Office and head (and admin) only; the request must be waiting for the office's check and flagged
    `unverified_sender`. Every refusal is audited and said in words; nothing is sent to anyone the registry
    does not hold an address for.
    """
    settings, clock = desk.settings, desk.clock
    vi = words("vi")
    request = await Request.get_or_none(id=request_id) if 0 < request_id < 2**63 else None
    if request is None:
        raise await desk.refuse(actor, SEND_ACTION, request_id if 0 < request_id < 2**63 else None,
                                NotFound(vi("card.no_request", id=str(request_id)[:20])))
    if not actor.has(*SEND_ROLES):
        raise await desk.refuse(actor, SEND_ACTION, request.id, NotAllowed(vi("confirm.not_allowed")))
    if version is not None and version != request.version:
        raise await desk.refuse(actor, SEND_ACTION, request.id,
                                EdudeskError(vi("confirm.stale", id=request.id), code="stale"), version=version)
    if State(request.state) not in _OPEN_FOR_CHECK:
        raise await desk.refuse(actor, SEND_ACTION, request.id, EdudeskError(
            vi("confirm.not_open", id=request.id, state=vi.label("state", request.state)), code="confirm_not_open"))
    if not await confirmation_pending(request):
        raise await desk.refuse(actor, SEND_ACTION, request.id, EdudeskError(
            vi("confirm.not_needed", id=request.id), code="confirm_not_needed"))
    wanted = await targets(request)
    opened = await _opened(request.id)
    missing = [t for t in wanted if not t.key or not t.address]
    if missing:
        # A link must reach every person, or confirming proves nothing: say whose address is missing.
        names = ", ".join(t.name for t in missing)
        key = "confirm.no_entry" if any(not t.key for t in missing) else "confirm.no_address"
        raise await desk.refuse(actor, SEND_ACTION, request.id, EdudeskError(
            vi(key, id=request.id, names=names), code="no_personal_address"), people=len(missing))
    todo = [t for t in wanted if t.key not in opened]
    now = clock.now()
    expires = now + timedelta(hours=settings.intake.confirm_link_hours)
    lang = request.lang or settings.general.language
    for _ in range(_ATTEMPTS):
        async with in_transaction() as conn:
            version_now = request.version + 1
            won = await Request.filter(id=request.id, version=request.version).using_db(conn).update(
                version=version_now, updated_at=now)
            if not won:
                fresh = await Request.get(id=request.id)
                if State(fresh.state) not in _OPEN_FOR_CHECK or version is not None:
                    raise await desk.refuse(actor, SEND_ACTION, request.id,
                                            EdudeskError(vi("confirm.stale", id=request.id), code="stale"))
                request = fresh
                continue
            for target in todo:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                hashed = token_hash(token)
                secret_key = f"{SECRET_PREFIX}{hashed}"
                await PendingSecret.create(key=secret_key, request_id=request.id, created_at=now, using_db=conn,
                                           sealed=box.seal(f"{settings.web_url}{CONFIRM_PATH}{token}"))
                await SenderConfirmation.create(token_hash=hashed, request_id=request.id, address=target.address,
                                                person_id=target.key, sent_by=actor.label, created_at=now,
                                                expires_at=expires, using_db=conn)
                context = {**mail_context(settings, target.name), "number": request.id, "kind": request.kind,
                           "lang": lang, "addressee": "person", "sender_address": request.sender,
                           "received": request.received_at.isoformat(), "expires": expires.isoformat(),
                           "link_secret": secret_key}
                await queue_mail(conn, desk.queue, clock, settings, key=f"{TEMPLATE}:{request.id}:{hashed[:16]}",
                                 template=TEMPLATE, recipient=target.address, context=context,
                                 request_id=request.id, automatic=False)
            await AuditEvent.create(at=now, actor=actor.label, action="request_confirm_sent", request_id=request.id,
                                    using_db=conn, detail={
                                        "label": vi("event.request_confirm_sent"), "version": version_now,
                                        "people": [t.key for t in todo], "sent_to": [mask(t.address) for t in todo],
                                        "expires": local_time(expires, settings.general.timezone)})
            await enqueue_cards(conn, desk.queue, request.id, version_now, State(request.state))
        break
    else:
        raise RuntimeError(f"request {request.id} keeps changing; try again")
    desk.queue.wake()
    w = _words(settings)
    text = w("confirm.sent", id=request.id, names=", ".join(t.name for t in todo),
             addresses=", ".join(mask(t.address) for t in todo),
             when=local_time(expires, settings.general.timezone))
    return Sent(request.id, len(todo), text)


def _refusal(row: SenderConfirmation | None, now: datetime) -> Refusal | None:
    if row is None or row.opened_at is not None:
        return Refusal.INVALID
    if _aware(row.expires_at) <= now:
        return Refusal.EXPIRED
    return None


def refused(reason: Refusal, request_id: int | None = None) -> LinkRefused:
    """A confirmation link that does nothing; `reason` tells the page what to say."""
    return LinkRefused(words("vi")(f"confirm.refused.{reason.value}"), reason=reason.value,
                       code="confirm_link_refused", request_id=request_id)


async def peek_confirmation(token: str, clock: Clock) -> LinkInfo | LinkRefused:
    """What a link would confirm, changing nothing (mail scanners and previews fetch links)."""
    row = await SenderConfirmation.get_or_none(token_hash=token_hash(token[:200]))
    reason = _refusal(row, clock.now())
    if reason is not None or row is None:
        # An unknown or used link tells nothing about any request; an expired one is the reader's own.
        return refused(reason or Refusal.INVALID, row.request_id if row and reason is Refusal.EXPIRED else None)
    request = await Request.get_or_none(id=row.request_id)
    if request is None:
        return refused(Refusal.INVALID)
    name = ""
    if row.person_id:
        entry = await RegistryEntry.filter(person_id=row.person_id).first()
        name = entry.full_name if entry else ""
    return LinkInfo(request.id, request.kind, request.sender, name, _aware(row.expires_at), request.lang)


async def open_confirmation(token: str, settings: Settings, clock: Clock, queue: JobQueue, *,
                            client: str = "") -> Confirmed | LinkRefused:
    """Use a link once: mark it opened; when every person has confirmed, lift the block, refresh the card and
    tell the office. Refusals (unknown, used, expired) are audited, without the token."""
    hashed = token_hash(token[:200])
    where = {"client": client[:100]} if client else {}
    for _ in range(_ATTEMPTS):
        now = clock.now()
        try:
            async with in_transaction() as conn:
                row = await SenderConfirmation.filter(token_hash=hashed).using_db(conn).first()
                reason = _refusal(row, now)
                if reason is None and row is not None:
                    # Of two posts at the same moment exactly one changes the row.
                    won = await SenderConfirmation.filter(token_hash=hashed, opened_at__isnull=True,
                                                          expires_at__gt=now).using_db(conn).update(opened_at=now)
                    reason = None if won else Refusal.INVALID
                request = await Request.filter(id=row.request_id).using_db(conn).first() if row else None
                if reason is not None or row is None or request is None:
                    reason = reason or Refusal.INVALID
                    await AuditEvent.create(at=now, actor=ACTOR, action="sender_confirmation_refused",
                                            using_db=conn, request_id=row.request_id if row else None,
                                            detail={"reason": reason.value, **where})
                    return refused(reason, row.request_id if row and reason is Refusal.EXPIRED else None)
                done = await _lift(conn, request, row, now, settings, queue, where)
                if done is None:
                    raise _Raced  # rolls the opening back with the rest; the next round reads the request again
        except _Raced:
            continue
        queue.wake()
        return Confirmed(request.id, request.lang or settings.general.language, done)
    raise RuntimeError("the request keeps changing; the person may press the button again")


class _Raced(Exception):
    """The request changed between reading and writing it: the transaction rolls back and runs again."""


async def _lift(conn: Any, request: Request, row: SenderConfirmation, now: datetime, settings: Settings,
                queue: JobQueue, where: dict[str, str]) -> bool | None:
    """Record one person's confirmation on the request; None when a decision raced it (the caller retries)."""
    opened = set(await SenderConfirmation.filter(request_id=request.id, opened_at__isnull=False).using_db(
        conn).values_list("person_id", flat=True))
    wanted = await targets(request)
    complete = bool(wanted) and all(t.key and t.key in opened for t in wanted)
    flags = list(request.flags or [])
    if complete and CONFIRMED not in flags:
        flags.append(CONFIRMED)
    version_now = request.version + 1
    won = await Request.filter(id=request.id, version=request.version).using_db(conn).update(
        flags=flags, version=version_now, updated_at=now)
    if not won:
        return None
    vi, w = words("vi"), _words(settings)
    await AuditEvent.create(at=now, actor=ACTOR, action="request_sender_confirmed", request_id=request.id,
                            using_db=conn, detail={"label": vi("event.request_sender_confirmed"),
                                                   "person": row.person_id, "sent_to": mask(row.address),
                                                   "sent_by": row.sent_by, "complete": complete,
                                                   "version": version_now, **where})
    await enqueue_cards(conn, queue, request.id, version_now, State(request.state))
    names = ", ".join(t.name for t in wanted if t.key == row.person_id) or row.person_id
    left = sum(1 for t in wanted if not t.key or t.key not in opened)
    text = w("confirm.notice_done" if complete else "confirm.notice_partial", id=request.id, name=names, left=left)
    await enqueue_notice(conn, queue, f"confirmed:{request.id}:{version_now}", "office", text, request.id)
    return complete


async def purge_expired(clock: Clock) -> int:
    """Delete the sealed URLs of confirmation links that expired before their mail went out; returns how many."""
    rows: Sequence[str] = await SenderConfirmation.filter(opened_at__isnull=True, expires_at__lte=clock.now()
                                                          ).values_list("token_hash", flat=True)  # type: ignore[assignment]
    keys = [f"{SECRET_PREFIX}{h}" for h in rows]
    deleted = 0
    for start in range(0, len(keys), 500):
        deleted += await PendingSecret.filter(key__in=keys[start:start + 500]).delete()
    return deleted
