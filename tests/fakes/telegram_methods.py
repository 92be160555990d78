"""The Bot API methods of the fake Telegram (everything but getUpdates), as a mixin over its state."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.telegram_format import (
    NOT_MODIFIED,
    ApiError,
    Params,
    bad_request,
    chat_type_for,
    message_text,
    reply_markup,
)
from tests.fakes.telegram_limits import FloodControl
from tests.fakes.telegram_types import CallbackAnswer, ChatState, IssuedCallback, SentCall, StoredMessage

QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice", "upload_document",
    "choose_sticker", "find_location", "record_video_note", "upload_video_note",
}  # fmt: skip
_SECRET = re.compile(r"^[A-Za-z0-9_-]+$")
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")


def _inline(markup: dict[str, Any] | None) -> dict[str, Any] | None:
    """An inline keyboard worth keeping on a message (an empty one removes the keyboard)."""
    if markup and markup.get("inline_keyboard"):
        return markup
    return None


class BotApiMethods:
    """Bot API methods; each api_<lowercase name> takes the call's Params and returns the result or raises."""

    token: str
    bot_user: dict[str, Any]
    strict_chats: bool
    callback_timeout: float | None
    sent: list[SentCall]
    answers: dict[str, CallbackAnswer]
    _clock: Callable[[], float]
    _flood: FloodControl
    _chats: dict[int, ChatState]
    _callbacks: dict[str, IssuedCallback]
    _commands: dict[tuple[str, str], list[dict[str, str]]]
    _webhook: dict[str, Any] | None
    _webhook_error: tuple[int, str] | None
    _pending: list[dict[str, Any]]
    _allowed_updates: list[str] | None

    def _notify(self) -> None:  # pragma: no cover - provided by FakeTelegram
        raise NotImplementedError

    # ---- chats and records -------------------------------------------------------------------------------------

    def _new_chat(
        self, chat_id: int, chat_type: str | None = None, user: dict[str, Any] | None = None, title: str | None = None
    ) -> ChatState:
        """The chat with this id, created when the fake has not seen it yet."""
        if chat_id in self._chats:
            chat = self._chats[chat_id]
            if user and chat.type == "private":
                chat.info.update({k: user[k] for k in ("first_name", "last_name", "username") if user.get(k)})
            return chat
        kind = chat_type or chat_type_for(chat_id)
        info: dict[str, Any] = {"id": chat_id, "type": kind}
        if kind == "private":
            user = user or {}
            info["first_name"] = user.get("first_name") or f"User {chat_id}"
            info.update({k: user[k] for k in ("last_name", "username") if user.get(k)})
        else:
            info["title"] = title or f"Test {kind} {chat_id}"
        self._chats[chat_id] = ChatState(info=info)
        return self._chats[chat_id]

    def _target_chat(self, params: Params) -> ChatState:
        """The chat a sending call addresses (403 when the user blocked the bot)."""
        chat_id = params.chat_id()
        if chat_id not in self._chats and self.strict_chats:
            raise bad_request("chat not found")
        chat = self._new_chat(chat_id)
        if chat.blocked:
            if chat.type == "private":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, "Forbidden: bot was kicked from the group chat")
        return chat

    def _store(self, chat: ChatState, from_user: dict[str, Any], text: str, **fields: Any) -> StoredMessage:
        """Add a message to the chat under the chat's next message id."""
        message = StoredMessage(
            message_id=chat.next_message_id,
            chat=dict(chat.info),
            from_user=dict(from_user),
            date=int(time.time()),
            text=text,
            **fields,
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        return message

    def _record(self, method: str, params: Params, result: Any, **fields: Any) -> Any:
        """Keep an accepted call in `sent` and wake whoever waits on the fake."""
        self.sent.append(SentCall(method=method, params=dict(params), time=self._clock(), result=result, **fields))
        self._notify()
        return result

    def _flood_check(self, chat: ChatState) -> None:
        """429 with retry_after when a message-producing call to this chat would break a limit."""
        retry = self._flood.acquire(int(chat.info["id"]), chat.type)
        if retry:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

    def _editable(self, params: Params) -> tuple[ChatState, StoredMessage]:
        """The chat and bot message an edit call addresses."""
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._chats.get(params.chat_id())
        message_id = params.integer("message_id")
        message = chat.messages.get(message_id) if chat and message_id is not None else None
        if chat is None or message is None:
            raise bad_request("message to edit not found")
        if not message.from_bot:
            raise bad_request("message can't be edited")
        return chat, message

    # ---- methods -----------------------------------------------------------------------------------------------

    def api_getme(self, params: Params) -> dict[str, Any]:
        """getMe: the bot user."""
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def api_sendmessage(self, params: Params) -> dict[str, Any]:
        """sendMessage: text (HTML parse mode checked), inline keyboard or force_reply, replies."""
        chat = self._target_chat(params)
        text, entities = message_text(params)
        markup = reply_markup(params)
        reply_params = params.obj("reply_parameters") or {}
        if not isinstance(reply_params, dict):
            raise bad_request("can't parse reply parameters JSON object")
        reply_id = params.integer("reply_to_message_id") or reply_params.get("message_id")
        reply_to = None
        if reply_id is not None:
            replied = chat.messages.get(int(reply_id))
            if replied is not None:
                reply_to = replied.to_api(with_reply=False)
            elif not (params.flag("allow_sending_without_reply") or reply_params.get("allow_sending_without_reply")):
                raise bad_request("message to be replied not found")
        self._flood_check(chat)
        message = self._store(
            chat,
            self.bot_user,
            text,
            entities=entities,
            reply_markup=_inline(markup),
            raw_text=params.text("text"),
            parse_mode=params.text("parse_mode"),
            reply_to=reply_to,
        )
        result = message.to_api()
        return self._record(
            "sendMessage", params, result, chat_id=chat.info["id"], message_id=message.message_id, text=text,
            reply_markup=markup, raw_text=params.text("text"),
        )  # fmt: skip

    def api_editmessagetext(self, params: Params) -> dict[str, Any]:
        """editMessageText: new text (and keyboard; none given removes it) of a bot message."""
        chat, message = self._editable(params)
        text, entities = message_text(params)
        markup = _inline(reply_markup(params, inline_only=True))
        if (text, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise ApiError(400, NOT_MODIFIED)
        self._flood_check(chat)
        message.text, message.entities, message.reply_markup = text, entities, markup
        message.raw_text, message.parse_mode = params.text("text"), params.text("parse_mode")
        message.edit_date = int(time.time())
        return self._record(
            "editMessageText", params, message.to_api(), chat_id=chat.info["id"], message_id=message.message_id,
            text=text, reply_markup=markup, raw_text=params.text("text"),
        )  # fmt: skip

    def api_editmessagereplymarkup(self, params: Params) -> dict[str, Any]:
        """editMessageReplyMarkup: a bot message's new inline keyboard (none given removes it)."""
        chat, message = self._editable(params)
        markup = _inline(reply_markup(params, inline_only=True))
        if markup == message.reply_markup:
            raise ApiError(400, NOT_MODIFIED)
        self._flood_check(chat)
        message.reply_markup = markup
        message.edit_date = int(time.time())
        return self._record(
            "editMessageReplyMarkup", params, message.to_api(), chat_id=chat.info["id"],
            message_id=message.message_id, text=message.text, reply_markup=markup,
        )  # fmt: skip

    def api_deletemessage(self, params: Params) -> bool:
        """deleteMessage: drops a message from the chat."""
        chat = self._chats.get(params.chat_id())
        message_id = params.integer("message_id")
        if chat is None or message_id not in chat.messages:
            raise bad_request("message to delete not found")
        del chat.messages[message_id]
        return self._record("deleteMessage", params, True, chat_id=chat.info["id"], message_id=message_id)

    def api_answercallbackquery(self, params: Params) -> bool:
        """answerCallbackQuery: once per issued query, within callback_timeout, text up to 200 characters."""
        query_id = params.text("callback_query_id") or ""
        issued = self._callbacks.get(query_id)
        now = self._clock()
        timeout = self.callback_timeout
        too_late = issued is not None and timeout is not None and now - issued.issued_at > timeout
        if issued is None or issued.answered or too_late:
            raise bad_request(QUERY_TOO_OLD)
        text = params.text("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        issued.answered = True
        self.answers[query_id] = CallbackAnswer(
            callback_query_id=query_id, text=text, show_alert=params.flag("show_alert"), url=params.text("url"),
            cache_time=params.integer("cache_time"), time=now, issued_at=issued.issued_at,
        )  # fmt: skip
        message = issued.query.get("message") or {}
        return self._record(
            "answerCallbackQuery", params, True, chat_id=(message.get("chat") or {}).get("id"),
            message_id=message.get("message_id"), text=text,
        )  # fmt: skip

    def _scope_key(self, params: Params) -> tuple[str, str]:
        scope = params.obj("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.text("language_code") or ""

    def api_setmycommands(self, params: Params) -> bool:
        """setMyCommands: up to 100 commands per scope and language."""
        commands = params.obj("commands")
        if not isinstance(commands, list):
            raise bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise bad_request("BOT_COMMANDS_TOO_MUCH")
        kept = []
        for item in commands:
            command = str((item or {}).get("command", "")).lstrip("/")
            description = str((item or {}).get("description", "")).strip()
            if not _COMMAND.match(command):
                raise bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            kept.append({"command": command, "description": description})
        self._commands[self._scope_key(params)] = kept
        return self._record("setMyCommands", params, True)

    def api_deletemycommands(self, params: Params) -> bool:
        """deleteMyCommands: forgets the commands of a scope and language."""
        self._commands.pop(self._scope_key(params), None)
        return self._record("deleteMyCommands", params, True)

    def api_getmycommands(self, params: Params) -> list[dict[str, str]]:
        """getMyCommands: the commands of a scope and language."""
        return [dict(c) for c in self._commands.get(self._scope_key(params), [])]

    def api_sendchataction(self, params: Params) -> bool:
        """sendChatAction: "typing" and the other known actions."""
        chat = self._target_chat(params)
        if params.text("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        return self._record("sendChatAction", params, True, chat_id=chat.info["id"], text=params.text("action"))

    def api_getchat(self, params: Params) -> dict[str, Any]:
        """getChat: a minimal ChatFullInfo of a chat the fake has seen."""
        chat = self._chats.get(params.chat_id())
        if chat is None:
            raise bad_request("chat not found")
        gifts = dict.fromkeys(
            ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription", "gifts_from_channels"), False
        )
        return {**chat.info, "accent_color_id": 0, "max_reaction_count": 11, "accepted_gift_types": gifts}

    def api_setwebhook(self, params: Params) -> bool:
        """setWebhook: url (http allowed here), secret_token, allowed_updates, drop_pending_updates."""
        url = params.text("url") or ""
        if not url:
            return self.api_deletewebhook(params)
        if not re.match(r"^https?://[^/\s]+", url):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.text("secret_token")
        if secret is not None:
            if len(secret) > 256:
                raise bad_request("secret token is too long")
            if not _SECRET.match(secret):
                raise bad_request("secret token contains unallowed characters")
        max_connections = params.integer("max_connections", 40) or 40
        if not 1 <= max_connections <= 100:
            raise bad_request("bad webhook: max_connections must be between 1 and 100")
        allowed = params.obj("allowed_updates")
        if allowed is not None:
            self._allowed_updates = list(allowed)
        if params.flag("drop_pending_updates"):
            self._pending.clear()
        self._webhook = {"url": url, "secret_token": secret, "max_connections": max_connections}
        self._webhook_error = None
        return self._record("setWebhook", params, True)

    def api_deletewebhook(self, params: Params) -> bool:
        """deleteWebhook: back to getUpdates; drop_pending_updates forgets the queue."""
        if params.flag("drop_pending_updates"):
            self._pending.clear()
        self._webhook = None
        return self._record("deleteWebhook", params, True)

    def api_getwebhookinfo(self, params: Params) -> dict[str, Any]:
        """getWebhookInfo: url, pending count, the last delivery error."""
        info: dict[str, Any] = {
            "url": (self._webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self._webhook:
            info.update(max_connections=self._webhook["max_connections"], ip_address="127.0.0.1")
        if self._allowed_updates is not None:
            info["allowed_updates"] = list(self._allowed_updates)
        if self._webhook_error:
            info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info
