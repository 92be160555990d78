"""The console's /reports for heads and admins: a period's BM03 figures with charts drawn on the server, a drill-down
per unit, making the .xlsx / .pdf file (archived: the file, its period, who made it, when) and downloading any
report of the archive, each download audited. Who may: `Permission.REPORTS`, checked by the guard."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup

from edudesk.bot.web.render import ACTOR, Console, console, needs, render
from edudesk.bot.web.reports_view import inline_svg, page_tables, page_words, request_ids, size_text, unit_totals
from edudesk.core.models import AuditEvent
from edudesk.core.people.access import Permission
from edudesk.core.reports.archive import archive_report, get_report, list_reports
from edudesk.core.reports.bm03 import bm03_figures
from edudesk.core.reports.charts import bm03_charts, report_words
from edudesk.core.reports.figures import Bm03Figures, Period
from edudesk.core.reports.models import ReportArchive
from edudesk.core.reports.xlsx import bm03_xlsx
from edudesk.core.requests.models import Request
from edudesk.core.text import printable, strip_diacritics

KIND = "bm03"
MAX_DAYS = 366  # "this year" fits; a longer span is several reports
ARCHIVE_SHOWN = 50
CONTENT_TYPES = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                 "pdf": "application/pdf"}


def _bm03_pdf(fig: Bm03Figures, lang: str) -> bytes:
    from edudesk.core.reports.pdf import bm03_pdf  # fpdf2 is imported when a PDF is made, not at start

    return bm03_pdf(fig, lang)


WRITERS = {"xlsx": bm03_xlsx, "pdf": _bm03_pdf}
CHARTS = ("by_kind", "steps", "daily")
COUNTS = ("received", "approved", "rejected", "done", "open")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Choice:
    """The period asked for: the Period (None when the dates were wrong), the form's values, the mistake."""

    period: Period | None
    text: dict[str, str]  # from / to (YYYY-MM-DD) and unit, to refill the form and build links
    error: str = ""


def _date(value: str) -> date:
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            day = datetime.strptime(value, fmt).date()
        except ValueError:
            continue
        if 2000 <= day.year <= 2099:
            return day
    raise ValueError(value)


def choose_period(query: Any, today: date, timezone: str, lang: str) -> Choice:
    """The period of a query string or form: `from` / `to` (YYYY-MM-DD or dd/mm/yyyy), by default the current
    month up to today; `unit` narrows it to one unit. A wrong date is a message, never a 500."""
    w = page_words(lang)
    raw = {k: str(query.get(k, "")).strip()[:40] for k in ("from", "to")}
    unit = printable(str(query.get("unit", "")), 300)
    days: dict[str, date] = {}
    for key, value in raw.items():
        if value:
            try:
                days[key] = _date(value)
            except ValueError:
                return Choice(None, {**raw, "unit": unit}, w["bad_date"].format(value=value))
    end = days.get("to", today)
    start = days.get("from", end.replace(day=1))
    text = {"from": start.isoformat(), "to": end.isoformat(), "unit": unit}
    if start > end:
        return Choice(None, text, w["bad_order"].format(start=f"{start:%d/%m/%Y}", end=f"{end:%d/%m/%Y}"))
    if (end - start).days + 1 > MAX_DAYS:
        return Choice(None, text, w["too_long"].format(days=MAX_DAYS))
    return Choice(Period(start=start, end=end, timezone=timezone, unit=unit), text)


def quick_periods(today: date) -> dict[str, tuple[date, date]]:
    """The quick links: this month up to today, the whole of last month, this year up to today."""
    last_end = today.replace(day=1) - timedelta(days=1)
    return {"this_month": (today.replace(day=1), today), "last_month": (last_end.replace(day=1), last_end),
            "this_year": (today.replace(month=1, day=1), today)}


def report_filename(form: str, period: Period, fmt: str) -> str:
    """`BM03_2026-11-01_2026-11-30.xlsx`, the unit (without diacritics) appended when the report has one."""
    parts = [form or "BM03", period.start.isoformat(), period.end.isoformat()]
    if period.unit:
        parts.append(strip_diacritics(period.unit))
    name = "_".join(_UNSAFE.sub("-", p).strip("-.") for p in parts)
    return f"{name[:150]}.{fmt}"


def _today(c: Console) -> date:
    return c.clock.now().astimezone(ZoneInfo(c.settings.general.timezone)).date()


def _archive_row(c: Console, lang: str, r: ReportArchive) -> dict[str, Any]:
    w = page_words(lang)
    return {"id": r.id, "made_at": c.when(r.made_at), "period": f"{r.period_start:%d/%m/%Y} – {r.period_end:%d/%m/%Y}",
            "unit": r.unit or w["all_units"], "fmt": r.fmt.upper(), "size": size_text(r.size, lang),
            "made_by": w["scheduled"].format(who=r.made_by) if r.scheduled else r.made_by, "filename": r.filename}


