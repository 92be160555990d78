"""Chat commands for surfaces without buttons (Zalo): the same core services as the Telegram taps.

`/duyet N`, `/tuchoi N lý do`, `/bosung N nội dung`, `/capphat N`, `/ky [lớp]`, `/danhsach`, `/lienket
mã|e-mail`, `/giup`; and "#a <token>", the payload of a Zalo OA hidden query button (a one-time action
token that must belong to the sender). Answers are plain text (Zalo shows no markup); every refusal comes
from the services, which check roles and write the audit trail.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.surfaces import Surface
from edudesk.core.config import Settings
from edudesk.core.errors import EdudeskError
from edudesk.core.jobs import JobQueue
from edudesk.core.people.access import Permission, allows, audit_denial, require
from edudesk.core.people.chatlinks import ACTION_PREFIX, Grant, mail_link_code, redeem_action, redeem_link_code
from edudesk.core.people.staff import Actor
from edudesk.core.ports import Clock
from edudesk.core.requests.queries import request_queue
from edudesk.core.requests.rows import ConfirmNeeded
from edudesk.core.requests.service import Action, RequestService
from edudesk.core.requests.workflow import OPEN_STATES
from edudesk.core.signing.models import SchoolClass, Teacher
from edudesk.core.signing.service import RecordService
from edudesk.core.signing.turns import role_text
from edudesk.core.signing.usecases import my_turns as turns_of
from edudesk.core.text import local_time
from edudesk.core.words import words

HELP = ("edudesk — bàn trợ giúp CNTT. Lệnh:\n"
        "/lienket <mã> — liên kết tài khoản (mã ở trang «Tài khoản» của web console), hoặc /lienket <e-mail trường>\n"
        "/danhsach [trang] — việc đang chờ Anh/Chị (quá hạn và cũ nhất trước)\n"
        "/duyet <số YC> — yêu cầu hợp lệ\n"
        "/tuchoi <số YC> <lý do> — từ chối\n"
        "/bosung <số YC> <nội dung> — yêu cầu bổ sung\n"
        "/capphat <số YC> — thực hiện trên hệ thống\n"
        "/duyetdong <số YC> <số dòng> — duyệt một dòng có lỗi (thiếu mã, mã không có trong danh sách, trùng)\n"
        "/giulai <số YC> [số dòng] — giữ tài khoản đang chờ xoá\n"
        "/xacnhan <số YC> — gửi liên kết xác nhận người gửi (người gửi chưa được xác minh)\n"
        "/ky [lớp] — ký học bạ số đang chờ Thầy/Cô\n"
        "/giup — danh sách lệnh")
log = logging.getLogger(__name__)
DECISIONS = {"/duyet": Action.APPROVE, "/tuchoi": Action.REJECT, "/bosung": Action.ASK_INFO,
             "/capphat": Action.PROVISION}
CONFIRM = "/xacnhan"  # mail the sender confirmation link of an unverified sender's request
ROW_COMMANDS = ("/duyetdong", "/giulai")  # approve a row held back; keep a leaver's account (core/requests/rows.py)
CONFIRMED = ("xacnhan", "xác nhận", "confirm")  # "/duyet 12 xacnhan": "Hợp lệ" over a ✗, asked once more
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
OPEN = [s.value for s in OPEN_STATES]
TODO_PAGE = 15  # requests per /danhsach answer (a Zalo message holds 2,000 characters)


@dataclass
class TextContext:
    """What the commands need: settings, clock, queue and the two services."""

    settings: Settings
    clock: Clock
    queue: JobQueue
    services: RequestService
    records: RecordService | None
    surface: Surface  # where the commands come from (the audit trail and the link codes name it)


async def handle(ctx: TextContext, actor: Actor, external_id: str, text: str) -> str:
    """One message from a person: the answer to send back (never raises for a person's mistake)."""
    text = text.strip()
    try:
        if text.startswith(ACTION_PREFIX):
            return await _token(ctx, actor, text.removeprefix(ACTION_PREFIX).strip())
        word, _, rest = text.partition(" ")
        word, rest = word.lower(), rest.strip()
        if word == "/lienket":
            return await _link(ctx, external_id, rest)
        if word in ("/giup", "/help", "/start"):
            return HELP
        if word not in (*DECISIONS, CONFIRM, *ROW_COMMANDS, "/ky", "/danhsach"):
            return HELP
        if actor.staff_id is None:
            await audit_denial(actor, Permission.SIGN_IN, word, surface=ctx.surface, clock=ctx.clock)
            return (f"Tài khoản {ctx.surface.capitalize()} này chưa liên kết với cán bộ nào của trường. "
                    "Gửi /lienket <mã> (mã ở trang "
                    "«Tài khoản» của web console) hoặc /lienket <e-mail của trường>.")
        await _require(ctx, actor, Permission.REQUESTS if word in (*DECISIONS, CONFIRM, *ROW_COMMANDS)
                       else Permission.SIGN_IN, word)
        if word in ROW_COMMANDS:
            return await _row_command(ctx, actor, word, rest)
        if word in DECISIONS:
            return await _decide(ctx, actor, DECISIONS[word], rest)
        if word == CONFIRM:
            number = rest.upper().removeprefix("YC-")
            if not (number.isascii() and number.isdecimal()) or len(number) > 18:
                return f"Cú pháp: {CONFIRM} <số yêu cầu>"
            return "✓ " + (await ctx.services.send_confirmation(int(number), actor)).text
        if word == "/ky":
            return await _sign(ctx, actor, rest)
        return await _todo(ctx, actor, rest)
    except EdudeskError as exc:
        return f"⚠ {exc.in_words(ctx.settings.general.language)}"
    except Exception:  # a bug must still give the person an answer, and not run again on every retry
        log.exception("chat command %r failed", text[:80])
        return "⚠ " + words(ctx.settings.general.language)("cmd.system_error")


async def _require(ctx: TextContext, actor: Actor, permission: Permission, command: str) -> None:
    await require(actor, permission, command, surface=ctx.surface, clock=ctx.clock,
                  language=ctx.settings.general.language)


async def _link(ctx: TextContext, external_id: str, arg: str) -> str:
    if EMAIL.match(arg):
        await mail_link_code(arg, ctx.surface, ctx.settings, ctx.clock, ctx.queue, external_id=external_id)
        return ("Nếu đây là địa chỉ e-mail của một cán bộ nhà trường, mã liên kết đã được gửi tới đó. "
                "Gửi /lienket <mã> khi nhận được thư.")
    if not (arg.isascii() and arg.isdecimal()):
        return "Cú pháp: /lienket <mã 6 số>, hoặc /lienket <e-mail của trường> để nhận mã qua thư."
    staff = await redeem_link_code(ctx.surface, external_id, arg, ctx.clock)
    return f"✓ Đã liên kết tài khoản {ctx.surface.capitalize()} với {staff.name}. Từ nay thông báo sẽ được gửi tới đây."


async def _decide(ctx: TextContext, actor: Actor, action: Action, rest: str) -> str:
    number, _, reason = rest.partition(" ")
    number = number.upper().removeprefix("YC-")
    if not (number.isascii() and number.isdecimal()) or len(number) > 18:
        return f"Cú pháp: /{_command(action)} <số yêu cầu>" + (" <lý do>" if action in (Action.REJECT,
                                                                                       Action.ASK_INFO) else "")
    w = words(ctx.settings.general.language)
    confirmed = action is Action.APPROVE and reason.strip().lower() in CONFIRMED
    try:
        request = await ctx.services.act(int(number), action, actor, reason="" if confirmed else reason.strip(),
                                         confirmed=confirmed)
    except ConfirmNeeded as ask:  # "Hợp lệ" over a ✗: named here (a private chat), confirmed by a second command
        lang = "en" if ctx.settings.general.language == "en" else "vi"
        return "\n".join(["⚠ " + ask.in_words(lang), w("cmd.confirm_with", id=ask.request_id)])
    return "✓ " + w("cmd.recorded", id=request.id, action=w.label("action", action))


async def _row_command(ctx: TextContext, actor: Actor, word: str, rest: str) -> str:
    """/duyetdong <YC> <dòng>: approve a row held back; /giulai <YC> [dòng]: keep an account waiting for deletion."""
    w = words(ctx.settings.general.language)
    number, _, row = rest.partition(" ")
    number, row = number.upper().removeprefix("YC-"), row.strip()
    keep = word == "/giulai"
    if not (number.isascii() and number.isdecimal() and len(number) <= 18) or (
            row and not (row.isascii() and row.isdecimal() and len(row) <= 6)) or (not row and not keep):
        return w("cmd.row_syntax", command=word.lstrip("/"))
    if keep:
        request = await ctx.services.rows.keep_account(int(number), int(row) if row else None, actor)
        return w("cmd.kept", id=request.id, row=row or 1)
    request = await ctx.services.rows.approve_row(int(number), int(row), actor)
    return w("cmd.row_approved", id=request.id, row=int(row))


def _command(action: Action) -> str:
    return next(k for k, v in DECISIONS.items() if v == action).lstrip("/")


async def my_turns(actor: Actor) -> list[tuple[SchoolClass, int, int]]:
    """The teacher's open turns not being signed: (class, stage, records), by class name."""
    return [(t.klass, t.stage, t.open) for t in await turns_of(actor) if t.open]


async def _sign(ctx: TextContext, actor: Actor, arg: str) -> str:
    if ctx.records is None:
        return "Chức năng học bạ số chưa được bật."
    turns = await my_turns(actor)
    if arg:
        turns = [t for t in turns if t[0].name.lower() == arg.lower()]
    if not turns:
        return "Không có học bạ nào đang chờ Thầy/Cô ký" + (f" ở lớp {arg}." if arg else ".")
    if len(turns) > 1:
        lines = ["Thầy/Cô có học bạ chờ ký ở nhiều lớp; gửi /ky <lớp>:"]
        lines += [f"• /ky {k.name} — {n} học bạ" for k, _, n in turns]
        return "\n".join(lines)
    klass, stage, count = turns[0]
    session = await ctx.records.start_signing(actor, klass.id, stage)
    return words(ctx.settings.general.language)("cmd.signing", n=len(session.steps), klass=klass.name)


async def _todo(ctx: TextContext, actor: Actor, arg: str = "") -> str:
    """The person's own signing turns and, for request roles, a page of the open requests (overdue first)."""
    lines = []
    w = words(ctx.settings.general.language)
    for klass, stage, count in await my_turns(actor):
        teacher = await Teacher.get(staff_id=actor.staff_id)
        role = await role_text(teacher.id, klass.id, stage, ctx.settings.general.language)
        lines.append("- " + w("cmd.todo_records", klass=klass.name, role=role, count=count))
    if allows(actor, Permission.REQUESTS):
        tz = ctx.settings.general.timezone
        page = int(arg) if arg.isascii() and arg.isdecimal() and len(arg) < 6 else 1
        result = await request_queue(OPEN, page=page, per_page=TODO_PAGE)
        for r in result.requests:
            due = ", " + w("cmd.todo_due", when=local_time(r.deadline, tz)) if r.deadline else ""
            late = f"[{w('cmd.overdue')}] " if r.deadline and _aware(r.deadline) < ctx.clock.now() else ""
            lines.append(f"- {late}YC-{r.id} {r.sender_name or r.sender} · {w.label('state', r.state)}{due}")
        if result.page < result.pages:
            lines.append(w("cmd.todo_more", page=result.page, pages=result.pages,
                           left=result.total - result.page * TODO_PAGE, next=result.page + 1))
    return "\n".join([w("cmd.todo_title"), *lines]) if lines else w("cmd.todo_none")


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _token(ctx: TextContext, actor: Actor, token: str) -> str:
    """An OA button's payload: the token must be the sender's own."""
    grant = await redeem_action(token, ctx.clock, actor=actor.label, staff_id=actor.staff_id or -1)
    return await perform(ctx, actor, grant)


async def perform(ctx: TextContext, actor: Actor, grant: Grant, reason: str = "") -> str:
    """Carry out a redeemed grant as the actor (whose roles the services check again)."""
    if grant.action is ButtonAction.REC_SIGN:
        if ctx.records is None:
            return words(ctx.settings.general.language)("cmd.records_off")
        session = await ctx.records.start_signing(actor, grant.target, grant.arg)
        return words(ctx.settings.general.language)("cmd.signing_n", n=len(session.steps))
    if grant.action is ButtonAction.SEND_CONFIRM:
        return "✓ " + (await ctx.services.send_confirmation(grant.target, actor, grant.version)).text
    if grant.action is ButtonAction.KEEP_ACCOUNT:
        await ctx.services.rows.keep_account(grant.target, grant.arg + 1, actor, grant.version)
        return words(ctx.settings.general.language)("cmd.kept", id=grant.target, row=grant.arg + 1)
    if grant.action is ButtonAction.APPROVE_CONFIRM:
        request = await ctx.services.act(grant.target, Action.APPROVE, actor, version=grant.version, confirmed=True)
        w = words(ctx.settings.general.language)
        return "✓ " + w("cmd.recorded", id=request.id, action=w.label("action", Action.APPROVE))
    action = Action(grant.action)
    request = await ctx.services.act(grant.target, action, actor, reason=reason, version=grant.version)
    w = words(ctx.settings.general.language)
    return "✓ " + w("cmd.recorded", id=request.id, action=w.label("action", action))

