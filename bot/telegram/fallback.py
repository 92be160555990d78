"""The catch-all router, registered last: unknown buttons (forged or from an old version) and stray messages."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from bot.telegram.context import BotContext
from core.models import AuditEvent
from core.staff import Actor
from core.text import printable


async def on_unknown_button(cb: CallbackQuery, edudesk: BotContext, actor: Actor) -> None:
    """A button payload no router understood: answered clearly, audited, nothing changes."""
    await AuditEvent.create(at=edudesk.clock.now(), actor=actor.label if actor else "unknown",
                            action="action_refused",
                            detail={"reason": "bad_callback", "data": printable(cb.data or "", 64)})
    await cb.answer("Nút này không hợp lệ hoặc đã cũ.", show_alert=True)


async def on_other(message: Message, edudesk: BotContext) -> None:
    """Anything else in a private chat: point to /help."""
    await edudesk.chat.send_text(message.chat.id, "Gõ /help để xem các lệnh.")


def make_router() -> Router:
    """A fresh router with this module's handlers (a router attaches to one dispatcher only)."""
    r = Router(name="fallback")
    r.callback_query.register(on_unknown_button)
    r.message.register(on_other, F.chat.type == "private")
    return r
