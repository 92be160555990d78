"""People's chat accounts: the `Staff` column of each surface (`ACCOUNTS`), read without naming platforms."""

from __future__ import annotations

from typing import Any

from edudesk.core.chats.surfaces import ACCOUNTS, Surface
from edudesk.core.people.models import Staff


def account(staff: Staff, surface: Surface) -> str:
    """The person's account (chat id) on a surface; "" when not linked."""
    value = getattr(staff, ACCOUNTS[surface].column)
    return str(value) if value else ""


async def staff_by_account(surface: Surface, chat: str) -> Staff | None:
    """Who linked this account on a surface (None for a group chat or an account nobody linked)."""
    field = ACCOUNTS[surface]
    try:
        value = field.parse(chat)
    except ValueError:
        return None
    lookup: dict[str, Any] = {field.column: value}
    return await Staff.get_or_none(**lookup)


async def linked_staff(surface: Surface) -> list[Staff]:
    """The active staff members who linked an account on a surface, oldest first."""
    return await Staff.filter(active=True, **{f"{ACCOUNTS[surface].column}__isnull": False}).order_by("id")
