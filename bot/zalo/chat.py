"""`ZaloChat`: the `ChatPort` on Zalo, over either API's client (the OA one also shows buttons)."""

from __future__ import annotations

from typing import Protocol

from bot.zalo.render import render, split, update_line
from core.config import Settings
from core.models import Staff
from core.ports import Card, Clock


class Sender(Protocol):
    """What both clients do: send one message (buttons only on the OA API), and close."""

    async def send(self, chat: str, text: str, buttons: list[tuple[str, str]] | None = None) -> str:
        """Send; the platform's message id."""
        ...

    async def close(self) -> None:
        """Close the HTTP sessions."""
        ...


class ZaloChat:
    """Cards as Zalo messages for one person (their own one-time links and tokens)."""

    surface = "zalo"

    def __init__(self, client: Sender, settings: Settings, clock: Clock, *, oa: bool = False) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.oa = oa  # the OA API shows hidden query buttons; the Bot Platform none

    async def post_card(self, chat: str, card: Card) -> str:
        """Send a card to one person's chat; returns the message id."""
        staff = await Staff.get_or_none(zalo_id=chat)
        zalo = await render(card, self.settings, self.clock, staff_id=staff.id if staff else None,
                            surface=self.surface, oa=self.oa)
        return await self.client.send(chat, zalo.text, zalo.buttons or None)

    async def edit_card(self, chat: str, ref: str, card: Card, *, interactive: bool = False) -> None:
        """Zalo cannot edit a message: a card that still asks something of the person goes again, whole (with
        fresh commands and links); otherwise a short update says what changed."""
        if any(b.action not in ("page", "noop") and not b.url for row in card.buttons for b in row):
            await self.post_card(chat, card)
        elif text := update_line(card):
            await self.send_text(chat, text)

    async def send_text(self, chat: str, text: str) -> None:
        """A plain answer, split at lines into messages of at most 2,000 characters."""
        for part in split(text):
            await self.client.send(chat, part)
