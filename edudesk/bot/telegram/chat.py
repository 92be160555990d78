"""`TelegramChat`: the ChatPort for Telegram — cards as HTML messages with inline keyboards, paced."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from edudesk.bot.telegram.callbacks import keyboard
from edudesk.bot.telegram.pacing import Pacer
from edudesk.core.chats.surfaces import Capabilities, Surface
from edudesk.core.ports import Card, ChatDown, ChatRefused

log = logging.getLogger(__name__)


@contextmanager
def _translated() -> Iterator[None]:
    """Telegram's failures in the core's terms: the whole channel down, or one chat refusing the bot."""
    try:
        yield
    except TelegramForbiddenError as exc:
        raise ChatRefused(exc.message) from exc
    except (TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError) as exc:
        raise ChatDown(f"{type(exc).__name__}: {exc.message}") from exc


class TelegramChat:
    """Posts and edits cards through one bot and one shared pacer."""

    surface = Surface.TELEGRAM
    # Staff groups per audience; inline buttons; edits in place; 4,096 characters; links open in the app.
    capabilities = Capabilities(groups=True, buttons=True, edit_in_place=True, text_limit=4096, links=True)

    def __init__(self, bot: Bot, pacer: Pacer, *, max_wait: float = 2.0) -> None:
        self.bot = bot
        self.pacer = pacer
        self.max_wait = max_wait  # cards and notices wait at most this long for a slot, then their job retries

    async def post_card(self, chat: str, card: Card) -> str:
        """Send a card; returns the message id."""
        with _translated():
            message = await self.pacer.run(chat, lambda: self.bot.send_message(
                chat_id=int(chat), text=card.text, reply_markup=keyboard(card), parse_mode="HTML",
                disable_web_page_preview=True), max_wait=self.max_wait)
        return str(message.message_id)

    async def edit_card(self, chat: str, ref: str, card: Card, *, interactive: bool = False) -> None:
        """Edit a card in place; a card that is already up to date is not an error. `interactive` edits
        (someone is looking at the picker they just opened) wait for their slot however long it takes."""
        max_wait = None if interactive else self.max_wait
        try:
            with _translated():
                await self.pacer.run(chat, lambda: self.bot.edit_message_text(
                    text=card.text, chat_id=int(chat), message_id=int(ref), reply_markup=keyboard(card),
                    parse_mode="HTML", disable_web_page_preview=True), max_wait=max_wait)
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return
            if "message to edit not found" in exc.message:
                log.warning("card %s in chat %s is gone (deleted in the chat?)", ref, chat)
                return
            raise

    async def send_text(self, chat: str | int, text: str, **kwargs: object) -> int:
        """Send a plain message (command answers, prompts); returns the message id."""
        message = await self.pacer.run(chat, lambda: self.bot.send_message(
            chat_id=int(chat), text=text, parse_mode="HTML", disable_web_page_preview=True, **kwargs))  # type: ignore[arg-type]
        return message.message_id
