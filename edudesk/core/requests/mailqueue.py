"""Queue a mail to a requester as a durable job, in the caller's transaction (never doubled)."""

from __future__ import annotations

import secrets
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from edudesk.core.config import Settings
from edudesk.core.jobs import JobKind, JobQueue
from edudesk.core.ports import Clock
from edudesk.core.prepared import Prepared
from edudesk.core.requests.models import OutgoingMail

# Mail to staff, not answers to outside senders: the automatic-reply cap never drops them; they are paced
# (at most NOTICES_PER_MINUTE per recipient, the rest wait their turn), and one that fails is reported.
STAFF_NOTICES = frozenset({"chat_notice", "link_code", "channel_failing", "report_monthly", "login_link"})
NOTICES_PER_MINUTE = 6


def is_staff_notice(template: str) -> bool:
    """Whether a mail template is a notice to staff (paced, never capped as an automatic reply)."""
    return template in STAFF_NOTICES


def outgoing_message_id(key: str, settings: Settings) -> str:
    """A new Message-ID for one outgoing mail, stored with it so a retry re-sends the same message.

    It carries a random part: a reply threads into a request by In-Reply-To, so an ID anyone could
    guess ("edudesk.ack-5@...") would let a stranger attach mail (and forms) to request 5.
    """
    domain = settings.outgoing.from_address.rpartition("@")[2] or "edudesk.invalid"
    safe = "".join(c if c.isalnum() or c in ".-_" else "-" for c in key)
    return f"edudesk.{safe}.{secrets.token_hex(8)}@{domain}"


def mail_context(settings: Settings, requester_name: str = "") -> dict[str, Any]:
    """What every mail template names: the greeting, the institution and the office that signs."""
    inst = settings.institution
    return {"requester_name": requester_name, "institution_name": inst.name,
            "office_name": settings.outgoing.from_name, "office_address": inst.office_address,
            "lang": settings.general.language}


# Asked for every mail queued, so built once (core/prepared.py).
_KNOWN = Prepared(lambda conn, _shape, key: OutgoingMail.filter(key=key).using_db(conn).exists())


async def queue_mail(
    conn: BaseDBAsyncClient,
    queue: JobQueue,
    clock: Clock,
    settings: Settings,
    *,
    key: str,
    template: str,
    recipient: str,
    context: dict[str, Any],
    request_id: int | None = None,
    in_reply_to: str = "",
    references: tuple[str, ...] = (),
    automatic: bool | None = None,
) -> None:
    """Record the mail and enqueue its `send_mail` job; a second call with the same key does nothing.

    `automatic` (capped per recipient as a loop breaker) defaults to True except for staff notices.
    """
    if await _KNOWN.value(conn, (key,)):
        return
    if automatic is None:
        automatic = not is_staff_notice(template)
    message_id = outgoing_message_id(key, settings)
    mail = await OutgoingMail.create(
        key=key, request_id=request_id, template=template, recipient=recipient, message_id=message_id,
        automatic=automatic, created_at=clock.now(), using_db=conn,
    )
    await queue.enqueue(
        JobKind.SEND_MAIL,
        f"send_mail:{mail.id}",
        {"outgoing_id": mail.id, "request_id": request_id, "context": context,
         "in_reply_to": in_reply_to, "references": list(references)},
        connection=conn,
    )
