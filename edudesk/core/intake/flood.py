"""Floods from one outside sender: past a limit per window its mails are parked, not made into requests.

Ten thousand mails from one free-mail address must not become ten thousand requests, cards and audit
rows. Each parked mail keeps its ledger row (`edudesk mail reprocess N` takes it in later); the audit
trail gets one `mail_flood` row per sender and window, however many mails the window parks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from edudesk.core.config import Settings
from edudesk.core.intake.domain import IncomingMail
from edudesk.core.intake.models import InboundMail
from edudesk.core.intake.sender import sender_verification, trusted_institutional
from edudesk.core.models import AuditEvent
from edudesk.core.prepared import Prepared
from edudesk.core.requests.models import Request

FLOOD_OUTCOME = "flood"


def _window_start(settings: Settings, now: datetime) -> datetime:
    return now - timedelta(minutes=settings.outgoing.auto_reply_window_minutes)


def _marker(sender: str) -> str:
    return f"flood:{sender}"


def proved_institutional(mail: IncomingMail, settings: Settings) -> bool:
    """An institution sender whose mail passed DMARC (or DKIM) where it was checked: a From line alone proves
    nothing, and a forged school address must not lift the limit (issue 15 decides which results to trust)."""
    if not trusted_institutional(mail, settings.institution.domains):
        return False
    return sender_verification(mail, settings).verified is True  # aligned DMARC/DKIM pass, trusted header


# Asked for every mail, so built once (core/prepared.py).
_RECENT = Prepared(lambda conn, _shape, sender, since: Request.filter(sender=sender, received_at__gte=since).using_db(
    conn).count())


async def over_limit(mail: IncomingMail, settings: Settings, now: datetime) -> bool:
    """True when a sender not proved to be the school's already has `intake.flood_limit` requests in the
    current window."""
    limit = settings.intake.flood_limit
    if limit <= 0 or not mail.from_addr or proved_institutional(mail, settings):
        return False
    since = _window_start(settings, now)
    return int(await _RECENT.value(Request._choose_db(), (mail.from_addr, since))) >= limit


async def park(conn: BaseDBAsyncClient, mail_id: int, mail: IncomingMail, settings: Settings,
               now: datetime) -> None:
    """Quarantine one flooded mail; the first of its sender's window writes the one audit row."""
    marker = _marker(mail.from_addr)[:2000]
    since = _window_start(settings, now)
    seen = await InboundMail.filter(outcome=FLOOD_OUTCOME, detail=marker, received_at__gte=since).using_db(
        conn).exists()
    await InboundMail.filter(id=mail_id).using_db(conn).update(state="quarantined", outcome=FLOOD_OUTCOME,
                                                              detail=marker)
    if not seen:
        await AuditEvent.create(at=now, actor="system", action="mail_flood", mail_id=mail_id, using_db=conn,
                                detail={"from": mail.from_addr, "limit": settings.intake.flood_limit,
                                        "window_minutes": settings.outgoing.auto_reply_window_minutes})
