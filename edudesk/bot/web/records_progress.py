"""The vice principal's records dashboard in the web console: per class and stage the records done, waiting and
overdue with their deadlines, who is blocking and since when, the progress chart (inline SVG), "Nhắc tất cả"
beside the blocking list, and the .xlsx export. For the leadership and admins (`usecases.may_follow_progress`):
teachers' names and counts only, no student data."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from markupsafe import Markup

from edudesk.bot.web.records import service
from edudesk.bot.web.render import ACTOR, Console, console, needs, redirect, render
from edudesk.core.errors import EdudeskError, NotAllowed
from edudesk.core.people.access import Permission
from edudesk.core.reports.charts import line_chart
from edudesk.core.signing.progress import Progress, follow_progress, school_years
from edudesk.core.signing.progress_xlsx import export_progress, progress_filename, progress_words
from edudesk.core.signing.quiet import in_quiet_hours, parse_quiet_hours, quiet_until

PAGE_WORDS = {
    "vi": {"nav": "Tiến độ ký học bạ", "years": "Năm học khác", "download": "Tải bảng tính (.xlsx)",
           "overall": "Đã có {signed}/{required} chữ ký ({share}).", "no_turns": "Chưa có lượt ký nào được mở.",
           "chart_title": "Tỉ lệ chữ ký đã hoàn thành theo ngày", "chart_series": "Đã hoàn thành (%)",
           "by_class": "Theo lớp và bước",
           "no_classes": "Chưa có lớp nào của năm học này.", "all_done": "đã xong"},
    "en": {"nav": "Signing progress", "years": "Other school years", "download": "Download the spreadsheet (.xlsx)",
           "overall": "{signed} of {required} signatures made ({share}).", "no_turns": "No turn has opened yet.",
           "chart_title": "Share of signatures done, by day", "chart_series": "Done (%)",
           "by_class": "By class and stage",
           "no_classes": "No class in this school year yet.", "all_done": "all done"},
}



def page_words(c: Console) -> dict[str, str]:
    """The dashboard's own words with the workbook's (column names), in the console's language."""
    lang = "en" if c.lang == "en" else "vi"
    return {**progress_words(lang), **PAGE_WORDS[lang]}


def percent(value: float | None, lang: str) -> str:
    """"50,0 %" (Vietnamese) or "50.0%"; "—" when there is nothing to share."""
    if value is None:
        return "—"
    text = f"{100 * value:.1f}"
    return f"{text}%" if lang == "en" else f"{text.replace('.', ',')} %"


async def chart(progress: Progress, words: dict[str, str]) -> Markup:
    """The progress per day as an inline SVG (drawn in a thread: matplotlib is CPU work)."""
    if not progress.days:
        return Markup("")
    # From 0 % the evening before the first turn opened: the line starts where signing did, and the axis at 0.
    days = [progress.days[0].day - timedelta(days=1), *(d.day for d in progress.days)]
    shares = [0.0, *(round(100 * d.share, 1) for d in progress.days)]
    svg = await asyncio.to_thread(line_chart, days, {words["chart_series"]: shares}, title=words["chart_title"],
                                  ylabel="%")
    return Markup(svg.decode("utf-8"))  # matplotlib's, from our words: text escaped


def _flash(c: Console, query: Any) -> str:
    try:
        n, at = int(query.get("reminded", "")), datetime.fromtimestamp(int(query.get("at", "")), UTC)
    except (ValueError, OverflowError, OSError):
        return ""
    return str(c.t["rec"]["reminded"]).format(n=n, at=c.when(at))


def refused(request: web.Request, exc: EdudeskError) -> web.Response:
    """The 403 page of someone who does not follow the progress (the service audited the refusal)."""
    c = console(request)
    return render(request, "error.html.j2", status=403, title=c.t["refused_title"], message=exc.in_words(c.lang))


@needs(Permission.SIGN_IN)  # the service lets only the leadership (and admins) in
async def progress_page(request: web.Request, *, error: str = "") -> web.Response:
    """GET /records/progress?year=: the dashboard of a school year (the newest by default)."""
    c = console(request)
    actor, now = request[ACTOR], c.clock.now()
    try:
        progress = await follow_progress(service(c), actor, request.query.get("year", "")[:16])
    except NotAllowed as exc:
        return refused(request, exc)
    words = page_words(c)
    window = parse_quiet_hours(c.settings.records.quiet_hours)
    quiet = in_quiet_hours(now, window, c.settings.general.timezone)
    rows: dict[int, dict[str, Any]] = {}
    for row in progress.rows:
        rows.setdefault(row.class_id, {"name": row.class_name, "stages": {}})["stages"][row.stage] = row
    blockers = [{"b": b, "since": c.when(b.since), "deadline": c.when(b.deadline),
                 "left": c.time_left(b.deadline, now)} for b in progress.blockers]
    return render(request, "records_progress.html.j2", error=error, flash=_flash(c, request.query), p=progress,
                  w=words, classes=list(rows.values()), totals=progress.stage_totals(), blockers=blockers,
                  years=[y for y in await school_years() if y != progress.year], chart=await chart(progress, words),
                  overall=words["overall"].format(signed=progress.signed, required=progress.required,
                                                  share=percent(progress.share, c.lang)),
                  when=c.when, percent=lambda v: percent(v, c.lang),
                  quiet_hours=c.settings.records.quiet_hours,
                  quiet_until=c.when(quiet_until(now, window, c.settings.general.timezone)) if quiet else "")


@needs(Permission.SIGN_IN)  # the service lets only the leadership (and admins) in
async def progress_xlsx(request: web.Request) -> web.Response:
    """GET /records/progress.xlsx?year=: the same figures as a workbook."""
    c = console(request)
    try:
        progress = await follow_progress(service(c), request[ACTOR], request.query.get("year", "")[:16])
    except NotAllowed as exc:
        return refused(request, exc)
    data = await asyncio.to_thread(export_progress, progress, c.lang)
    return web.Response(body=data, content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{progress_filename(progress, c.lang)}"'})


@needs(Permission.SIGN_IN)  # the service lets only the leadership (and admins) in
async def remind_all(request: web.Request) -> web.Response:
    """POST /records/progress/remind: Nhắc tất cả, the same service call as on /records (same once-a-minute
    job keys, same quiet hours), back to the dashboard."""
    c = console(request)
    try:
        sent, when = await service(c).remind_all(request[ACTOR])
    except NotAllowed as exc:
        return refused(request, exc)
    except EdudeskError as exc:
        return await progress_page(request, error=exc.in_words(c.lang))
    return redirect(request, f"/records/progress?reminded={sent}&at={int(when.timestamp())}")


def add_routes(app: web.Application) -> None:
    """Register the dashboard, its workbook and its Nhắc tất cả."""
    app.router.add_get("/records/progress", progress_page)
    app.router.add_get("/records/progress.xlsx", progress_xlsx)
    app.router.add_post("/records/progress/remind", remind_all)
