"""One-time password links: the result mail carries a link; the passwords stay sealed until it is opened once.

Only the sha256 of the token is stored, so a copy of the database opens no link. Until the result mail is
handed to the transport the URL itself is held sealed (`PendingSecret` "link:<hash>"), and the mail job names
only that key; the delivery opens it, sends, and deletes it when it marks the mail sent. The sealed passwords
are deleted in the transaction that shows them, or by `purge_expired` once a link expires.
"""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.transactions import in_transaction

from edudesk.core.accounts.models import PasswordLink, PendingSecret
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError, LinkRefused
from edudesk.core.models import AuditEvent
from edudesk.core.people.webauth import token_hash
from edudesk.core.ports import Clock
from edudesk.core.secrets import SecretBox

log = logging.getLogger(__name__)
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 characters
LINK_PATH = "/p/"
LINK_SECRET = "link:"  # PendingSecret key prefix of a sealed link URL waiting for its mail
ACTOR = "web (password link)"


class Refusal(enum.StrEnum):
    """Why a link shows nothing."""

    UNKNOWN = "unknown"  # no such token (mistyped, cut by the mail client, or forged)
    USED = "used"  # opened once already
    EXPIRED = "expired"  # older than [provisioning].link_hours
    GONE = "gone"  # the sealed passwords are no longer held (purged, or the key changed)


_MESSAGES = {
    Refusal.UNKNOWN: "Liên kết nhận mật khẩu không hợp lệ.",
    Refusal.USED: "Liên kết nhận mật khẩu này đã được mở; mỗi liên kết chỉ xem được một lần.",
    Refusal.EXPIRED: "Liên kết nhận mật khẩu đã hết hạn.",
    Refusal.GONE: "Mật khẩu của liên kết này không còn được lưu.",
}


def refused(reason: Refusal, request_id: int | None = None) -> LinkRefused:
    """A password link that shows nothing; its `reason` (a `Refusal`) tells the page which message to give."""
    return LinkRefused(f"{_MESSAGES[reason]} Vui lòng trả lời thư để nhận liên kết mới.", reason=reason,
                       code="password_link_refused", request_id=request_id)


@dataclass(frozen=True)
class LinkInfo:
    """What the page may say before the link is opened: nothing secret."""

    request_id: int
    expires_at: datetime
    count: int
    is_list: bool


@dataclass(frozen=True)
class OpenedLink:
    """A link opened once: its accounts with their passwords (in memory only)."""

    request_id: int
    recipient: str
    is_list: bool
    accounts: list[dict[str, str]]  # {"full_name", "address", "password"}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # some SQLite drivers hand back naive UTC


def _refusal(row: PasswordLink | None, now: datetime) -> Refusal | None:
    if row is None:
        return Refusal.UNKNOWN
    if row.opened_at is not None:
        return Refusal.USED
    if _aware(row.expires_at) <= now:
        return Refusal.EXPIRED
    return None


def _keys(row: PasswordLink) -> list[str]:
    return [a["password_secret"] for a in row.accounts or [] if a.get("password_secret")]


def link_secret_key(hashed: str) -> str:
    """The `PendingSecret` key of the sealed URL of the link whose token hashes to `hashed`."""
    return f"{LINK_SECRET}{hashed}"


async def issue_password_link(conn: Any, settings: Settings, clock: Clock, box: SecretBox, *, request_id: int,
                              recipient: str, accounts: list[dict[str, str]], is_list: bool = False) -> str:
    """Store a one-time link to `accounts` in the caller's transaction; returns the key of its sealed URL."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    hashed = token_hash(token)
    now = clock.now()
    key = link_secret_key(hashed)
    await PendingSecret.create(key=key, request_id=request_id, sealed=box.seal(f"{settings.web_url}{LINK_PATH}{token}"),
                               created_at=now, using_db=conn)
    await PasswordLink.create(token_hash=hashed, request_id=request_id, recipient=recipient[:320],
                              accounts=[{"full_name": a.get("full_name", ""), "address": a.get("address", ""),
                                         "password_secret": a.get("password_secret", "")} for a in accounts],
                              is_list=is_list, created_at=now,
                              expires_at=now + timedelta(hours=settings.provisioning.link_hours), using_db=conn)
    return key


async def peek_password_link(token: str, clock: Clock) -> LinkInfo | LinkRefused:
    """What a link would show, consuming nothing (mail scanners and previews fetch links)."""
    row = await PasswordLink.get_or_none(token_hash=token_hash(token[:200]))
    refusal = _refusal(row, clock.now())
    if refusal is not None or row is None:
        return refused(refusal or Refusal.UNKNOWN, row.request_id if row else None)
    return LinkInfo(request_id=row.request_id, expires_at=_aware(row.expires_at), count=len(row.accounts or []),
                    is_list=row.is_list)


class _Gone(Exception):
    """Rolls the opening back: the passwords cannot be shown, so the link is not spent."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


