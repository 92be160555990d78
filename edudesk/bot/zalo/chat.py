"""`ZaloChat`: the `ChatPort` on Zalo, over either API's client (the OA one also shows buttons)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from edudesk.bot.zalo.render import LIMIT, render, split
from edudesk.core.chats.accounts import staff_by_account
from edudesk.core.chats.surfaces import Capabilities, Surface
from edudesk.core.config import Settings
from edudesk.core.jobs import RetryLater
from edudesk.core.models import Job
from edudesk.core.ports import Card, ChatBusy, ChatRefused, Clock

log = logging.getLogger(__name__)
NOT_TEXT = "Bot chỉ đọc tin nhắn chữ. Gửi /giup để xem các lệnh."


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

    surface = Surface.ZALO

    def __init__(self, client: Sender, settings: Settings, clock: Clock, *, oa: bool = False) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        self.oa = oa  # the OA API shows hidden query buttons; the Bot Platform none
        # No groups (each person of a role gets the card in their own chat); no edits; 2,000 characters.
        self.capabilities = Capabilities(groups=False, buttons=oa, edit_in_place=False, text_limit=LIMIT,
                                         links=True)

    async def post_card(self, chat: str, card: Card) -> str:
        """Send a card to one person's chat; returns the message id."""
        staff = await staff_by_account(self.surface, chat)
        zalo = await render(card, self.settings, self.clock, staff_id=staff.id if staff else None,
                            surface=self.surface, oa=self.oa)
        return await self.client.send(chat, zalo.text, zalo.buttons or None)

    async def edit_card(self, chat: str, ref: str, card: Card) -> None:
        """Zalo cannot edit a sent message (`capabilities.edit_in_place` is False): the hub posts instead."""
        raise NotImplementedError("Zalo cannot edit a sent message")


async def answer_event(job: Job, chat: ZaloChat, run: Callable[[], Awaitable[str]]) -> None:
    """Run a person's command once and send its answer, part by part: the answer and the parts sent are kept in
    the job, so a retry after a failed send (Zalo down, busy) sends what is left and never runs the command
    again (a second /lienket would burn the code, a second #a token would look like a replay)."""
    payload = dict(job.payload)
    if "answer" not in payload:
        payload["answer"], payload["parts_sent"] = await run(), 0
        await Job.filter(id=job.id).update(payload=payload)
    parts = split(str(payload["answer"]))
    for n in range(int(payload.get("parts_sent", 0)), len(parts)):
        try:
            await chat.client.send(str(payload["user_id"]), parts[n])
        except ChatRefused as exc:  # they wrote, then blocked the bot: the command ran, the answer cannot go
            log.info("Zalo answer to %s not delivered: %s", payload["user_id"], exc)
            return
        except ChatBusy as exc:
            raise RetryLater(exc.wait) from None
        payload["parts_sent"] = n + 1
        await Job.filter(id=job.id).update(payload=payload)
