"""Linking a chat account to a staff member, and acting from a chat without buttons.

- Link codes: a staff member links their Zalo (or Telegram) account once with a six-digit code shown in the
  web console (/whoami) or mailed to their institutional address (`/lienket email` in the chat). The code
  lives `link_code_minutes`, is used once, only its hash is stored, and a chat account gets at most
  `LINK_ATTEMPTS` wrong codes an hour. Every link and every refusal is in the audit trail.
- Action tokens: one-time links (and Zalo OA button payloads) that carry one decision for one person —
  256 random bits, only the hash stored, bound to the staff member, the action, the request and the
  version the card showed, valid `action_link_hours`. A forged, replayed or expired token does nothing
  and is audited; a token used from another person's chat account is refused the same way.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.transactions import in_transaction

from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.surfaces import ACCOUNTS, Surface, surface_of
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError, LinkRefused
from edudesk.core.jobs import JobQueue
from edudesk.core.models import AuditEvent
from edudesk.core.people.linkmodels import ActionToken, LinkCode
from edudesk.core.people.models import Staff
from edudesk.core.ports import Clock
from edudesk.core.requests.mailqueue import mail_context, queue_mail

LINK_ATTEMPTS = 5  # wrong codes per chat account per hour
MAILS_PER_HOUR = 3  # codes mailed to one address an hour
LINK_ATTEMPTS_ALL = 50  # wrong codes of all accounts in ten minutes before linking pauses
SURFACES: tuple[Surface, ...] = tuple(Surface)
ACTION_PREFIX = "#a "  # an OA button payload: "#a <token>"


class ActionRefused(EdudeskError):
    """An action token that is forged, replayed, expired or someone else's."""

    code = "action_refused"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def issue_link_code(staff_id: int, surface: str, settings: Settings, clock: Clock, *,
                          issued_by: str) -> str:
    """A new six-digit code for the staff member (older unused ones of the surface stop working)."""
    if surface_of(surface) is None:
        raise LinkRefused(f"Không liên kết được kênh «{surface}».")
    now = clock.now()
    while True:  # no two live codes alike (a million codes, a handful live): the redeemer finds one owner
        code = f"{secrets.randbelow(10 ** 6):06d}"
        if not await LinkCode.filter(code_hash=_hash(f"{surface}:{code}"), used_at__isnull=True,
                                     expires_at__gt=now).exists():
            break
    async with in_transaction() as conn:
        await LinkCode.filter(staff_id=staff_id, surface=surface, used_at__isnull=True).using_db(conn).update(
            used_at=now)
        await LinkCode.create(code_hash=_hash(f"{surface}:{code}"), staff_id=staff_id, surface=surface,
                              created_at=now, using_db=conn,
                              expires_at=now + timedelta(minutes=settings.chat.link_code_minutes))
        await AuditEvent.create(at=now, actor=issued_by, action="chat_link_code", using_db=conn,
                                detail={"staff_id": staff_id, "surface": surface})
    return code


async def mail_link_code(email: str, surface: str, settings: Settings, clock: Clock, queue: JobQueue, *,
                         external_id: str) -> None:
    """`/lienket email`: mail a code to that address when it is an active staff member's; silent otherwise
    (the chat's answer is the same either way, so nobody learns who works here)."""
    staff = await Staff.get_or_none(email=email.strip().lower()[:320], active=True)
    now, actor = clock.now(), f"{surface}:{external_id}"
    hour = now - timedelta(hours=1)
    asked = await AuditEvent.filter(action__in=["chat_link_mail", "chat_link_refused"], actor=actor,
                                    at__gte=hour).count()
    if asked >= LINK_ATTEMPTS:
        raise LinkRefused("Đã xin mã quá nhiều lần; hãy thử lại sau một giờ.")
    await AuditEvent.create(at=now, actor=actor, action="chat_link_mail", detail={
        "surface": surface, "staff_id": staff.id if staff else None})
    if staff is None:
        return
    # A known address gets at most MAILS_PER_HOUR codes, whoever asks: no flooding a mailbox, and the code
    # the person is about to type is not replaced again and again by someone else.
    if await _codes_for(staff.id, hour) >= MAILS_PER_HOUR:
        return
    code = await issue_link_code(staff.id, surface, settings, clock, issued_by=f"{surface}:{external_id}")
    async with in_transaction() as conn:
        context = {**mail_context(settings, staff.name), "code": code, "surface": surface.capitalize(),
                   "minutes": int(settings.chat.link_code_minutes)}
        await queue_mail(conn, queue, clock, settings, key=f"link_code:{staff.id}:{surface}:{int(now.timestamp())}",
                         template="link_code", recipient=staff.email, context=context)
    queue.wake()


async def _codes_for(staff_id: int, since: datetime) -> int:
    return await LinkCode.filter(staff_id=staff_id, created_at__gte=since).count()


