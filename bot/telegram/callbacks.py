"""Inline button payloads: ids only, packed by aiogram's CallbackData (at most 64 bytes, checked there)."""

from __future__ import annotations

import enum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from core.ports import Card


class TapAction(enum.StrEnum):
    """Every button a card can carry (bot/cards.py); a payload naming anything else is refused."""

    APPROVE = "approve"
    REJECT = "reject"
    ASK_INFO = "ask_info"
    PROVISION = "provision"
    PICK_REJECT = "pick_reject"
    PICK_ASK_INFO = "pick_ask_info"
    TYPE_REJECT = "type_reject"
    TYPE_ASK_INFO = "type_ask_info"
    BACK = "back"
    PAGE = "page"
    REASSIGN_PICK = "reassign_pick"
    REASSIGN = "reassign"
    NOOP = "noop"
    # School records (bot/telegram/records.py): r is a class, a return or a credential id; x a stage.
    REC_SIGN = "rec_sign"
    REC_REMIND = "rec_remind"
    REC_RETURN_OK = "rec_return_ok"
    REC_RETURN_NO = "rec_return_no"
    REC_CONFIRM = "rec_confirm"
    REC_CRED_OK = "rec_cred_ok"
    REC_CRED_NO = "rec_cred_no"
    REC_LIST = "rec_list"
    REC_REPORT = "rec_report"


RECORD_ACTIONS = frozenset(a for a in TapAction if a.value.startswith("rec_"))


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
                data = Tap(a=TapAction(b.action), r=b.request_id, v=b.version, x=b.arg).pack()
                buttons.append(InlineKeyboardButton(text=b.label, callback_data=data))
        if buttons:
            rows.append(buttons)
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
