"""The e-mail fallback of the chats: a card or notice as a mail to one staff member (they chose e-mail, or
their own chat refused the message)."""

from __future__ import annotations

from tortoise.transactions import in_transaction

from edudesk.core.chats.text import plain
from edudesk.core.config import Settings
from edudesk.core.jobs import JobQueue, PermanentJobError
from edudesk.core.people.loginmail import signin_fields
from edudesk.core.people.models import Staff
from edudesk.core.ports import Card, Clock
from edudesk.core.requests.mailqueue import mail_context, queue_mail


async def mail_card(settings: Settings, clock: Clock, queue: JobQueue | None, key: str, staff: Staff, card: Card,
                    surface: str) -> None:
    """Queue `card` as the `chat_notice` mail to `staff` (`surface`: the chat that failed, "" if none)."""
    if not staff.email or queue is None:
        raise PermanentJobError(f"staff:{staff.id} has neither a working chat nor an e-mail address")
    text = plain(card.text).strip()
    links = [b.url for row in card.buttons for b in row if b.url]
    context = {**mail_context(settings, staff.name), "text": text, "link": links[0] if links else "",
               "subject": text.splitlines()[0][:120] if text else "Thông báo", "surface": surface.capitalize(),
               **signin_fields(settings, staff.id, links)}  # a records notice: a sign-in link, made at send time
    async with in_transaction() as conn:
        await queue_mail(conn, queue, clock, settings, key=key[:300],
                         template="chat_notice", recipient=staff.email, context=context)
    queue.wake()
