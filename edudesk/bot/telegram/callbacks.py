"""Inline button payloads: ids only, packed by aiogram's CallbackData (at most 64 bytes, checked there)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from edudesk.core.chats.actions import RECORD_ACTIONS as RECORD_ACTIONS
from edudesk.core.chats.actions import ButtonAction
from edudesk.core.ports import Card

TapAction = ButtonAction  # every button a card can carry; a payload naming anything else is refused


class Tap(CallbackData, prefix="t"):
    """A tap on a card button: action, request id, the request version the card showed, an argument."""

    a: TapAction
    r: int
    v: int = 0
    x: int = 0


def keyboard(card: Card) -> InlineKeyboardMarkup | None:
    """The inline keyboard of a card (None when it has no buttons)."""
    rows = []
    for row in card.buttons:
        buttons = []
        for b in row:
            if b.url:
                buttons.append(InlineKeyboardButton(text=b.label, url=b.url))
            else:
                data = Tap(a=b.action, r=b.request_id, v=b.version, x=b.arg).pack()
                buttons.append(InlineKeyboardButton(text=b.label, callback_data=data))
        if buttons:
            rows.append(buttons)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
