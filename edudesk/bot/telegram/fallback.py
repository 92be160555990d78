"""The catch-all router, registered last: unknown buttons (forged or from an old version) and stray messages."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from edudesk.bot.telegram.context import BotContext
from edudesk.core.errors import EdudeskError
from edudesk.core.people.staff import Actor
from edudesk.core.text import printable


async def on_unknown_button(cb: CallbackQuery, edudesk: BotContext, actor: Actor) -> None:
    """A button payload no router understood: answered clearly, audited, nothing changes."""
    error = EdudeskError("Nút này không hợp lệ hoặc đã cũ.", code="bad_callback")
    await edudesk.services.refuse(actor or Actor("unknown", "", frozenset()), "callback", None, error,
                                  data=printable(cb.data or "", 64))
    await cb.answer(error.in_words(edudesk.settings.general.language), show_alert=True)


async def on_other(message: Message, edudesk: BotContext) -> None:
    """Anything else in a private chat: point to /help."""
    await edudesk.chat.send_text(message.chat.id, "Gõ /help để xem các lệnh.")


def make_router() -> Router:
    """A fresh router with this module's handlers (a router attaches to one dispatcher only)."""
    r = Router(name="fallback")
    r.callback_query.register(on_unknown_button)
    r.message.register(on_other, F.chat.type == "private")
    return r
