"""Bot API wire details for the fake Telegram: errors, parameters, HTML parse mode, reply markup checks."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_TEXT = 4096
MAX_CALLBACK_DATA_BYTES = 64
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_TAG_ENTITY = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "tg-spoiler": "spoiler",
    "span": "spoiler", "a": "text_link", "code": "code", "pre": "pre", "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}  # fmt: skip
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_INLINE_ACTIONS = (
    "callback_data", "url", "login_url", "switch_inline_query", "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat", "copy_text", "callback_game", "pay", "web_app",
)  # fmt: skip
_URL = re.compile(r"^(https?|tg)://\S+$", re.IGNORECASE)


class ApiError(Exception):
    """A Bot API error answer: HTTP status = error_code, the description, optional parameters."""

    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        """The JSON body Telegram answers with."""
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(message: str) -> ApiError:
    """A 400 error with Telegram's "Bad Request: " prefix."""
    return ApiError(400, f"Bad Request: {message}")


def u16(text: str) -> int:
    """Length of text in UTF-16 code units (how Telegram counts entity offsets)."""
    return len(text.encode("utf-16-le")) // 2


def chat_type_for(chat_id: int) -> str:
    """Telegram's chat type for an id: positive private, -100... supergroup, other negative group."""
    if chat_id > 0:
        return "private"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


class Params(dict[str, Any]):
    """Request parameters: strings from forms (aiogram JSON-encodes non-string values) or typed JSON values."""

    def text(self, name: str) -> str | None:
        """A string parameter, None when absent."""
        value = self.get(name)
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value)

    def integer(self, name: str, default: int | None = None) -> int | None:
        """An integer parameter, 400 when it is not one."""
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def number(self, name: str, default: float) -> float:
        """A numeric parameter (getUpdates timeout may be fractional in this fake)."""
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad_request(f"invalid {name} specified") from None

    def flag(self, name: str) -> bool:
        """A Boolean parameter ("true"/"1" in forms)."""
        value = self.get(name)
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1")
        return bool(value)

    def obj(self, name: str) -> Any:
        """A JSON-serialized parameter (reply_markup, allowed_updates, ...), decoded; None when absent."""
        value = self.get(name)
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {name} JSON object") from None

    def chat_id(self) -> int:
        """The chat_id parameter; only numeric ids are known to the fake."""
        value = self.get("chat_id")
        if value is None or value == "":
            raise bad_request("chat_id is empty")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None


def _decode_entity(text: str, i: int) -> tuple[str | None, int]:
    end = text.find(";", i + 1, i + 12)
    if end < 0:
        return None, i
    name = text[i + 1 : end]
    if name in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[name], end + 1
    try:
        if name[:2].lower() == "#x":
            return chr(int(name[2:], 16)), end + 1
        if name[:1] == "#":
            return chr(int(name[1:])), end + 1
    except (ValueError, OverflowError):
        pass
    return None, i


def _unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        decoded, end = _decode_entity(value, i) if value[i] == "&" else (None, i)
        if decoded is None:
            out.append(value[i])
            i += 1
        else:
            out.append(decoded)
            i = end
    return "".join(out)


