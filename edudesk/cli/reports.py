"""`edudesk reports bm03 --from D --to D [--unit U] [--lang vi|en] --out FILE.xlsx|.pdf [--by NAME]`: the BM03
report of a period, written to a file and archived with who made it; `edudesk reports list` shows the archive
and `edudesk reports get ID --out FILE` writes an archived report back out, byte for byte."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from edudesk.cli.mistakes import iso_date
from edudesk.core.config import Settings
from edudesk.core.db import close_database, open_database
from edudesk.core.ports import SystemClock
from edudesk.core.text import local_time
from edudesk.core.words import Words

KIND = "bm03"
FORMATS = {".xlsx": "xlsx", ".pdf": "pdf"}


def add_parser(sub: Any) -> None:
    """The `reports` command group: bm03, list, get."""
    rep = sub.add_parser("reports", help="BM03 reports: make one, list the archive, get an archived file"
                         ).add_subparsers(dest="reports_command", required=True)
    bm03 = rep.add_parser("bm03", help="the BM03 summary of a period (.xlsx with charts, or .pdf), archived")
    bm03.add_argument("--from", dest="start", type=iso_date, required=True, metavar="YYYY-MM-DD",
                      help="first day (local)")
    bm03.add_argument("--to", dest="end", type=iso_date, required=True, metavar="YYYY-MM-DD",
                      help="last day, included")
    bm03.add_argument("--unit", default="", metavar="UNIT",
                      help="only the requests of this unit (as written on the requests)")
    bm03.add_argument("--lang", choices=["vi", "en"], help="the report's language (default: [reports].language, "
                                                          "else [general].language)")
    bm03.add_argument("--out", type=Path, required=True, metavar="FILE", help="file to write: .xlsx or .pdf")
    bm03.add_argument("--by", default="", metavar="NAME",
                      help="who makes the report, for the archive (default: the OS user)")
    bm03.set_defaults(func=cmd_bm03)
    rep.add_parser("list", help="the archived reports, newest first").set_defaults(func=cmd_list)
    get = rep.add_parser("get", help="write an archived report to a file")
    get.add_argument("id", type=int, metavar="ID")
    get.add_argument("--out", type=Path, required=True, metavar="FILE",
                     help="file to write (same extension as the report)")
    get.set_defaults(func=cmd_get)


def _words(settings: Settings) -> Words:
    from edudesk.core.reports.charts import report_words

    return report_words(settings.general.language)


def _refuse(line: str) -> int:
    """A mistake: one line on stderr, exit 1."""
    print(f"edudesk: {line}", file=sys.stderr)
    return 1


def _out_mistake(out: Path, w: Words) -> str | None:
    """Why `out` cannot be written (unknown extension, missing folder), or None."""
    if out.suffix.lower() not in FORMATS:
        return w("cli.reports.bad_file", path=out)
    if not out.resolve().parent.is_dir():
        return w("cli.error.no_folder", path=out.parent)
    return None


def _write(out: Path, content: bytes) -> None:
    """Whole or not at all: a temp file beside `out`, renamed over it."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(content)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _who(by: str) -> str:
    """--by, else the OS user's name (a container without a passwd entry has only a uid)."""
    if by.strip():
        return by.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "?"


def _period_text(start: Any, end: Any) -> str:
    return f"{start:%d/%m/%Y} – {end:%d/%m/%Y}"


async def cmd_bm03(settings: Settings, args: argparse.Namespace) -> int:
    """Compute the period's figures, write the file, archive it; one line saying what was made."""
    from edudesk.core.reports.archive import archive_report
    from edudesk.core.reports.bm03 import bm03_figures
    from edudesk.core.reports.figures import Period

    w = _words(settings)
    if args.start > args.end:
        return _refuse(w("cli.reports.bad_period", start=f"{args.start:%d/%m/%Y}", end=f"{args.end:%d/%m/%Y}"))
    mistake = _out_mistake(args.out, w)
    if mistake:
        return _refuse(mistake)
    lang = args.lang or settings.reports.language or settings.general.language
    fmt = FORMATS[args.out.suffix.lower()]
    period = Period(start=args.start, end=args.end, timezone=settings.general.timezone, unit=args.unit.strip())
    made_by, now = _who(args.by), SystemClock().now()
    await open_database(settings)
    try:
        fig = await bm03_figures(settings, period, now, lang)
        content = await asyncio.to_thread(_render, fig, lang, fmt)
        # Archived first: a report made is kept even if writing the file then fails (`reports get` has it).
        report = await archive_report(kind=KIND, period=period, lang=lang, fmt=fmt, filename=args.out.name,
                                      content=content, made_by=made_by, now=now)
    finally:
        await close_database()
    _write(args.out, content)
    unit = w("cli.reports.of_unit", unit=period.unit) if period.unit else ""
    print(w("cli.reports.made", form=fig.form, period=_period_text(period.start, period.end), unit=unit,
            path=args.out, requests=fig.totals().received, id=report.id))
    return 0


def _render(fig: Any, lang: str, fmt: str) -> bytes:
    """The report file's bytes (CPU work: run in a thread)."""
    if fmt == "pdf":
        from edudesk.core.reports.pdf import bm03_pdf

        return bm03_pdf(fig, lang)
    from edudesk.core.reports.xlsx import bm03_xlsx

    return bm03_xlsx(fig, lang)


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


async def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    """The archive, newest first: number, made at (local), period, unit, format, made by, size."""
    from edudesk.core.reports.archive import list_reports

    w = _words(settings)
    await open_database(settings)
    try:
        reports = await list_reports(limit=10_000)
    finally:
        await close_database()
    if not reports:
        print(w("cli.reports.none"))
        return 0
    rows = [w("cli.reports.head").split("|")]
    for r in reports:
        who = w("cli.reports.scheduled", who=r.made_by) if r.scheduled else r.made_by
        rows.append([str(r.id), local_time(r.made_at, settings.general.timezone),
                     _period_text(r.period_start, r.period_end), r.unit or w("report.all_units"), r.fmt, who,
                     _size(r.size)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.rjust(width) if i in (0, 6) else cell.ljust(width)
                        for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip())
    return 0


async def cmd_get(settings: Settings, args: argparse.Namespace) -> int:
    """Write archived report ID to --out (the same bytes that were archived)."""
    from edudesk.core.reports.archive import get_report

    w = _words(settings)
    mistake = _out_mistake(args.out, w)
    if mistake:
        return _refuse(mistake)
    await open_database(settings)
    try:
        report = await get_report(args.id)
    finally:
        await close_database()
    if report is None:
        return _refuse(w("cli.reports.not_found", id=args.id))
    if FORMATS[args.out.suffix.lower()] != report.fmt:
        return _refuse(w("cli.reports.wrong_format", id=report.id, fmt=report.fmt))
    _write(args.out, bytes(report.content))
    print(w("cli.reports.written", id=report.id, form=settings.institution.report_form,
            period=_period_text(report.period_start, report.period_end), path=args.out, size=_size(report.size)))
    return 0
