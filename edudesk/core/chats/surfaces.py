"""The chat surfaces, what each can do, and where a person's account on each is kept.

Adding a platform adds one `Surface` member and its `ACCOUNTS` entry here; the hub and the link codes
choose by `Capabilities`, never by the platform's name.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final


class Surface(enum.StrEnum):
    """A chat platform staff use; the value is what `ChatCard.surface`, `Staff.notify_via`, `LinkCode.surface`
    and `ActionToken.surface` store. The order is the fallback order of `ChatHub.preferred`."""

    TELEGRAM = "telegram"
    ZALO = "zalo"


# `Staff.notify_via` holds a Surface value or one of these two: notices go by e-mail (not a chat surface),
# or to the first linked chat in Surface order.
NOTIFY_EMAIL: Final = "email"
NOTIFY_ANY: Final = ""
NOTIFY_CHOICES: Final[tuple[str, ...]] = (NOTIFY_ANY, *Surface, NOTIFY_EMAIL)


@dataclass(frozen=True)
class Capabilities:
    """What a chat platform can do; the hub decides who gets what from these alone."""

    groups: bool  # staff groups: an audience is one group chat; without, every chat is one person's
    buttons: bool  # tappable buttons; without, the adapter offers each action as a command or a link
    edit_in_place: bool  # a sent message can be replaced; without, a change goes as a new message
    text_limit: int  # characters of one message
    links: bool  # a message may carry a link (to the web console) people can open


@dataclass(frozen=True)
class AccountField:
    """The `Staff` column holding a person's id on one surface, and how an id the platform sends is stored."""

    column: str
    parse: Callable[[str], str | int]


ACCOUNTS: Final[dict[Surface, AccountField]] = {
    Surface.TELEGRAM: AccountField("telegram_id", int),
    Surface.ZALO: AccountField("zalo_id", str),
}


def surface_of(value: str) -> Surface | None:
    """The surface a stored or typed value names; None for anything else (e-mail, a typo)."""
    try:
        return Surface(value)
    except ValueError:
        return None