class _HtmlParser:
    """Telegram's HTML parse mode as tdlib implements it: allowed tags only, strictly nested."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.out: list[str] = []
        self.pos16 = 0
        self.stack: list[tuple[str, int, dict[str, str], int]] = []
        self.entities: list[dict[str, Any]] = []

    def fail(self, message: str) -> ApiError:
        return bad_request(f"can't parse entities: {message}")

    def off(self, pos: int) -> int:
        return len(self.text[:pos].encode("utf-8"))

    def emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.pos16 += u16(chunk)

    def skip_spaces(self) -> None:
        while self.i < len(self.text) and self.text[self.i].isspace():
            self.i += 1

    def word(self, stop: str) -> str:
        start = self.i
        while self.i < len(self.text) and not self.text[self.i].isspace() and self.text[self.i] not in stop:
            self.i += 1
        return self.text[start : self.i].lower()

    def run(self) -> tuple[str, list[dict[str, Any]]]:
        text = self.text
        while self.i < len(text):
            char = text[self.i]
            if char == "&":
                decoded, end = _decode_entity(text, self.i)
                if decoded is not None:
                    self.emit(decoded)
                    self.i = end
                    continue
            if char != "<":
                self.emit(char)
                self.i += 1
                continue
            begin = self.i
            self.i += 1
            if self.i < len(text) and text[self.i] == "/":
                self.end_tag(begin)
            else:
                self.start_tag(begin)
        if self.stack:
            raise self.fail(f'Can\'t find end tag corresponding to start tag "{self.stack[-1][0]}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return "".join(self.out), self.entities

    def start_tag(self, begin: int) -> None:
        name = self.word(">")
        if self.i >= len(self.text):
            raise self.fail(f"Unclosed start tag at byte offset {self.off(begin)}")
        if name not in _TAG_ENTITY:
            raise self.fail(f'Unsupported start tag "{name}" at byte offset {self.off(begin)}')
        attrs: dict[str, str] = {}
        while True:
            self.skip_spaces()
            if self.i >= len(self.text):
                raise self.fail(f"Unclosed start tag at byte offset {self.off(begin)}")
            if self.text[self.i] == ">":
                self.i += 1
                break
            attr = self.word("=>")
            self.skip_spaces()
            if self.i < len(self.text) and self.text[self.i] != "=" and name == "blockquote" and attr == "expandable":
                attrs[attr] = ""
                continue
            if self.i >= len(self.text) or self.text[self.i] != "=":
                where = f'the tag "{name}" at byte offset {self.off(begin)}'
                raise self.fail(f"Expected equal sign in declaration of an attribute of {where}")
            self.i += 1
            self.skip_spaces()
            attrs[attr] = self.attr_value(begin)
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise self.fail(f'Tag "span" must have class "tg-spoiler" at byte offset {self.off(begin)}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise bad_request("can't parse entities: Invalid custom emoji identifier specified")
        self.stack.append((name, self.pos16, attrs, begin))

    def attr_value(self, begin: int) -> str:
        text = self.text
        if self.i >= len(text):
            raise self.fail(f"Unclosed start tag at byte offset {self.off(begin)}")
        quote = text[self.i]
        if quote in "'\"":
            end = text.find(quote, self.i + 1)
            if end < 0:
                raise self.fail(f"Unclosed start tag at byte offset {self.off(begin)}")
            value = _unescape(text[self.i + 1 : end])
            self.i = end + 1
            return value
        start = self.i
        while self.i < len(text) and (text[self.i].isalnum() or text[self.i] in ".-"):
            self.i += 1
        if self.i == start:
            raise self.fail(f"Unexpected end of name token at byte offset {self.off(self.i)}")
        return text[start : self.i]

    def end_tag(self, begin: int) -> None:
        if not self.stack:
            raise self.fail(f"Unexpected end tag at byte offset {self.off(begin)}")
        self.i += 1
        end_name = self.word(">")
        self.skip_spaces()
        if self.i >= len(self.text) or self.text[self.i] != ">":
            raise self.fail(f"Unclosed end tag at byte offset {self.off(begin)}")
        self.i += 1
        name, start, attrs, _ = self.stack.pop()
        if end_name and end_name != name:
            raise self.fail(
                f'Unmatched end tag at byte offset {self.off(begin)}, expected "</{name}>", found "</{end_name}>"'
            )
        length = self.pos16 - start
        language = attrs.get("class", "")[len("language-") :] if attrs.get("class", "").startswith("language-") else ""
        if name == "code" and language and self.stack and self.stack[-1][0] == "pre":
            self.stack[-1][2]["language"] = language
            return
        if length <= 0:
            return
        entity: dict[str, Any] = {"type": _TAG_ENTITY[name], "offset": start, "length": length}
        if name == "a":
            if not attrs.get("href"):
                return
            entity["url"] = attrs["href"]
        elif name == "pre" and attrs.get("language"):
            entity["language"] = attrs["language"]
        elif name == "blockquote" and "expandable" in attrs:
            entity["type"] = "expandable_blockquote"
        elif name == "tg-emoji":
            entity["custom_emoji_id"] = attrs["emoji-id"]
        self.entities.append(entity)


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities of an HTML parse-mode text; 400 "can't parse entities" like Telegram."""
    return _HtmlParser(text).run()


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    stripped = text.strip()
    lead16 = u16(text[: len(text) - len(text.lstrip())])
    total16 = u16(stripped)
    kept = []
    for entity in entities:
        start = max(0, entity["offset"] - lead16)
        end = min(total16, entity["offset"] - lead16 + entity["length"])
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


def message_text(params: Params, name: str = "text") -> tuple[str, list[dict[str, Any]]]:
    """The text a message will show and its entities, checked like sendMessage / editMessageText."""
    raw = params.text(name) or ""
    parse_mode = params.text("parse_mode")
    if parse_mode and parse_mode.lower() not in ("html", "markdown", "markdownv2"):
        raise bad_request("unsupported parse_mode")
    entities = params.obj("entities") or []
    if parse_mode and parse_mode.lower() == "html":
        plain, entities = parse_html(raw)
    else:
        plain = raw
    plain, entities = _trim(plain, entities)
    if not plain:
        raise bad_request("message text is empty")
    if len(plain) > MAX_TEXT:
        raise bad_request("message is too long")
    return plain, entities


def command_entities(text: str) -> list[dict[str, Any]]:
    """The bot_command entity Telegram adds to a text that starts with "/"."""
    match = re.match(r"/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{3,64})?", text)
    return [{"type": "bot_command", "offset": 0, "length": u16(match.group(0))}] if match else []


def _check_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise bad_request("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    if not isinstance(button.get("text"), str):
        raise bad_request('can\'t parse inline keyboard button: Field "text" must be of type String')
    actions = [key for key in _INLINE_ACTIONS if key in button]
    if not actions:
        raise bad_request("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
    if len(actions) > 1:
        raise bad_request("can't parse inline keyboard button: exactly one of the optional fields must be used")
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
            raise bad_request("BUTTON_DATA_INVALID")
    if "url" in button and not (isinstance(button["url"], str) and _URL.match(button["url"])):
        raise bad_request("BUTTON_URL_INVALID")


def reply_markup(params: Params, *, inline_only: bool = False) -> dict[str, Any] | None:
    """The decoded, checked reply_markup parameter (None when absent)."""
    markup = params.obj("reply_markup")
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        for row in rows:
            for button in row:
                _check_button(button)
        if sum(len(row) for row in rows) > 100:
            raise bad_request("reply markup is too long")
        return {"inline_keyboard": rows}
    if inline_only:
        raise bad_request("inline keyboard expected")
    if markup.get("force_reply") is True or markup.get("remove_keyboard") is True or "keyboard" in markup:
        return markup
    raise bad_request("can't parse reply keyboard markup JSON object")
