"""Sign-in by mail: a person types their institutional address and gets a one-time sign-in link by mail.

Whatever the address (a staff member's, a stranger's, outside the institution, over the limit) the caller gets
nothing back, so the page answers the same; the database work is the same for every address and the mail is
queued, never sent here. The link itself is made when the mail is sent (`mint_signin_link`, called by the
mail delivery), so no job payload, row or log line ever holds a token.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from tortoise.transactions import in_transaction

from edudesk.core.config import Settings
from edudesk.core.db import lock_for_transaction
from edudesk.core.errors import NotFound
from edudesk.core.intake.sender import is_institutional, sender_domain
from edudesk.core.jobs import JobQueue, PermanentJobError
from edudesk.core.models import AuditEvent
from edudesk.core.people.models import Staff
from edudesk.core.people.webauth import issue_login_link
from edudesk.core.ports import Clock
from edudesk.core.requests.mailqueue import mail_context, queue_mail
from edudesk.core.requests.models import OutgoingMail
from edudesk.core.signing.models import Teacher
from edudesk.core.text import nfc

TEMPLATE = "login_link"
REQUESTED, LIMITED = "login_link_requested", "login_link_limited"  # audit actions
WINDOW = timedelta(minutes=15)
LINKS_PER_ADDRESS = 3  # links mailed to one address per WINDOW (a mailbox is not flooded)
REQUESTS_PER_CLIENT = 10  # requests from one client address per WINDOW (nobody sprays the form)
MAX_ADDRESS = 254  # RFC 5321's longest forward path
RECORDS_PAGE = "/records"  # where a sign-now notice's sign-in link lands


def normalise(address: str) -> str:
    """An address as typed, made comparable: NFC, trimmed, lower case (cut at a length no address has)."""
    return nfc(address or "").strip().lower()[:MAX_ADDRESS + 1]


def safe_path(target: str) -> str:
    """`target` when it is a plain path on this console, else "" (browsers drop tabs and newlines, so
    "/\t/evil.example" would become "//evil.example": anything but plain path characters is refused)."""
    if not target.startswith("/") or target.startswith("//") or any(
            not c.isprintable() or c.isspace() or c == "\\" for c in target):
        return ""
    return target[:500]


def _well_formed(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and "." in domain and "@" not in local) and len(address) <= MAX_ADDRESS and not any(
        c.isspace() or not c.isprintable() for c in address)


async def _holder(address: str) -> tuple[Staff | None, bool]:
    """The active staff member an address belongs to (their own, or the roster address of a teacher linked to
    them) and whether they sign records (the mail says Thầy/Cô). The same three lookups for every address."""
    staff = await Staff.filter(email__iexact=address, active=True).order_by("id").first()
    teacher = await Teacher.filter(email__iexact=address, staff_id__isnull=False).order_by("id").first()
    if staff is None and teacher is not None and teacher.staff_id is not None:
        staff = await Staff.get_or_none(id=teacher.staff_id, active=True)
    signs = await Teacher.filter(staff_id=staff.id if staff else 0).exists()
    return staff, signs


async def request_login_link(address: str, client: str, settings: Settings, clock: Clock, queue: JobQueue, *,
                             next_path: str = "") -> None:
    """Queue a sign-in link mail when `address` is an active staff member's institutional address, within the
    limits; audit every request (a stranger only by the domain typed). Returns nothing, whatever happened."""
    address = normalise(address)
    usable = _well_formed(address) and is_institutional(address, settings.institution.domains)
    staff, teacher = await _holder(address)  # looked up for every address: the same work whatever it is
    staff = staff if usable and address else None
    actor = f"web:{(client or '?')[:100]}"
    now = clock.now()
    async with in_transaction() as conn:
        # As the automatic-reply cap does: count and record in one transaction, serialised per key across
        # replicas (PostgreSQL advisory locks; SQLite runs one writing transaction at a time).
        await lock_for_transaction(conn, f"edudesk:login_link:client:{actor}")
        await lock_for_transaction(conn, f"edudesk:login_link:to:{address}")
        asked = await AuditEvent.filter(actor=actor, action__in=[REQUESTED, LIMITED], at__gt=now - WINDOW).using_db(
            conn).count()
        mailed = await OutgoingMail.filter(template=TEMPLATE, recipient=address, created_at__gt=now - WINDOW).using_db(
            conn).count()
        limit = "client" if asked >= REQUESTS_PER_CLIENT else "address" if mailed >= LINKS_PER_ADDRESS else ""
        # Decree 13: a stranger's address is not stored, only the domain typed; a staff member by their id.
        detail: dict[str, Any] = {"staff_id": staff.id} if staff else {"domain": sender_domain(address)[:100]}
        if limit:
            detail["limit"] = limit
        await AuditEvent.create(at=now, actor=actor, action=LIMITED if limit else REQUESTED, detail=detail,
                                using_db=conn)
        if staff is not None and not limit:
            context = {**mail_context(settings, staff.name), "addressee": "teacher" if teacher else "person",
                       "signin_staff_id": staff.id,
                       "signin_next": safe_path(next_path), "minutes": f"{settings.web.login_link_minutes:g}"}
            await queue_mail(conn, queue, clock, settings, key=f"{TEMPLATE}:{staff.id}:{secrets.token_hex(8)}",
                             template=TEMPLATE, recipient=address, context=context)
    queue.wake()


def signin_fields(settings: Settings, staff_id: int, links: list[str]) -> dict[str, Any]:
    """For a notice mail to one staff member whose links lead to the records pages (a sign-now notice, a
    reminder): ask the delivery for a fresh one-time sign-in link landing on /records. Nothing without
    [web].public_url (the console is not reachable from a mailbox then)."""
    page = f"{settings.web_url}{RECORDS_PAGE}"
    if not settings.web.public_url or not any(link == page or link.startswith((page + "/", page + "?"))
                                              for link in links):
        return {}
    return {"signin_staff_id": staff_id, "signin_next": RECORDS_PAGE}


async def mint_signin_link(context: dict[str, Any], settings: Settings, clock: Clock) -> None:
    """At send time: turn a mail context's `signin_staff_id` into a new one-time sign-in link (`link`, and its
    end `link_expires`), in memory only; a mail for someone no longer active is not sent."""
    staff_id = context.pop("signin_staff_id", None)
    target = safe_path(str(context.pop("signin_next", "") or ""))
    if staff_id is None:
        return
    try:
        link = await issue_login_link(int(staff_id), settings, clock, issued_by="mail")
    except NotFound as exc:
        raise PermanentJobError(f"no sign-in link for staff {staff_id}: not active") from exc
    context["link"] = f"{link}?next={quote(target, safe='/')}" if target else link
    context["link_expires"] = clock.now() + timedelta(minutes=settings.web.login_link_minutes)
