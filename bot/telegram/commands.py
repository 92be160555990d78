"""Commands: /start /help /whoami /queue /find /report /login.

All but /help and /whoami ask core/people/access.py first."""

from __future__ import annotations

import html

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from bot.cards import KIND_LABELS, STATE_LABELS
from bot.telegram.context import BotContext
from core.errors import EdudeskError
from core.models import Request
from core.people.access import Permission, require
from core.people.staff import ROLE_LABELS, Actor, staff_for_telegram
from core.requests.queries import request_by_number, request_queue
from core.requests.reports import counts, day_and_month_start, find_requests
from core.requests.workflow import OPEN_STATES
from core.text import local_time

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
        await ctx.chat.send_text(message.chat.id, html.escape(exc.message))
        return False
    return True


def _line(r: Request, ctx: BotContext) -> str:
    lang = "en" if ctx.settings.general.language == "en" else "vi"
    now = ctx.clock.now()
    due = ""
    if r.deadline is not None:
        mark = "⏰ " if r.deadline < now else ""
        due = f" · {mark}hạn {local_time(r.deadline, ctx.settings.general.timezone)}"
    kind = KIND_LABELS[lang].get(r.kind, r.kind)
    return (f"<b>YC-{r.id}</b> {html.escape(kind)} · {STATE_LABELS[lang].get(r.state, r.state)}{due}\n"
            f"   {html.escape(r.sender_name or r.sender)}")


async def on_help(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """Greeting and the list of commands."""
    await edudesk.chat.send_text(message.chat.id, HELP)


async def on_whoami(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """Who the bot thinks the person is, and their roles."""
    roles = ", ".join(ROLE_LABELS[r] for r in sorted(actor.roles, key=lambda r: r.value)) or "chưa có vai trò"
    await edudesk.chat.send_text(message.chat.id, f"{html.escape(actor.name)} · <code>{actor.key}</code>\n"
                                                  f"Vai trò: {roles}")


async def on_queue(message: Message, command: CommandObject, edudesk: BotContext, actor: Actor) -> None:
    """Open requests, overdue and oldest first, a page at a time (/queue 2 for the next)."""
    if not await _allowed(message, edudesk, actor, Permission.REQUESTS, "queue"):
        return
    arg = (command.args or "").strip()
    page = int(arg) if arg.isascii() and arg.isdecimal() and len(arg) < 6 else 1
    result = await request_queue(OPEN, page=page, per_page=QUEUE_PAGE)
    if not result.requests:
        await edudesk.chat.send_text(message.chat.id, "<b>Yêu cầu đang mở</b>\nKhông có yêu cầu nào đang mở. 🎉")
        return
    lines = [f"<b>Yêu cầu đang mở</b> ({result.total}, quá hạn và cũ nhất trước)",
             *(_line(r, edudesk) for r in result.requests)]
    if result.pages > 1:
        lines.append(f"Trang {result.page}/{result.pages}"
                     + (f" · gửi /queue {result.page + 1} để xem tiếp" if result.page < result.pages else ""))
    await edudesk.chat.send_text(message.chat.id, "\n".join(lines))


async def on_find(message: Message, command: CommandObject, edudesk: BotContext, actor: Actor) -> None:
    """Find requests by number, person ID or name."""
    if not await _allowed(message, edudesk, actor, Permission.REQUESTS, "find"):
        return
    term = (command.args or "").strip()
    if not term:
        await edudesk.chat.send_text(message.chat.id, "Cú pháp: /find &lt;số yêu cầu | họ tên | mã số&gt;")
        return
    exact = await request_by_number(term)  # a number finds its request whatever its state or age
    rows = ([exact] if exact else []) + [r for r in await find_requests(term) if not exact or r.id != exact.id]
    text = "\n".join(_line(r, edudesk) for r in rows) if rows else f"Không tìm thấy «{html.escape(term)}»."
    await edudesk.chat.send_text(message.chat.id, text)


async def on_report(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """Today's and this month's counts."""
    if not await _allowed(message, edudesk, actor, Permission.REQUESTS, "report"):
        return
    now = edudesk.clock.now()
    day, month = day_and_month_start(now, edudesk.settings.general.timezone)
    today, this_month = await counts(day, now), await counts(month, now)
    text = (f"<b>Báo cáo</b> (đến {local_time(now, edudesk.settings.general.timezone)})\n"
            f"Hôm nay: nhận {today.received}, hợp lệ {today.approved}, từ chối {today.rejected}, "
            f"hoàn thành {today.done}\n"
            f"Tháng này: nhận {this_month.received}, hợp lệ {this_month.approved}, từ chối {this_month.rejected}, "
            f"hoàn thành {this_month.done}\n"
            f"Đang mở: {today.open_now}, trong đó quá hạn: {today.overdue_now}")
    await edudesk.chat.send_text(message.chat.id, text)


async def on_login(message: Message, edudesk: BotContext, actor: Actor) -> None:
    """A one-time sign-in link to the web console, sent in a private chat only."""
    if not await _allowed(message, edudesk, actor, Permission.SIGN_IN, "login"):
        return
    if message.chat.type != "private" or message.from_user is None:
        await edudesk.chat.send_text(message.chat.id, "Vì lý do bảo mật, hãy nhắn /login riêng cho bot.")
        return
    from core.people.webauth import issue_login_link

    staff = await staff_for_telegram(message.from_user.id, actor.name, edudesk.clock.now())
    link = await issue_login_link(staff.id, edudesk.settings, edudesk.clock, issued_by=actor.label)
    minutes = int(edudesk.settings.web.login_link_minutes)
    await edudesk.chat.send_text(message.chat.id, f"Liên kết đăng nhập (dùng một lần, hiệu lực {minutes} phút):\n"
                                                  f"{html.escape(link)}")


async def on_link(message: Message, command: CommandObject, edudesk: BotContext, actor: Actor) -> None:
    """/lienket <mã>: link this Telegram account with the code from the web console (or mailed after
    /lienket <e-mail>); the same text commands as on Zalo, so one flow for both."""
    from bot.textcommands import TextContext, handle

    if message.from_user is None or message.chat.type != "private":
        await edudesk.chat.send_text(message.chat.id, "Hãy gửi /lienket trong tin nhắn riêng với bot.")
        return
    context = TextContext(edudesk.settings, edudesk.clock, edudesk.services.queue, edudesk.services,
                          edudesk.records, surface="telegram")
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
