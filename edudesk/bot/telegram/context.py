"""What every Telegram handler gets: settings, clock, the services, the paced chat, and the actor middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User

from edudesk.bot.telegram.chat import TelegramChat
from edudesk.core.config import Settings
from edudesk.core.people.staff import actor_for_telegram
from edudesk.core.ports import Clock
from edudesk.core.requests.service import RequestService
from edudesk.core.signing.service import RecordService


@dataclass
class BotContext:
    """Injected into handlers as `edudesk` (aiogram workflow data)."""

    settings: Settings
    clock: Clock
    services: RequestService
    chat: TelegramChat
    records: RecordService | None = None


class ActorMiddleware(BaseMiddleware):
    """Resolves the Telegram user into an `Actor` (roles from config and the staff table) as `actor`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
                       event: TelegramObject, data: dict[str, Any]) -> Any:
        """Add `actor` to the handler data (None for updates without a user)."""
        user: User | None = data.get("event_from_user")
        data["actor"] = await actor_for_telegram(user.id, user.full_name, self.settings) if user else None
        return await handler(event, data)
