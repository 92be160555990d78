"""Password-free sign-in to the web console: one-time login links and cookie sessions.

Only hashes of link tokens and session cookies are stored, so a copy of the database signs nobody in.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.errors import EdudeskError, NotFound
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import LoginToken, Staff, WebSession
from edudesk.core.ports import Clock

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 characters
LOGIN_PATH = "/login/"
SIGNED_IN = "web_session_opened"  # the audit action of a sign-in; append-only, so "ever signed in" survives pruning


class LoginRefused(EdudeskError):
    """A login link that is unknown, used already or expired."""

    code = "login_refused"


def token_hash(token: str) -> str:
    """The stored form of a link token or a session cookie."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # some SQLite drivers hand back naive UTC


async def issue_login_link(staff_id: int, settings: Settings, clock: Clock, *, base_url: str | None = None,
                           issued_by: str = "system") -> str:
    """A one-time sign-in link for a staff member, valid [web].login_link_minutes; only its hash is kept."""
    staff = await Staff.get_or_none(id=staff_id)
    if staff is None or not staff.active:
        raise NotFound("Không có cán bộ này, hoặc tài khoản đã bị khoá.")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = clock.now()
    await LoginToken.create(token_hash=token_hash(token), staff_id=staff.id, created_at=now,
                            expires_at=now + timedelta(minutes=settings.web.login_link_minutes))
    await AuditEvent.create(at=now, actor=issued_by, action="web_login_link",
                            detail={"staff_id": staff.id, "staff_name": staff.name})
    return f"{(base_url or settings.web_url).rstrip('/')}{LOGIN_PATH}{token}"


async def ensure_first_admin(settings: Settings, clock: Clock, *, base_url: str | None = None) -> str | None:
    """Create the first admin when there is none; while nobody ever signed in, a login link to print."""
    now = clock.now()
    async with in_transaction() as conn:
        await lock_for_transaction(conn, "edudesk:first_admin")  # two replicas starting together make one
        staff = await Staff.all().using_db(conn).order_by("id")
        admins = [s for s in staff if "admin" in (s.roles or [])]
        if not admins:
            admin = await Staff.create(name="Quản trị viên", roles=["admin"], created_at=now, using_db=conn)
            await AuditEvent.create(at=now, actor="system", action="staff_created", using_db=conn,
                                    detail={"staff_id": admin.id, "roles": ["admin"], "reason": "first_admin"})
            admins = [admin]
    active = [a for a in admins if a.active]
    if not active:
        return None
    if await WebSession.exists() or await AuditEvent.filter(action=SIGNED_IN).exists():
        return None
    return await issue_login_link(active[0].id, settings, clock, base_url=base_url)


async def peek_login(token: str, clock: Clock) -> None:
    """Raise LoginRefused when a link cannot be used (shown before the sign-in button; consumes nothing)."""
    await _usable(token, clock)


async def _usable(token: str, clock: Clock) -> LoginToken:
    row = await LoginToken.get_or_none(token_hash=token_hash(token[:200]))
    if row is None:
        raise LoginRefused("Liên kết đăng nhập không hợp lệ. Vui lòng xin một liên kết mới.")
    if row.used_at is not None:
        raise LoginRefused("Liên kết đăng nhập này đã được dùng; mỗi liên kết chỉ dùng được một lần. "
                           "Vui lòng xin một liên kết mới.")
    if _aware(row.expires_at) <= clock.now():
        raise LoginRefused("Liên kết đăng nhập đã hết hạn. Vui lòng xin một liên kết mới.")
    return row


async def consume_login(token: str, clock: Clock) -> int:
    """Use a login link once; returns the staff id, or raises LoginRefused with a Vietnamese message."""
    row = await _usable(token, clock)
    now = clock.now()
    # Conditional update: of two clicks on the same link, exactly one signs in.
    won = await LoginToken.filter(token_hash=row.token_hash, used_at__isnull=True).update(used_at=now)
    if not won:
        raise LoginRefused("Liên kết đăng nhập này đã được dùng; mỗi liên kết chỉ dùng được một lần. "
                           "Vui lòng xin một liên kết mới.")
    staff = await Staff.get_or_none(id=row.staff_id)
    if staff is None or not staff.active:
        raise LoginRefused("Tài khoản cán bộ này đã bị khoá.")
    return staff.id


async def open_session(staff_id: int, settings: Settings, clock: Clock) -> tuple[str, str]:
    """Start a session: returns (cookie value, CSRF token); the cookie is stored hashed."""
    cookie, csrf = secrets.token_urlsafe(TOKEN_BYTES), secrets.token_urlsafe(TOKEN_BYTES)
    now = clock.now()
    async with in_transaction() as conn:
        await WebSession.filter(expires_at__lt=now).using_db(conn).delete()
        await LoginToken.filter(expires_at__lt=now - timedelta(days=1)).using_db(conn).delete()
        await WebSession.create(token_hash=token_hash(cookie), staff_id=staff_id, csrf=csrf, created_at=now,
                                expires_at=now + timedelta(hours=settings.web.session_hours), using_db=conn)
        await AuditEvent.create(at=now, actor=f"web:{staff_id}", action=SIGNED_IN, detail={"staff_id": staff_id},
                                using_db=conn)
    return cookie, csrf


async def session_for(cookie_value: str, clock: Clock) -> WebSession | None:
    """The live session behind a cookie value (None when unknown or expired)."""
    if not cookie_value or len(cookie_value) > 200:
        return None
    session = await WebSession.get_or_none(token_hash=token_hash(cookie_value))
    if session is None or _aware(session.expires_at) <= clock.now():
        return None
    return session


async def close_session(cookie_value: str, clock: Clock) -> None:
    """End a session (sign out)."""
    session = await session_for(cookie_value, clock)
    if session is None:
        return
    await WebSession.filter(token_hash=session.token_hash).delete()
    await AuditEvent.create(at=clock.now(), actor=f"web:{session.staff_id}", action="web_session_closed",
                            detail={"staff_id": session.staff_id})