async def redeem_link_code(surface: str, external_id: str, code: str, clock: Clock) -> Staff:
    """Link the chat account to the code's staff member (taking it from anyone who had it before)."""
    now, actor = clock.now(), f"{surface}:{external_id}"
    recent = await AuditEvent.filter(action="chat_link_refused", actor=actor, at__gte=now - timedelta(hours=1)).count()
    if recent >= LINK_ATTEMPTS:
        raise LinkRefused("Nhập sai mã quá nhiều lần; hãy thử lại sau một giờ.")
    # Many accounts guessing together (a million codes, a few live at a time): everyone waits a little.
    everyone = await AuditEvent.filter(action="chat_link_refused", at__gte=now - timedelta(minutes=10)).count()
    if everyone >= LINK_ATTEMPTS_ALL:
        raise LinkRefused("Có quá nhiều lần nhập sai mã liên kết; hãy thử lại sau mười phút.")
    row = await LinkCode.filter(code_hash=_hash(f"{surface}:{code.strip()[:12]}"), surface=surface,
                                used_at__isnull=True, expires_at__gt=now).order_by("-id").first()
    if row is None:
        await AuditEvent.create(at=now, actor=actor, action="chat_link_refused",
                                detail={"reason": "wrong_code", "surface": surface})
        raise LinkRefused("Mã liên kết không đúng hoặc đã hết hạn. Hãy lấy mã mới ở trang «Tài khoản» của web "
                          "console, hoặc gửi /lienket <địa chỉ e-mail của trường>.")
    field = ACCOUNTS[Surface(surface)]
    column, value = field.column, field.parse(external_id)
    async with in_transaction() as conn:
        if not await LinkCode.filter(id=row.id, used_at__isnull=True).using_db(conn).update(used_at=now):
            raise LinkRefused("Mã liên kết này vừa được dùng.")
        before = await Staff.filter(**{column: value}).exclude(id=row.staff_id).using_db(conn).first()
        if before is not None:
            await Staff.filter(id=before.id).using_db(conn).update(**{column: None})
        await Staff.filter(id=row.staff_id).using_db(conn).update(**{column: value})
        await AuditEvent.create(at=now, actor=actor, action="chat_linked", using_db=conn,
                                detail={"staff_id": row.staff_id, "surface": surface,
                                        "taken_from": before.id if before else None})
    return await Staff.get(id=row.staff_id)


@dataclass(frozen=True)
class Grant:
    """What a redeemed action token allows: one action by one staff member."""

    staff_id: int
    action: ButtonAction
    target: int
    version: int
    arg: int
    expires_at: datetime | None = None


async def issue_action(staff_id: int, action: ButtonAction, target: int, settings: Settings, clock: Clock, *,
                       surface: Surface, version: int = 0, arg: int = 0) -> str:
    """A new one-time token for one action of one person."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    await ActionToken.create(token_hash=_hash(token), staff_id=staff_id, action=action[:32], target=target,
                             version=version, arg=arg, surface=surface, created_at=now,
                             expires_at=now + timedelta(hours=settings.chat.action_link_hours))
    return token


async def _refuse(actor: str, reason: str, row: ActionToken | None, clock: Clock) -> ActionRefused:
    detail = {"reason": reason}
    if row is not None:
        detail |= {"staff_id": row.staff_id, "action": row.action, "target": row.target}
    await AuditEvent.create(at=clock.now(), actor=actor[:200], action="action_token_refused", detail=detail)
    text = {"forged": "Liên kết thao tác không hợp lệ.",
            "replayed": "Liên kết thao tác này đã được dùng; mỗi liên kết chỉ dùng được một lần.",
            "expired": "Liên kết thao tác đã hết hạn; hãy dùng lệnh trong tin nhắn hoặc web console.",
            "not_yours": "Liên kết thao tác này là của người khác.",
            "disabled": "Tài khoản cán bộ này đã bị khoá."}[reason]
    return ActionRefused(text, code=f"action_{reason}")


async def peek_action(token: str, clock: Clock, *, actor: str, staff_id: int | None = None) -> Grant:
    """Check a token without using it (the confirmation page); refusals are audited. `staff_id`, when the
    browser is signed in to the console, must be the token's owner."""
    row = await ActionToken.get_or_none(token_hash=_hash(token[:200]))
    reason = _why_not(row, clock)
    if not reason and row is not None and staff_id is not None and row.staff_id != staff_id:
        reason = "not_yours"
    if reason:
        raise await _refuse(actor, reason, row, clock)
    assert row is not None
    return Grant(row.staff_id, ButtonAction(row.action), row.target, row.version, row.arg, _aware(row.expires_at))


def _why_not(row: ActionToken | None, clock: Clock) -> str:
    if row is None:
        return "forged"
    if row.used_at is not None:
        return "replayed"
    if _aware(row.expires_at) <= clock.now():
        return "expired"
    return ""


async def redeem_action(token: str, clock: Clock, *, actor: str, staff_id: int | None = None) -> Grant:
    """Use a token once: exactly one of two concurrent uses wins. `staff_id`, when the token came from a
    chat account or a browser signed in to the console, must be the token's owner."""
    row = await ActionToken.get_or_none(token_hash=_hash(token[:200]))
    reason = _why_not(row, clock)
    if not reason and row is not None and staff_id is not None and row.staff_id != staff_id:
        reason = "not_yours"
    if not reason and row is not None and not await Staff.filter(id=row.staff_id, active=True).exists():
        reason = "disabled"
    if not reason and row is not None and not await ActionToken.filter(
            token_hash=row.token_hash, used_at__isnull=True).update(used_at=clock.now()):
        reason = "replayed"
    if reason:
        raise await _refuse(actor, reason, row, clock)
    assert row is not None
    await AuditEvent.create(at=clock.now(), actor=actor[:200], action="action_token_used",
                            detail={"staff_id": row.staff_id, "action": row.action, "target": row.target,
                                    "surface": row.surface})
    return Grant(row.staff_id, ButtonAction(row.action), row.target, row.version, row.arg)
