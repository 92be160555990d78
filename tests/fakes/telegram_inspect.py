"""Inspection helpers of the fake Telegram: messages as they stand, accepted calls, texts, waiting."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from tests.fakes.telegram_format import Params
from tests.fakes.telegram_limits import FloodControl
from tests.fakes.telegram_types import ChatState, RequestRecord, SentCall, StoredMessage


class Count429(int):
    """The number of 429 refusals; calling it gives the total, or the count for one chat id."""

    per_chat: Counter[int]

    def __new__(cls, total: int, per_chat: Counter[int]) -> Count429:
        value = super().__new__(cls, total)
        value.per_chat = per_chat
        return value

    def __call__(self, chat_id: int | None = None) -> int:
        """The total, or the refusals for one chat."""
        return int(self) if chat_id is None else self.per_chat[chat_id]


class Inspection:
    """Mixin: what tests read back from the fake (plain Python, no HTTP)."""

    sent: list[SentCall]
    requests_log: list[RequestRecord]
    _chats: dict[int, ChatState]
    _flood: FloodControl
    _webhook: dict[str, Any] | None
    _wait_change: Callable[[float | None], Awaitable[None]]
    api_getmycommands: Callable[[Params], list[dict[str, str]]]

    def messages(self, chat_id: int) -> list[StoredMessage]:
        """The chat's messages as they stand now (deleted ones gone), oldest first."""
        chat = self._chats.get(chat_id)
        return [chat.messages[k] for k in sorted(chat.messages)] if chat else []

    def message(self, chat_id: int, message_id: int) -> StoredMessage | None:
        """One message as it stands now, None when it does not exist (any more)."""
        chat = self._chats.get(chat_id)
        return chat.messages.get(message_id) if chat else None

    def bot_messages(self, chat_id: int) -> list[StoredMessage]:
        """The bot's messages in the chat as they stand now, oldest first."""
        return [m for m in self.messages(chat_id) if m.from_bot]

    def sent_calls(self, method: str | None = None, chat_id: int | None = None) -> list[SentCall]:
        """Accepted calls, optionally of one method (any case) and/or to one chat."""
        return [
            c
            for c in self.sent
            if (method is None or c.method.lower() == method.lower()) and (chat_id is None or c.chat_id == chat_id)
        ]

    def commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[dict[str, str]]:
        """The bot's commands for a scope (default scope when None) and language."""
        return self.api_getmycommands(Params(scope=scope or {"type": "default"}, language_code=language_code))

    @property
    def webhook(self) -> dict[str, Any] | None:
        """The webhook set now (url, secret_token, max_connections), None in polling mode."""
        return dict(self._webhook) if self._webhook else None

    @property
    def count_429(self) -> Count429:
        """How many calls were refused with 429: use as an int, or call it, `count_429(chat_id)` for one chat."""
        return Count429(self._flood.count_429, self._flood.count_429_per_chat)

    @property
    def count_429_per_chat(self) -> Counter[int]:
        """Refusals with 429 by chat id."""
        return self._flood.count_429_per_chat

    def reset_limits(self) -> None:
        """Forget counted sends so the next ones start with empty windows."""
        self._flood.reset()

    def all_texts(self) -> list[str]:
        """Every string the bot sent in any call (accepted or not, JSON fields unpacked; setWebhook excepted)."""
        found: list[str] = [c.text for c in self.sent if c.text]

        def walk(value: Any) -> None:
            if isinstance(value, str):
                found.append(value)
                if value[:1] in "[{":
                    try:
                        walk(json.loads(value))
                    except ValueError:
                        pass
            elif isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)

        for record in self.requests_log:
            if record.method.lower() != "setwebhook":
                walk(record.params)
        return found

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until predicate() is truthy (checked on every change and every 50 ms); returns its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"fake Telegram: condition not met within {timeout} s")
            await self._wait_change(min(remaining, 0.05))
