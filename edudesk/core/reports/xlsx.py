"""The BM03 report as a workbook: a summary sheet (the institution's header, then every table) and a daily sheet,
with native Excel charts drawn from the cells. Numbers are numbers and moments are dates (local time), so the
office can sort, sum and chart them further.

`bm03_tables` lays the report out as typed tables once; this workbook and the PDF (`pdf.py`) both show them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from edudesk.core.reports.charts import kind_totals, report_words
from edudesk.core.reports.figures import Bm03Figures
from edudesk.core.text import local_time
from edudesk.core.words import Words

# How a column's values are written: Excel number formats by column kind.
NUMBER_FORMATS = {"int": "0", "percent": "0.0%", "hours": "0.0", "datetime": "dd/mm/yyyy hh:mm",
                  "date": "dd/mm/yyyy", "request": '"YC-"0', "text": "@"}


@dataclass(frozen=True)
class Column:
    """One column of a report table: its heading, the kind of its values and its width (characters)."""

    title: str
    kind: str  # a key of NUMBER_FORMATS
    width: float = 12


@dataclass(frozen=True)
class Table:
    """A section of the report: a heading, columns, rows of typed values and, for some, a total row."""

    key: str
    heading: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    total: tuple[Any, ...] | None = None
    notes: tuple[str, ...] = field(default=())


def header_lines(fig: Bm03Figures, lang: str) -> dict[str, str]:
    """The header's texts: institution, office unit, nation and motto, form, title, period, unit, made at.
    The institution and its office unit are in capitals, as an administrative document names its issuer."""
    w = report_words(lang)
    return {"institution": fig.institution.upper(), "office_unit": fig.office_unit.upper(),
            "nation": w("report.nation"), "motto": w("report.motto"), "form": w("report.form", form=fig.form),
            "title": w("report.title"),
            "period": w("report.period", start=f"{fig.period.start:%d/%m/%Y}", end=f"{fig.period.end:%d/%m/%Y}"),
            "unit": w("report.unit_filter", unit=fig.period.unit or w("report.all_units")),
            "made_at": w("report.made_at", when=local_time(fig.generated_at, fig.period.timezone))}


def _local(moment: datetime, timezone: str) -> datetime:
    """A naive local datetime (Excel has no time zones; fpdf2 shows what it is given)."""
    return moment.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def _unit(w: Words, unit: str) -> str:
    return unit or w("report.no_unit")


def bm03_tables(fig: Bm03Figures, lang: str) -> list[Table]:
    """The report's tables in the order shown, values typed (ints, fractions, hours, local datetimes)."""
    w, tz = report_words(lang), fig.period.timezone
    counts = ("received", "approved", "rejected", "done", "open")
    count_cols = tuple(Column(w(f"report.{c}"), "int", 11) for c in counts)
    totals = fig.totals()
    tables = [Table("groups", w("report.groups"), (
        Column(w("report.kind"), "text", 24), Column(w("report.population"), "text", 14),
        Column(w("report.unit"), "text", 26), *count_cols),
        tuple((w.label("kind", g.kind), w.label("population", g.population, w("report.no_population")),
               _unit(w, g.unit), *(getattr(g, c) for c in counts)) for g in fig.groups),
        total=(w("report.total"), "", "", *(getattr(totals, c) for c in counts)))]
    tables.append(Table("by_kind", w("report.chart_by_kind"), (Column(w("report.kind"), "text", 24), *count_cols),
                        tuple((w.label("kind", k), *(getattr(t, c) for c in counts)) for k, t in kind_totals(fig))))
    tables.append(Table("steps", w("report.steps"), (
        Column(w("report.step"), "text", 40), Column(w("report.step_count"), "int", 12),
        Column(w("report.within_limit"), "int", 11), Column(w("report.share_within"), "percent", 12),
        Column(w("report.limit_hours"), "hours", 11), Column(w("report.median_hours"), "hours", 12)),
        tuple((w(f"report.step.{s.step}"), s.count, s.within_limit, s.share_within, s.limit_hours, s.median_hours)
              for s in fig.steps)))
    tables.append(Table("slowest", w("report.slowest"), (
        Column(w("report.step"), "text", 40), Column(w("report.request"), "request", 10),
        Column(w("report.kind"), "text", 24), Column(w("report.unit"), "text", 26), Column(w("report.hours"), "hours")),
        tuple((w(f"report.step.{s.step}"), r.request_id, w.label("kind", r.kind), _unit(w, r.unit), r.hours)
              for s in fig.steps for r in s.slowest)))
    a = fig.accounts
    tables.append(Table("accounts", w("report.accounts"), (
        Column(w("report.account_change"), "text", 30), Column(w("report.count"), "int")),
        tuple((w(f"report.{k}"), getattr(a, k)) for k in ("created", "reset", "suspended", "deleted", "failed"))))
    tables.append(Table("problems", w("report.problems"), (
        Column(w("report.problem"), "text", 50), Column(w("report.requests"), "int")),
        tuple((p.label, p.requests) for p in fig.problems)))
    tables.append(Table("overdue", w("report.overdue"), (
        Column(w("report.request"), "request", 10), Column(w("report.kind"), "text", 24),
        Column(w("report.unit"), "text", 26), Column(w("report.state"), "text", 18),
        Column(w("report.received_at"), "datetime", 17), Column(w("report.deadline"), "datetime", 17),
        Column(w("report.hours_late"), "hours", 11)),
        tuple((o.request_id, w.label("kind", o.kind), _unit(w, o.unit), w.label("state", o.state),
               _local(o.received_at, tz), _local(o.deadline, tz), o.hours_late) for o in fig.overdue),
        notes=(w("report.overdue_shown", shown=len(fig.overdue), total=fig.overdue_total),)
        if fig.overdue_total > len(fig.overdue) else ()))
    tables.append(Table("days", w("report.sheet_daily"), (
        Column(w("report.day"), "date", 12), Column(w("report.received"), "int", 11),
        Column(w("report.finished"), "int", 11)),
        tuple((d.day, d.received, d.finished) for d in fig.days)))
    return tables


