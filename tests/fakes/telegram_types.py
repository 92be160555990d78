"""Records the fake Telegram keeps: chats and their messages, accepted calls, raw requests, answers, deliveries."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StoredMessage:
    """One message as it stands now in a chat (text after entity parsing; the bot's raw text kept apart)."""

    message_id: int
    chat: dict[str, Any]
    from_user: dict[str, Any]
    date: int
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    reply_markup: dict[str, Any] | None = None
    raw_text: str | None = None
    parse_mode: str | None = None
    edit_date: int | None = None
    reply_to: dict[str, Any] | None = None

    @property
    def edited(self) -> bool:
        """Whether the bot has edited the message."""
        return self.edit_date is not None

    @property
    def from_bot(self) -> bool:
        """Whether the bot sent the message."""
        return bool(self.from_user.get("is_bot"))

    def buttons(self) -> list[dict[str, Any]]:
        """The inline keyboard's buttons, row after row."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [button for row in rows for button in row]

    def to_api(self, *, with_reply: bool = True) -> dict[str, Any]:
        """The Message object as the Bot API serializes it."""
        body: dict[str, Any] = {
            "message_id": self.message_id,
            "from": dict(self.from_user),
            "chat": dict(self.chat),
            "date": self.date,
            "text": self.text,
        }
        if self.entities:
            body["entities"] = copy.deepcopy(self.entities)
        if self.edit_date is not None:
            body["edit_date"] = self.edit_date
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            body["reply_markup"] = copy.deepcopy(self.reply_markup)
        if with_reply and self.reply_to is not None:
            body["reply_to_message"] = copy.deepcopy(self.reply_to)
        return body


@dataclass
class ChatState:
    """A chat the fake knows: its Chat object, its messages by id, the next message id."""

    info: dict[str, Any]
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1
    blocked: bool = False

    @property
    def type(self) -> str:
        """private, group, supergroup or channel."""
        return str(self.info["type"])


@dataclass
class SentCall:
    """One accepted call of the bot that changes something (reads like getUpdates are not kept here)."""

    method: str
    params: dict[str, Any]
    time: float
    chat_id: int | None = None
    message_id: int | None = None
    text: str | None = None
    reply_markup: dict[str, Any] | None = None
    raw_text: str | None = None
    result: Any = None


@dataclass
class RequestRecord:
    """One raw Bot API call as it reached the fake, with the answer given (status = HTTP status)."""

    method: str
    params: dict[str, Any]
    status: int
    response: dict[str, Any]
    time: float
    via: str = "http"
    content_type: str = ""


@dataclass
class CallbackAnswer:
    """The bot's answerCallbackQuery for one injected callback query."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None
    cache_time: int | None
    time: float
    issued_at: float

    @property
    def latency(self) -> float:
        """Seconds between the injection of the callback query and its answer."""
        return self.time - self.issued_at


@dataclass
class IssuedCallback:
    """A callback query the fake has issued (answerable once, within the timeout)."""

    query: dict[str, Any]
    issued_at: float
    answered: bool = False


@dataclass
class WebhookDelivery:
    """One attempt to POST an update to the webhook (status None when the connection failed)."""

    update_id: int
    url: str
    attempt: int
    status: int | None
    error: str | None
    time: float
    secret_token: str | None = None
