"""Commands: /start /help /whoami /queue /find /report /login.

All but /help and /whoami ask core/people/access.py first."""

from __future__ import annotations

import html

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from edudesk.bot.telegram.context import BotContext
from edudesk.core.errors import EdudeskError
from edudesk.core.people.access import Permission, require
from edudesk.core.people.staff import Actor, staff_for_telegram
from edudesk.core.requests.models import Request
from edudesk.core.requests.queries import request_by_number, request_queue
from edudesk.core.requests.reports import counts, day_and_month_start, find_requests
from edudesk.core.requests.workflow import OPEN_STATES
from edudesk.core.text import local_time
from edudesk.core.words import words

OPEN = [s.value for s in OPEN_STATES]
QUEUE_PAGE = 20  # lines per /queue message (a Telegram message holds 4,096 characters)

HELP = (
    "<b>edudesk</b> — bàn trợ giúp CNTT\n"
    "/queue [trang] — các yêu cầu đang mở, quá hạn và cũ nhất trước\n"
    "/find &lt;số|tên|mã&gt; — tìm yêu cầu (ví dụ: /find YC-12, /find Nguyễn Văn An)\n"
    "/report — số yêu cầu hôm nay và tháng này\n"
    "/whoami — Anh/Chị là ai và có vai trò gì\n"
    "/login — nhận liên kết đăng nhập trang quản trị (gửi riêng)"
)


async def _allowed(message: Message, ctx: BotContext, actor: Actor, permission: Permission, command: str) -> bool:
    """Whether the person may use the command (core/people/access.py); a refusal is audited and answered."""
    try:
        await require(actor, permission, f"/{command}", surface="telegram", clock=ctx.clock,
                      language=ctx.settings.general.language)
    except EdudeskError as exc:
        await ctx.chat.send_text(message.chat.id, html.escape(exc.in_words(ctx.settings.general.language)))
        return False
    return True


def _line(r: Request, ctx: BotContext) -> str:
    w = words(ctx.settings.general.language)
    now = ctx.clock.now()
    due = ""
    if r.deadline is not None:
        mark = f"<b>{w('cmd.overdue')}</b> · " if r.deadline < now else ""
        due = f" · {mark}{w('cmd.todo_due', when=local_time(r.deadline, ctx.settings.general.timezone))}"
    kind = w.label("kind", r.kind)
    return (f"<b>YC-{r.id}</b> {html.escape(kind)} · {w.label('state', r.state)}{due}\n"
            f"   {html.escape(r.sender_name or r.sender)}")


