"""Checking a record PDF's signatures in the web console (GET/POST /records/verify), as `edudesk records verify
FILE --at YYYY-MM-DD` does: per signature the signer, role, local signing time, intact, trusted, its PAdES level
with the signature timestamp's time and TSA and whether revocation was checked; the document (archival)
timestamps and the date to renew them before; and, for a date the person types (dd/mm/yyyy), whether each
signature still validates then from what the file carries."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from edudesk.bot.web.render import Console, console, needs, render
from edudesk.core.errors import NotFound
from edudesk.core.people.access import Permission

VERIFY_MAX = 20 * 1024 * 1024  # a record PDF with 15 signatures and scans stays well below
LEVEL_CLASS = {"B-B": "b-b", "B-T": "b-t", "B-LT": "b-lt", "B-LTA": "b-lta"}  # the badge's colour in the template


@web.middleware
async def verify_uploads(request: web.Request, handler: Any) -> web.StreamResponse:
    """Only POST /records/verify may send a record PDF larger than the console's 256 KB limit."""
    if request.method == "POST" and request.path == "/records/verify":
        request = request.clone(client_max_size=VERIFY_MAX)
    return await handler(request)


def _service(c: Console) -> None:
    if c.records is None:
        raise NotFound(c.t["rec"]["disabled"])


def parse_day(text: str) -> date | None:
    """The "valid at" field: dd/mm/yyyy (or d/m/yyyy, or the YYYY-MM-DD a date picker sends); None when empty,
    ValueError for anything else or a year outside 2000-2199 (a record is kept for decades, not millennia)."""
    text = text.strip()
    if not text:
        return None
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y"):
        try:
            day = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        if 2000 <= day.year <= 2199:
            return day
    raise ValueError(text)


def moment(day: date, timezone: str) -> datetime:
    """Noon of `day` in the office's time zone (the moment `records verify --at` validates at too)."""
    return datetime.combine(day, time(12), ZoneInfo(timezone))


def _trust(c: Console) -> tuple[tuple[bytes, ...], tuple[bytes, ...], bool]:
    from edudesk.core.signing.demotrust import demo_settings
    from edudesk.core.signing.trust import trust_material

    roots, crls = trust_material(c.settings)
    if not roots:
        demo = demo_settings(c.settings)
        if Path(demo.records.trusted_roots[0]).exists():
            return (*trust_material(demo), True)  # as `edudesk records verify` does
    return roots, crls, False


def _verify_in_thread(pdf: bytes, roots: tuple[bytes, ...], crls: tuple[bytes, ...], at: datetime | None) -> Any:
    from edudesk.core.signing.verify import verify_record

    return asyncio.run(verify_record(pdf, trusted_roots=roots, crls=crls, ltv=True, at=at))


def _row(c: Console, s: Any) -> dict[str, Any]:
    """One signature as the page's table shows it (the long-term facts empty when validation gave none)."""
    ltv = s.ltv
    return {"field": s.field, "role": s.role, "signer": s.signer, "signed_at": c.when(s.signed_at) or "?",
            "intact": s.intact, "trusted": s.trusted, "changes_after": s.changes_after, "problems": s.problems,
            "level": ltv.level if ltv else "", "level_class": LEVEL_CLASS.get(ltv.level, "") if ltv else "",
            "timestamp_at": c.when(ltv.timestamp_at) if ltv and ltv.timestamp_at else "",
            "tsa": ltv.tsa if ltv else "", "revocation_checked": bool(ltv and ltv.revocation_checked),
            "valid_at": None if ltv is None else ltv.valid_at}


def _archive(c: Console, archive: Any) -> dict[str, Any] | None:
    """The record's document timestamps: how many, the last one's time and TSA, the day to renew before."""
    if archive is None:
        return None
    tz = ZoneInfo(c.settings.general.timezone)
    expires = archive.expires
    days_left = (expires - c.clock.now()).days if expires else None
    return {"count": archive.count, "last_at": c.when(archive.last_at) if archive.last_at else "",
            "tsa": archive.tsa, "expires": expires.astimezone(tz).strftime("%d/%m/%Y") if expires else "",
            "days_left": days_left, "due": days_left is not None and
            days_left <= c.settings.records.refresh_before_days}


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def verify_page(request: web.Request) -> web.Response:
    """GET /records/verify: the upload form."""
    _service(console(request))
    return render(request, "records_verify.html.j2", report=None, at_text="")


@needs(Permission.SIGN_IN)  # each signing role's own work; admin-only parts are checked inside
async def verify_upload(request: web.Request) -> web.Response:
    """POST /records/verify: every signature of the uploaded PDF with its PAdES level, as `edudesk records verify
    --at` shows it."""
    from edudesk.core.signing.verify import format_report

    c = console(request)
    _service(c)
    form = await request.post()
    upload, at_text = form.get("pdf"), str(form.get("at", ""))[:40].strip()
    data, name = (upload.file.read(), upload.filename[:200]) if isinstance(upload, web.FileField) else (b"", "")
    try:
        day = parse_day(at_text)
    except ValueError:
        return render(request, "records_verify.html.j2", report=None, at_text=at_text,
                      error=c.t["rec"]["ltv"]["bad_date"].format(value=at_text))
    if not data:
        return render(request, "records_verify.html.j2", report=None, at_text=at_text, error=c.t["rec"]["no_pdf"])
    tz = c.settings.general.timezone
    at = moment(day, tz) if day else None
    roots, crls, demo = _trust(c)
    # pyHanko's validation is CPU work: in a thread of its own, so the console and the bot keep answering.
    report = await asyncio.to_thread(_verify_in_thread, data, roots, crls, at)
    later = [s for s in report.signatures if not (s.ltv is not None and s.ltv.valid_at)] if at else []
    text = format_report(report, lang=c.t["lang"], timezone=tz, at=at)
    if report.ok and later:  # every signature holds today, not all at the date asked about (as the CLI says)
        text = text.rsplit("\n", 1)[0] + "\n" + c.t["rec"]["failed"]
    return render(request, "records_verify.html.j2", report=report, demo=demo, name=name, at_text=at_text,
                  rows=[_row(c, s) for s in report.signatures], archive=_archive(c, report.archive),
                  day=day.strftime("%d/%m/%Y") if day else "", later=len(later), ok=report.ok and not later,
                  text=text)


def add_routes(app: web.Application) -> None:
    """Register the verify page (and let only its upload exceed the body limit)."""
    app.middlewares.insert(0, verify_uploads)  # before the guard, which reads the form for its CSRF check
    app.router.add_get("/records/verify", verify_page)
    app.router.add_post("/records/verify", verify_upload)
