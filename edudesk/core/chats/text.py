"""Card text without the chat's markup: for platforms without edits (a short update line), for chats with a
text limit (cut at a line, with a link to the whole card), and for the e-mail fallback (plain text)."""

from __future__ import annotations

import html
import re

from edudesk.core.ports import Card
from edudesk.core.words import LANGUAGES, words

LINK = re.compile(r'<a\s+href="([^"]*)"[^>]*>(.*?)</a>', re.S)
TAG = re.compile(r"<[^>]+>")
# The card's state line starts with the catalogue's label for it ("Trạng thái:", "State:").
STATE_PREFIXES = tuple(f"{words(lang)('card.state')}:" for lang in LANGUAGES)
MORE = {"vi": "… (còn nữa: {link})", "en": "… (more: {link})"}  # for the words catalogue (core/words/)


def plain(text: str) -> str:
    """Telegram's HTML subset as plain text: links as "text (address)", tags dropped, entities decoded."""
    text = LINK.sub(lambda m: m.group(2) if m.group(1) in m.group(2) else f"{m.group(2)} ({m.group(1)})", text)
    return html.unescape(TAG.sub("", text.replace("<br>", "\n")))


def update_line(card: Card) -> str:
    """A card's change in a few lines, for a chat that cannot edit the message already sent: the heading, the
    state and the newest event."""
    lines = [line for line in plain(card.text).splitlines() if line.strip()]
    if not lines:
        return ""
    state = next((line for line in lines if line.startswith(STATE_PREFIXES)), "")
    return "\n".join(x for x in dict.fromkeys([f"{lines[0]}", state, lines[-1]]) if x)


def cut(text: str, limit: int, link: str = "", lang: str = "vi") -> str:
    """`text` in at most `limit` characters: cut at a line end (a line of the card's HTML is whole, so no tag
    is left open), then "…" and, when `link` is given, where the whole card is."""
    if len(text) <= limit:
        return text
    more = MORE.get(lang, MORE["vi"]).format(link=link) if link else "…"
    room = max(0, limit - len(more) - 1)
    head = text[:room]
    if "\n" in head:
        head = head[: head.rfind("\n")]
    return f"{head}\n{more}"[:limit]