async def open_password_link(token: str, clock: Clock, box: SecretBox, *,
                             client: str = "") -> OpenedLink | LinkRefused:
    """Open a link once: mark it opened, unseal its passwords and delete them, all in one transaction."""
    hashed = token_hash(token[:200])
    now = clock.now()
    where = {"client": client[:100]} if client else {}
    try:
        async with in_transaction() as conn:
            row = await PasswordLink.filter(token_hash=hashed).using_db(conn).first()
            refusal = _refusal(row, now)
            if refusal is None and row is not None:
                # Conditional update: of two opens at the same moment exactly one changes the row (PostgreSQL
                # makes the second wait for the first to commit, then finds opened_at set).
                won = await PasswordLink.filter(token_hash=hashed, opened_at__isnull=True,
                                                expires_at__gt=now).using_db(conn).update(opened_at=now)
                refusal = None if won else Refusal.USED
            if refusal is not None or row is None:
                await _audit_refusal(conn, refusal or Refusal.UNKNOWN, row, now, where)
                return refused(refusal or Refusal.UNKNOWN, row.request_id if row else None)
            keys = _keys(row)
            sealed = {s.key: s.sealed for s in await PendingSecret.filter(key__in=keys).using_db(conn)} if keys else {}
            if any(k not in sealed for k in keys):
                raise _Gone("missing")
            try:
                accounts = [{"full_name": a.get("full_name", ""), "address": a.get("address", ""),
                             "password": box.open(sealed[a["password_secret"]]) if a.get("password_secret") else ""}
                            for a in row.accounts or []]
            except EdudeskError as exc:
                raise _Gone(exc.code) from None
            if keys:
                await PendingSecret.filter(key__in=keys).using_db(conn).delete()
            await AuditEvent.create(at=now, actor=ACTOR, action="password_link_opened", request_id=row.request_id,
                                    using_db=conn, detail={"recipient": row.recipient, "accounts": len(accounts),
                                                           "addresses": [a["address"] for a in accounts[:50]],
                                                           **where})
    except _Gone as gone:
        log.error("password link of request %s cannot be opened: sealed passwords %s",
                  row.request_id if row else "?", gone.cause)
        async with in_transaction() as conn:
            await _audit_refusal(conn, Refusal.GONE, row, now, {"cause": gone.cause, **where})
        return refused(Refusal.GONE, row.request_id if row else None)
    return OpenedLink(request_id=row.request_id, recipient=row.recipient, is_list=row.is_list, accounts=accounts)


async def _audit_refusal(conn: Any, reason: Refusal, row: PasswordLink | None, now: datetime,
                         extra: dict[str, str]) -> None:
    await AuditEvent.create(at=now, actor=ACTOR, action="password_link_refused",
                            request_id=row.request_id if row else None, using_db=conn,
                            detail={"reason": reason.value, **({"recipient": row.recipient} if row else {}), **extra})


async def purge_expired(clock: Clock) -> int:
    """Delete the sealed passwords (and unsent URLs) of links that expired unopened; returns how many."""
    now = clock.now()
    rows = await PasswordLink.filter(opened_at__isnull=True, expires_at__lte=now).only("token_hash", "accounts")
    keys = [k for row in rows for k in (*_keys(row), link_secret_key(row.token_hash))]
    deleted = 0
    for start in range(0, len(keys), 500):  # bounded IN lists
        deleted += await PendingSecret.filter(key__in=keys[start:start + 500]).delete()
    if deleted:
        log.info("purged %d sealed passwords of expired password links", deleted)
    return deleted