def bm03_xlsx(fig: Bm03Figures, lang: str = "vi") -> bytes:
    """The BM03 workbook (.xlsx bytes): summary and daily sheets, typed cells, three native charts."""
    from openpyxl import Workbook

    w = report_words(lang)
    tables = {t.key: t for t in bm03_tables(fig, lang)}
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = w("report.sheet_summary")
    row = _header(summary, header_lines(fig, lang))
    summary.freeze_panes = "A6"  # the institution, the title and the period stay in view
    summary.page_setup.orientation, summary.page_setup.paperSize = "landscape", summary.PAPERSIZE_A4
    summary.sheet_properties.pageSetUpPr.fitToPage, summary.page_setup.fitToHeight = True, 0  # one page wide
    places: dict[str, tuple[int, int]] = {}  # table -> the row of its column titles, its last data row
    for key in ("groups", "by_kind", "steps", "slowest", "accounts", "problems", "overdue"):
        titles, row = _table(summary, row, tables[key], w)
        places[key] = (titles, titles + len(tables[key].rows))
        row += 1
    for i, width in enumerate((40, 14, 26, 18, 17, 17, 11, 11), start=1):
        summary.column_dimensions[_letter(i)].width = width
    daily = book.create_sheet(w("report.sheet_daily"))
    _table(daily, 0, tables["days"], w, heading=False)
    daily.freeze_panes = "A2"
    _charts(summary, daily, places, tables, w)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _letter(column: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(column)


def _header(ws: Any, lines: dict[str, str]) -> int:
    """The administrative header: institution and office unit left, nation and motto right; then the title,
    the form and period. Returns the last row used."""
    from openpyxl.styles import Alignment, Font

    bold, centre = Font(bold=True), Alignment(horizontal="center")
    layout = [(1, 1, 3, lines["institution"], bold), (1, 4, 8, lines["nation"], bold),
              (2, 1, 3, lines["office_unit"], bold), (2, 4, 8, lines["motto"], bold),
              (3, 1, 8, lines["title"], Font(bold=True, size=13)),
              (4, 1, 8, f'{lines["form"]} · {lines["period"]} · {lines["unit"]}', None),
              (5, 1, 8, lines["made_at"], Font(italic=True))]
    for row, first, last, text, font in layout:
        ws.merge_cells(start_row=row, start_column=first, end_row=row, end_column=last)
        cell = ws.cell(row=row, column=first, value=text)
        cell.alignment = centre
        if font is not None:
            cell.font = font
    return 5


def _table(ws: Any, row: int, table: Table, w: Words, heading: bool = True) -> tuple[int, int]:
    """Write `table` below `row` (its heading and notes, column titles, rows, total); returns the row of its
    column titles and the last row used."""
    from openpyxl.styles import Font, PatternFill

    if heading:
        row += 1
        ws.cell(row=row, column=1, value=table.heading).font = Font(bold=True, size=12)
        for note in table.notes:
            row += 1
            ws.cell(row=row, column=1, value=note).font = Font(italic=True)
    row += 1
    titles = row
    for col, column in enumerate(table.columns, start=1):
        cell = ws.cell(row=row, column=col, value=column.title)
        cell.font, cell.fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
        if not heading:  # a sheet of its own: its widths are its columns'
            ws.column_dimensions[_letter(col)].width = column.width
    body: Sequence[tuple[Any, ...]] = table.rows or ((w("report.none"),),)
    for values in (*body, *((table.total,) if table.total and table.rows else ())):
        row += 1
        for col, (value, column) in enumerate(zip(values, table.columns, strict=False), start=1):
            cell = ws.cell(row=row, column=col, value=value)
            if value is not None and not isinstance(value, str):
                cell.number_format = NUMBER_FORMATS[column.kind]
            if values is table.total:
                cell.font = Font(bold=True)
    return titles, row


def _charts(summary: Any, daily: Any, places: dict[str, tuple[int, int]], tables: dict[str, Table],
            w: Words) -> None:
    """Native charts over the cells: requests by kind, share within the limit by step, requests per day."""
    from openpyxl.chart import BarChart, LineChart, Reference

    def tidy(chart: Any, title: str, y_title: str) -> Any:
        chart.title, chart.y_axis.title, chart.width, chart.height = title, y_title, 18, 8
        chart.x_axis.delete = chart.y_axis.delete = False  # openpyxl 3.1 hides axes unless told
        return chart

    head, last = places["by_kind"]
    by_kind = tidy(BarChart(), w("report.chart_by_kind"), w("report.requests"))
    by_kind.type = "col"
    for col in (2, 5, 4, 6):  # received, done, rejected, open
        by_kind.add_data(Reference(summary, min_col=col, min_row=head, max_row=last), titles_from_data=True)
    by_kind.set_categories(Reference(summary, min_col=1, min_row=head + 1, max_row=last))
    summary.add_chart(by_kind, "J2")
    head, last = places["steps"]
    if last > head:
        steps = tidy(BarChart(), w("report.chart_steps"), "%")
        steps.type = "bar"
        steps.add_data(Reference(summary, min_col=4, min_row=head, max_row=last), titles_from_data=True)
        steps.set_categories(Reference(summary, min_col=1, min_row=head + 1, max_row=last))
        steps.y_axis.scaling.min, steps.y_axis.scaling.max, steps.y_axis.number_format = 0, 1, "0%"
        steps.x_axis.scaling.orientation = "maxMin"  # the first step on top, as in the table
        steps.y_axis.crosses = "max"  # and the percent axis stays below the bars
        steps.legend = None
        summary.add_chart(steps, "J20")
    days = len(tables["days"].rows)
    if days:
        line = tidy(LineChart(), w("report.chart_daily"), w("report.requests"))
        line.add_data(Reference(daily, min_col=2, max_col=3, min_row=1, max_row=days + 1), titles_from_data=True)
        line.set_categories(Reference(daily, min_col=1, min_row=2, max_row=days + 1))
        line.x_axis.number_format = "dd/mm"
        daily.add_chart(line, "E2")

