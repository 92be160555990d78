"""Who may act: roles from config.toml and from the staff table, resolved into an `Actor`."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from tortoise.transactions import in_transaction

from edudesk.core.chats.surfaces import NOTIFY_CHOICES
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.errors import NotAllowed as NotAllowed  # its old home: importers may still name it here
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff

if TYPE_CHECKING:
    from tortoise.backends.base.client import BaseDBAsyncClient


class Role(enum.StrEnum):
    """What a staff member may do."""

    OFFICE = "office"  # checks requests: approve, reject, ask for more
    TECHNICAL = "technical"  # provisions accounts
    HEAD = "head"  # sees overdue work, reassigns; may also do the office's steps
    ADMIN = "admin"  # everything, and manages staff
    TEACHER = "teacher"  # signs school records (subject, homeroom)
    LEADER = "leader"  # school leadership: signs records, sees signing progress, reminds teachers


@dataclass(frozen=True)
class Actor:
    """A person acting through a channel: `key` names them in the audit trail ("tg:123", "web:4")."""

    key: str
    name: str
    roles: frozenset[Role]
    staff_id: int | None = None

    @property
    def label(self) -> str:
        """How the audit trail and cards name the actor (fits the audit column of 200 characters)."""
        return (f"{self.name[:150]} ({self.key})" if self.name else self.key)[:200]

    def has(self, *roles: Role) -> bool:
        """Whether the actor holds one of `roles` (admin holds them all)."""
        return Role.ADMIN in self.roles or any(r in self.roles for r in roles)


def _config_roles(settings: Settings, *keys: str) -> set[Role]:
    found = set()
    wanted = {k.lower() for k in keys if k}
    for role in Role:
        if wanted & {v.lower() for v in getattr(settings.roles, role.value)}:
            found.add(role)
    return found


def _staff_roles(staff: Staff | None) -> set[Role]:
    if staff is None or not staff.active:
        return set()
    return {Role(r) for r in staff.roles or [] if r in Role._value2member_map_}


async def actor_for_telegram(user_id: int, name: str, settings: Settings) -> Actor:
    """The actor behind a Telegram user id (roles from config `tg:<id>` and the staff table)."""
    staff = await Staff.get_or_none(telegram_id=user_id)
    if staff is not None and not staff.active:
        return Actor(f"tg:{user_id}", staff.name, frozenset(), staff.id)  # disabled wins over config roles
    roles = _config_roles(settings, f"tg:{user_id}", staff.email if staff else "") | _staff_roles(staff)
    return Actor(f"tg:{user_id}", staff.name if staff else name, frozenset(roles), staff.id if staff else None)


async def actor_for_zalo(user_id: str, name: str, settings: Settings) -> Actor:
    """The actor behind a Zalo user id: the staff member who linked it (roles from the staff table and the
    config entries of their e-mail); nobody's roles before the account is linked."""
    staff = await Staff.get_or_none(zalo_id=user_id[:64])
    if staff is None:
        return Actor(f"zalo:{user_id[:64]}", name[:100], frozenset())
    if not staff.active:
        return Actor(f"zalo:{user_id[:64]}", staff.name, frozenset(), staff.id)
    keys = [staff.email] + ([f"tg:{staff.telegram_id}"] if staff.telegram_id else [])
    roles = _config_roles(settings, *keys) | _staff_roles(staff)
    return Actor(f"zalo:{user_id[:64]}", staff.name, frozenset(roles), staff.id)


def _keys(staff: Staff) -> list[str]:
    return [staff.email] + ([f"tg:{staff.telegram_id}"] if staff.telegram_id else [])


def roles_of(staff: Staff, settings: Settings) -> set[Role]:
    """A staff member's roles: the staff table's and config.toml's `[roles]` entries naming them."""
    if not staff.active:
        return set()
    return _config_roles(settings, *_keys(staff)) | _staff_roles(staff)


async def staff_holding(role: Role, settings: Settings, conn: BaseDBAsyncClient | None = None) -> list[Staff]:
    """The active staff members who hold `role`, whether the staff table or config.toml gives it to them."""
    rows = await (Staff.filter(active=True).using_db(conn) if conn is not None else Staff.filter(active=True))
    return [s for s in rows if role in roles_of(s, settings)]


async def actor_for_staff(staff_id: int, settings: Settings) -> Actor | None:
    """The actor of a staff member (web console sessions); None when unknown or disabled."""
    staff = await Staff.get_or_none(id=staff_id)
    if staff is None or not staff.active:
        return None
    keys = [staff.email] + ([f"tg:{staff.telegram_id}"] if staff.telegram_id else [])
    roles = _config_roles(settings, *keys) | _staff_roles(staff)
    return Actor(f"web:{staff.id}", staff.name, frozenset(roles), staff.id)


async def add_staff(name: str, roles: list[str], *, email: str = "", telegram_id: int | None = None,
                    now: datetime, merge_roles: bool = False) -> Staff:
    """Add a staff member, or update the one with the same Telegram id or e-mail (roles replaced, or with
    `merge_roles` added to the ones it has)."""
    bad = [r for r in roles if r not in Role._value2member_map_]
    if bad:
        known = ", ".join(r.value for r in Role)
        raise EdudeskError(f"Vai trò không hợp lệ: {', '.join(bad)} (có: {known}).", code="bad_role")
    existing = None
    if telegram_id is not None:
        existing = await Staff.get_or_none(telegram_id=telegram_id)
    if existing is None and email:
        existing = await Staff.get_or_none(email=email.lower())
    if existing is not None:
        kept = set(existing.roles or []) if merge_roles else set()
        await Staff.filter(id=existing.id).update(name=name or existing.name, roles=sorted(kept | set(roles)),
                                                  active=True,
                                                  email=email.lower() or existing.email,
                                                  telegram_id=telegram_id or existing.telegram_id)
        return await Staff.get(id=existing.id)
    return await Staff.create(name=name, email=email.lower(), telegram_id=telegram_id, roles=sorted(set(roles)),
                              created_at=now)


async def staff_for_telegram(user_id: int, name: str, now: datetime) -> Staff:
    """The staff row of a Telegram user, made (without roles) the first time one is needed (web sign-in)."""
    staff = await Staff.get_or_none(telegram_id=user_id)
    if staff is None:
        await Staff.bulk_create([Staff(name=name[:200], telegram_id=user_id, roles=[], created_at=now)],
                                ignore_conflicts=True)
        staff = await Staff.get(telegram_id=user_id)
    return staff


async def assignable_staff(limit: int | None = 20) -> list[Staff]:
    """Who a head can give work to: active office and technical staff (the first `limit` by name)."""
    rows = await Staff.filter(active=True).order_by("name")
    return [s for s in rows if {Role.OFFICE.value, Role.TECHNICAL.value} & set(s.roles or [])][:limit]


async def choose_notify_via(actor: Actor, value: str, now: datetime) -> None:
    """Where the actor's own notices go (a staff member's choice, audited); refused for anyone who is not
    a staff member and for a value that names no channel."""
    if actor.staff_id is None:
        raise NotAllowed("Chỉ cán bộ của trường chọn được nơi nhận thông báo.")
    if value not in NOTIFY_CHOICES:
        raise EdudeskError(f"Không có kênh thông báo «{value[:40]}».", code="bad_notify_via")
    async with in_transaction() as conn:
        await Staff.filter(id=actor.staff_id).using_db(conn).update(notify_via=value)
        await AuditEvent.create(at=now, actor=actor.label, action="notify_via_changed", using_db=conn,
                                detail={"staff_id": actor.staff_id, "notify_via": value})
