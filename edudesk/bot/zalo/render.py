"""Cards for Zalo, which shows plain text of at most 2,000 characters and has no inline buttons.

Each button becomes what the platform can do instead: a command to type (`/duyet 12`), a one-time link to
the web console when it has a public address (bound to the person the card goes to), and on the OA API a
hidden query button whose payload is a one-time action token. A card too long for one message keeps its
first lines and every action, and says where the rest is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edudesk.core.chats.actions import ButtonAction
from edudesk.core.chats.surfaces import Surface
from edudesk.core.chats.text import plain
from edudesk.core.config import Settings
from edudesk.core.people.chatlinks import ACTION_PREFIX, issue_action
from edudesk.core.ports import Card, Clock
from edudesk.core.signing.models import SchoolClass

LIMIT = 2000  # Zalo: text of 1-2,000 characters
# One tap does it all; reject and ask need a typed text.
TOKEN_ACTIONS = frozenset({ButtonAction.APPROVE, ButtonAction.PROVISION, ButtonAction.REC_SIGN,
                           ButtonAction.SEND_CONFIRM})


@dataclass
class ZaloCard:
    """A card as Zalo gets it: text, and (OA only) up to five buttons (title, payload)."""

    text: str
    buttons: list[tuple[str, str]] = field(default_factory=list)


async def render(card: Card, settings: Settings, clock: Clock, *, staff_id: int | None, surface: Surface,
                 oa: bool = False) -> ZaloCard:
    """The Zalo form of a card for one person (their own one-time links and tokens)."""
    actions: list[str] = []
    buttons: list[tuple[str, str]] = []
    link_base = settings.web_url if settings.web.public_url else ""
    for button in (b for row in card.buttons for b in row):
        label = plain(button.label).strip()
        if button.url:
            actions.append(f"{label}: {button.url}")
            continue
        command = await _command(button.action, button.request_id, button.arg)
        if not command:
            continue
        line = f"{label}: gửi {command}"
        if staff_id is not None and button.action in TOKEN_ACTIONS and (link_base or oa):
            token = await issue_action(staff_id, button.action, button.request_id, settings, clock, surface=surface,
                                       version=button.version, arg=button.arg)
            if oa and len(buttons) < 5:
                buttons.append((label[:100], f"{ACTION_PREFIX}{token}"))
            if link_base:
                line += f" hoặc mở {link_base}/a/{token}"
        actions.append(line)
    body = plain(card.text).strip()
    tail = "\n".join(dict.fromkeys(actions))
    return ZaloCard(fit(body, tail, link_base), buttons)


async def _command(action: ButtonAction, target: int, arg: int) -> str:
    if action is ButtonAction.APPROVE:
        return f"/duyet {target}"
    if action in (ButtonAction.REJECT, ButtonAction.PICK_REJECT, ButtonAction.TYPE_REJECT):
        return f"/tuchoi {target} <lý do>"
    if action in (ButtonAction.ASK_INFO, ButtonAction.PICK_ASK_INFO, ButtonAction.TYPE_ASK_INFO):
        return f"/bosung {target} <nội dung>"
    if action is ButtonAction.PROVISION:
        return f"/capphat {target}"
    if action is ButtonAction.SEND_CONFIRM:
        return f"/xacnhan {target}"
    if action is ButtonAction.REC_SIGN:
        klass = await SchoolClass.get_or_none(id=target)
        return f"/ky {klass.name}" if klass is not None else "/ky"
    return ""  # pages, pickers, reassigning: in the web console


def fit(body: str, tail: str, link_base: str) -> str:
    """Body and actions in at most LIMIT characters: the actions always whole, the body cut at a line."""
    joined = f"{body}\n\n{tail}" if tail else body
    if len(joined) <= LIMIT:
        return joined
    more = f"\n… (còn nữa: xem trên web console{' ' + link_base if link_base else ''})"
    room = LIMIT - len(tail) - len(more) - 2
    if room < 100:  # absurd numbers of actions: cut them too
        tail, room = tail[: LIMIT // 2], LIMIT - LIMIT // 2 - len(more) - 2
    cut = body[:room]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    return f"{cut}{more}\n\n{tail}"[:LIMIT]


def split(text: str, limit: int = LIMIT) -> list[str]:
    """Text in parts of at most `limit` characters, cut at line ends where possible."""
    parts, current = [], ""
    for line in text.splitlines() or [""]:
        while len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        if current and len(current) + 1 + len(line) > limit:
            parts.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    return [p for p in [*parts, current] if p.strip()] or ["…"]