async def on_help(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """Greeting and the list of commands."""
    await edudesk.chat.send_text(message.chat.id, HELP)


async def on_whoami(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """Who the bot thinks the person is, and their roles."""
    w = words(edudesk.settings.general.language)
    roles = ", ".join(w.label("role", r) for r in sorted(actor.roles, key=lambda r: r.value)) or w("role.none")
    await edudesk.chat.send_text(message.chat.id, f"{html.escape(actor.name)} · <code>{actor.key}</code>\n"
                                                  f"{w('cmd.roles', roles=roles)}")


async def on_queue(message: Message, command: CommandObject, edudesk: BotContext, actor: Actor) -> None:
    """Open requests, overdue and oldest first, a page at a time (/queue 2 for the next)."""
    if not await _allowed(message, edudesk, actor, Permission.REQUESTS, "queue"):
        return
    arg = (command.args or "").strip()
    page = int(arg) if arg.isascii() and arg.isdecimal() and len(arg) < 6 else 1
    result = await request_queue(OPEN, page=page, per_page=QUEUE_PAGE)
    w = words(edudesk.settings.general.language)
    if not result.requests:
        await edudesk.chat.send_text(message.chat.id, f"<b>{w('cmd.queue_title')}</b>\n{w('cmd.queue_none')}")
        return
    lines = [f"<b>{w('cmd.queue_title')}</b> ({w('cmd.queue_count', total=result.total)})",
             *(_line(r, edudesk) for r in result.requests)]
    if result.pages > 1:
        lines.append(w("cmd.queue_page", page=result.page, pages=result.pages)
                     + (" · " + w("cmd.queue_more", next=result.page + 1) if result.page < result.pages else ""))
    await edudesk.chat.send_text(message.chat.id, "\n".join(lines))


async def on_find(message: Message, command: CommandObject, edudesk: BotContext, actor: Actor) -> None:
    """Find requests by number, person ID or name."""
    if not await _allowed(message, edudesk, actor, Permission.REQUESTS, "find"):
        return
    term = (command.args or "").strip()
    if not term:
        await edudesk.chat.send_text(message.chat.id, html.escape(words(edudesk.settings.general.language)(
            "cmd.find_usage")))
        return
    exact = await request_by_number(term)  # a number finds its request whatever its state or age
    rows = ([exact] if exact else []) + [r for r in await find_requests(term) if not exact or r.id != exact.id]
    none = words(edudesk.settings.general.language)("cmd.find_none", term=html.escape(term))
    text = "\n".join(_line(r, edudesk) for r in rows) if rows else none
    await edudesk.chat.send_text(message.chat.id, text)


async def on_report(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """Today's and this month's counts."""
    if not await _allowed(message, edudesk, actor, Permission.REQUESTS, "report"):
        return
    now = edudesk.clock.now()
    day, month = day_and_month_start(now, edudesk.settings.general.timezone)
    today, this_month = await counts(day, now), await counts(month, now)
    text = words(edudesk.settings.general.language)(
        "cmd.report", when=local_time(now, edudesk.settings.general.timezone),
        t_received=today.received, t_approved=today.approved, t_rejected=today.rejected, t_done=today.done,
        m_received=this_month.received, m_approved=this_month.approved, m_rejected=this_month.rejected,
        m_done=this_month.done, open_now=today.open_now, overdue_now=today.overdue_now)
    await edudesk.chat.send_text(message.chat.id, text)


async def on_login(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """A one-time sign-in link to the web console, sent in a private chat only."""
    if not await _allowed(message, edudesk, actor, Permission.SIGN_IN, "login"):
        return
    if message.chat.type != "private" or message.from_user is None:
        await edudesk.chat.send_text(message.chat.id, words(edudesk.settings.general.language)("cmd.login_private"))
        return
    from edudesk.core.people.webauth import issue_login_link

    staff = await staff_for_telegram(message.from_user.id, actor.name, edudesk.clock.now())
    link = await issue_login_link(staff.id, edudesk.settings, edudesk.clock, issued_by=actor.label)
    minutes = int(edudesk.settings.web.login_link_minutes)
    await edudesk.chat.send_text(message.chat.id, f"Liên kết đăng nhập (dùng một lần, hiệu lực {minutes} phút):\n"
                                                  f"{html.escape(link)}")


async def on_link(message: Message, command: CommandObject, edudesk: BotContext, actor: Actor) -> None:
    """/lienket <mã>: link this Telegram account with the code from the web console (or mailed after
    /lienket <e-mail>); the same text commands as on Zalo, so one flow for both."""
    from edudesk.bot.textcommands import TextContext, handle

    if message.from_user is None or message.chat.type != "private":
        await edudesk.chat.send_text(message.chat.id, "Hãy gửi /lienket trong tin nhắn riêng với bot.")
        return
    context = TextContext(edudesk.settings, edudesk.clock, edudesk.services.queue, edudesk.services,
                          edudesk.records, surface=edudesk.chat.surface)
    answer = await handle(context, actor, str(message.from_user.id), f"/lienket {command.args or ''}")
    await edudesk.chat.send_text(message.chat.id, html.escape(answer))


def make_router() -> Router:
    """A fresh router with this module's handlers (a router attaches to one dispatcher only)."""
    r = Router(name="commands")
    r.message.register(on_link, Command("lienket"))
    r.message.register(on_help, CommandStart())
    r.message.register(on_help, Command("help"))
    r.message.register(on_whoami, Command("whoami"))
    r.message.register(on_queue, Command("queue"))
    r.message.register(on_find, Command("find"))
    r.message.register(on_report, Command("report"))
    r.message.register(on_login, Command("login"))
    return r