@functools.lru_cache(maxsize=16)
def _drawn(fig: Bm03Figures, lang: str) -> dict[str, Markup]:
    """The page's charts of figures already drawn: about 0.6 s of matplotlib for three, so a reload, the back
    button or the page after a report was made reuse them (the figures' moment is not part of the key)."""
    drawn = bm03_charts(fig, lang, "svg")
    return {key: inline_svg(drawn[key], f"chart-{key}") for key in CHARTS}


async def _charts(fig: Bm03Figures, lang: str) -> dict[str, Markup]:
    timeless = dataclasses.replace(fig, generated_at=datetime.min.replace(tzinfo=UTC))  # the charts do not show it
    return await asyncio.to_thread(_drawn, timeless, lang)  # matplotlib: CPU work, off the loop


async def _page(request: web.Request, choice: Choice, status: int = 200) -> web.Response:
    c = console(request)
    lang = "en" if c.lang == "en" else "vi"
    today = _today(c)
    context: dict[str, Any] = {}
    if choice.period is not None:
        fig = await bm03_figures(c.settings, choice.period, c.clock.now(), lang)
        wanted = request_ids(fig)
        existing = {r.id for r in await Request.filter(id__in=wanted).only("id")} if wanted else set()
        rw = report_words(lang)
        context = {"fig": fig, "totals": fig.totals(), "tables": page_tables(fig, lang, existing),
                   "units": unit_totals(fig), "charts": await _charts(fig, lang),
                   "labels": {k: rw(f"report.{k}") for k in (*COUNTS, "no_unit")},
                   "period_text": rw("report.period", start=f"{fig.period.start:%d/%m/%Y}",
                                     end=f"{fig.period.end:%d/%m/%Y}")}
    archive = [_archive_row(c, lang, r) for r in await list_reports(limit=ARCHIVE_SHOWN)]
    quick = {k: {"from": a.isoformat(), "to": b.isoformat()} for k, (a, b) in quick_periods(today).items()}
    return render(request, "reports.html.j2", status=status, error=choice.error, w=page_words(lang),
                  chosen=choice.text, quick=quick, archive=archive, formats=list(WRITERS), **context)


@needs(Permission.REPORTS)
async def reports_page(request: web.Request) -> web.Response:
    """GET /reports?from=YYYY-MM-DD&to=YYYY-MM-DD&unit=U: the period's figures, charts, units, the archive."""
    c = console(request)
    choice = choose_period(request.query, _today(c), c.settings.general.timezone, c.lang)
    return await _page(request, choice, status=400 if choice.error else 200)


@needs(Permission.REPORTS)
async def make_report(request: web.Request) -> web.Response:
    """POST /reports/make (CSRF-checked by the guard): compute the period's BM03, write the .xlsx or .pdf, archive
    it with the signed-in person's name, then send the browser to its download."""
    c = console(request)
    form = await request.post()
    choice = choose_period(form, _today(c), c.settings.general.timezone, c.lang)
    fmt = str(form.get("fmt", ""))
    if choice.period is not None and fmt not in WRITERS:
        choice = Choice(choice.period, choice.text, page_words(c.lang)["bad_format"])
    if choice.period is None or choice.error:
        return await _page(request, choice, status=400)
    lang = c.settings.reports.language or c.settings.general.language
    now = c.clock.now()
    fig = await bm03_figures(c.settings, choice.period, now, lang)
    content = await asyncio.to_thread(WRITERS[fmt], fig, lang)
    actor = request[ACTOR]
    report = await archive_report(kind=KIND, period=choice.period, lang=lang, fmt=fmt,
                                  filename=report_filename(fig.form, choice.period, fmt), content=content,
                                  made_by=actor.name or actor.label, now=now)
    return web.Response(status=303, headers={"Location": f"/reports/archive/{report.id}"})


def _disposition(filename: str) -> str:
    """`attachment` with an ASCII name for every browser and the exact (UTF-8) name for those that read it."""
    plain = _UNSAFE.sub("-", strip_diacritics(filename)).strip("-") or "report"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename, safe='')}"


@needs(Permission.REPORTS)
async def download_report(request: web.Request) -> web.Response:
    """GET /reports/archive/{id}: the archived file as it was made; every download is audited."""
    c = console(request)
    report = await get_report(int(request.match_info["id"]))
    if report is None:
        raise web.HTTPNotFound
    actor, now = request[ACTOR], c.clock.now()
    await AuditEvent.create(at=now, actor=actor.label, action="report_download",
                            detail={"report_id": report.id, "filename": report.filename, "fmt": report.fmt,
                                    "period_start": report.period_start.isoformat(),
                                    "period_end": report.period_end.isoformat(), "unit": report.unit})
    content_type = CONTENT_TYPES.get(report.fmt, "application/octet-stream")
    return web.Response(body=bytes(report.content), content_type=content_type,
                        headers={"Content-Disposition": _disposition(report.filename)})


def add_routes(app: web.Application) -> None:
    """Register the reports pages."""
    app.router.add_get("/reports", reports_page)
    app.router.add_post("/reports/make", make_report)
    app.router.add_get(r"/reports/archive/{id:\d{1,18}}", download_report)
