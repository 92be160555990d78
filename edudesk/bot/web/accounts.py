"""The account log (every change made in a directory) for technical staff, heads and admins: page and exports
(who may read it: core/people/access.py, checked by the guard)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from edudesk.bot.web.render import Console, console, needs, render
from edudesk.core.accounts.log import ACTION_LABELS, COLUMNS, export_csv, export_xlsx, log_rows
from edudesk.core.accounts.models import AccountLog
from edudesk.core.people.access import Permission

PAGE_SIZE = 50
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_NUMBER = re.compile(r"(?:yc)?[-\s]*(\d{1,18})", re.IGNORECASE)

WORDS = {
    "vi": {"title": "Nhật ký tài khoản", "request_no": "Số yêu cầu", "from": "Từ ngày", "to": "Đến ngày",
           "none": "Chưa có thay đổi nào.", "csv": "Tải CSV", "xlsx": "Tải Excel (.xlsx)",
           "bad_date": "Ngày không hợp lệ; vui lòng chọn lại (dd/mm/yyyy).", "ok": "thành công", "failed": "lỗi"},
    "en": {"title": "Account log", "request_no": "Request number", "from": "From", "to": "To",
           "none": "No changes yet.", "csv": "Download CSV", "xlsx": "Download Excel (.xlsx)",
           "bad_date": "Invalid date; please pick it again.", "ok": "ok", "failed": "failed"},
}


@dataclass(frozen=True)
class LogFilter:
    """The page's filters: a request number and a date range in the office's time zone (end day included)."""

    request_id: int | None
    since: datetime | None
    until: datetime | None
    text: dict[str, str]  # as typed, to refill the form and build links
    bad_date: bool


def _day(value: str) -> date | None:
    value = value.strip()
    for fmt in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, fmt).date()
        except ValueError:
            continue
    raise ValueError(value)


def parse_filter(query: Any, timezone: str) -> LogFilter:
    """The filters from the query string; a bad date is dropped and flagged, never a 500."""
    zone = ZoneInfo(timezone)
    number = _NUMBER.fullmatch(query.get("request", "").strip())
    text = {k: query.get(k, "").strip()[:40] for k in ("request", "from", "to")}
    bounds: list[datetime | None] = []
    bad = False
    for key, extra in (("from", 0), ("to", 1)):
        try:
            day = _day(text[key]) if text[key] else None
        except ValueError:
            day, bad = None, True
        bounds.append(datetime.combine(day + timedelta(days=extra), time(), zone) if day else None)
    return LogFilter(int(number.group(1)) if number else None, bounds[0], bounds[1], text, bad)


def _row(c: Console, lang: str, row: AccountLog) -> dict[str, Any]:
    return {"at": c.when(row.at), "action": ACTION_LABELS[lang].get(row.action, row.action), "code": row.action,
            "address": row.address, "full_name": row.full_name, "person_id": row.person_id, "backend": row.backend,
            "request_id": row.request_id, "approved_by": row.approved_by, "executed_by": row.executed_by,
            "ok": row.ok, "answer": row.answer}


def _lang(c: Console) -> str:
    return "en" if c.t["lang"] == "en" else "vi"


@needs(Permission.ACCOUNT_LOG)
async def log_page(request: web.Request) -> web.Response:
    """GET /accounts/log: the account log, newest first, paged, filtered by request and dates."""
    c = console(request)
    lang = _lang(c)
    f = parse_filter(request.query, c.settings.general.timezone)
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    query = AccountLog.all()
    if f.request_id is not None:
        query = query.filter(request_id=f.request_id)
    if f.since is not None:
        query = query.filter(at__gte=f.since)
    if f.until is not None:
        query = query.filter(at__lt=f.until)
    total = await query.count()
    rows = await query.order_by("-at", "-id").offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    return render(request, "accounts_log.html.j2", error=WORDS[lang]["bad_date"] if f.bad_date else "",
                  w=WORDS[lang], columns=[vi if lang == "vi" else en for _, vi, en in COLUMNS],
                  rows=[_row(c, lang, r) for r in rows], total=total, page=page,
                  pages=max(1, -(-total // PAGE_SIZE)), filters=f.text)


async def _export(request: web.Request, kind: str) -> web.Response:
    c = console(request)
    lang = _lang(c)
    f = parse_filter(request.query, c.settings.general.timezone)
    rows = await log_rows(f.since, f.until, f.request_id)
    zone = ZoneInfo(c.settings.general.timezone)
    stamp = c.clock.now().astimezone(zone).strftime("%Y%m%d-%H%M")
    name = f"nhat-ky-tai-khoan-{stamp}" if lang == "vi" else f"account-log-{stamp}"
    if kind == "csv":
        body, content_type = export_csv(rows, lang, zone), "text/csv"
    else:
        body, content_type = export_xlsx(rows, lang, zone), XLSX
    return web.Response(body=body, content_type=content_type, charset="utf-8" if kind == "csv" else None,
                        headers={"Content-Disposition": f'attachment; filename="{name}.{kind}"'})


@needs(Permission.ACCOUNT_LOG)
async def log_csv(request: web.Request) -> web.Response:
    """GET /accounts/log.csv: the filtered log as CSV (UTF-8 with a BOM, for Excel)."""
    return await _export(request, "csv")


@needs(Permission.ACCOUNT_LOG)
async def log_xlsx(request: web.Request) -> web.Response:
    """GET /accounts/log.xlsx: the filtered log as an Excel workbook."""
    return await _export(request, "xlsx")


def add_routes(app: web.Application) -> None:
    """Register the account log pages."""
    app.router.add_get("/accounts/log", log_page)
    app.router.add_get("/accounts/log.csv", log_csv)
    app.router.add_get("/accounts/log.xlsx", log_xlsx)
