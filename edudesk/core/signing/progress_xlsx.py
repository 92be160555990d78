"""The signing progress as an .xlsx workbook (openpyxl): per class and stage, who is blocking, and the progress
per day with a native Excel line chart. Real numbers, real dates (shown dd/mm/yyyy hh:mm, local time), Vietnamese
first, English complete. Teachers' names and counts only: no student data."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.chart import LineChart, Reference
from openpyxl.chart.axis import ChartLines, DateAxis, NumericAxis, Scaling
from openpyxl.chart.data_source import NumFmt
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from edudesk.core.signing.progress import Progress, StageRow
from edudesk.core.words import language, words

TIME = "dd/mm/yyyy hh:mm"
DAY = "dd/mm/yyyy"
SHARE = "0.0%"
WORDS = {
    "vi": {
        "title": "Tiến độ ký học bạ số — năm học {year}", "made_at": "Lập lúc {when}",
        "sheet_progress": "Tiến độ", "sheet_waiting": "Đang chờ", "sheet_days": "Theo ngày",
        "class": "Lớp", "stage": "Bước", "records": "Số học bạ", "done": "Đã xong", "waiting": "Đang chờ ký",
        "overdue": "Quá hạn", "later": "Chưa đến lượt", "returned": "Đang báo sai sót", "signed": "Chữ ký đã có",
        "signatures": "Chữ ký cần có", "share": "Tỉ lệ hoàn thành", "deadline": "Hạn ký",
        "whole_school": "Toàn trường", "teacher": "Giáo viên", "subjects": "Môn", "to_sign": "Số học bạ chờ ký",
        "since": "Chờ từ", "day": "Ngày", "day_signed": "Chữ ký trong ngày", "cumulative": "Chữ ký cộng dồn",
        "chart": "Tỉ lệ chữ ký đã hoàn thành theo ngày",
    },
    "en": {
        "title": "Digital school records signing progress — school year {year}", "made_at": "Made at {when}",
        "sheet_progress": "Progress", "sheet_waiting": "Waiting", "sheet_days": "By day",
        "class": "Class", "stage": "Stage", "records": "Records", "done": "Done", "waiting": "Waiting to sign",
        "overdue": "Overdue", "later": "Not their turn yet", "returned": "Error reported",
        "signed": "Signatures made", "signatures": "Signatures needed", "share": "Share done", "deadline": "Deadline",
        "whole_school": "Whole school", "teacher": "Teacher", "subjects": "Subjects", "to_sign": "Records to sign",
        "since": "Waiting since", "day": "Day", "day_signed": "Signatures that day",
        "cumulative": "Signatures so far", "chart": "Share of signatures done, by day",
    },
}
COLUMNS = ("class", "stage", "records", "done", "waiting", "overdue", "later", "returned", "signed", "signatures",
           "share", "deadline")


def progress_words(lang: str | None) -> dict[str, str]:
    """The workbook's (and the dashboard's) words of a language ("en", or Vietnamese)."""
    return WORDS[language(lang)]


def _local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A moment as the office's wall-clock time, without zone (Excel has none)."""
    return value.astimezone(zone).replace(tzinfo=None) if value is not None else None


def _header(sheet: Worksheet, names: list[str], widths: tuple[int, ...]) -> None:
    sheet.append(names)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"
    for i, width in enumerate(widths, start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=i).column_letter].width = width


def _formats(sheet: Worksheet, column: int, fmt: str) -> None:
    for (cell,) in sheet.iter_rows(min_row=2, min_col=column, max_col=column):
        cell.number_format = fmt


def _progress_sheet(sheet: Worksheet, progress: Progress, lang: str, zone: ZoneInfo) -> None:
    w, stages = WORDS[lang], words(lang).tree("rec")["stages"]
    _header(sheet, [w[c] for c in COLUMNS], (10, 22, 11, 10, 12, 10, 14, 16, 13, 13, 15, 18))

    def add(row: StageRow, name: str) -> None:
        sheet.append([name, stages[row.stage], row.records, row.done, row.waiting, row.overdue, row.later,
                      row.returned, row.signed, row.signatures, row.share, _local(row.deadline, zone)])

    for row in progress.rows:
        add(row, row.class_name)
    for row in progress.stage_totals():
        add(row, w["whole_school"])
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
    _formats(sheet, COLUMNS.index("share") + 1, SHARE)
    _formats(sheet, COLUMNS.index("deadline") + 1, TIME)
    sheet.auto_filter.ref = f"A1:L{sheet.max_row}"


def _waiting_sheet(sheet: Worksheet, progress: Progress, lang: str, zone: ZoneInfo) -> None:
    w, stages = WORDS[lang], words(lang).tree("rec")["stages"]
    _header(sheet, [w[c] for c in ("teacher", "class", "stage", "subjects", "to_sign", "overdue", "since",
                                   "deadline")], (26, 10, 22, 22, 16, 10, 18, 18))
    for b in progress.blockers:
        sheet.append([b.teacher, b.class_name, stages[b.stage], b.subjects, b.records, b.overdue,
                      _local(b.since, zone), _local(b.deadline, zone)])
    _formats(sheet, 7, TIME)
    _formats(sheet, 8, TIME)


def _days_sheet(sheet: Worksheet, progress: Progress, lang: str) -> None:
    w = WORDS[lang]
    _header(sheet, [w["day"], w["day_signed"], w["cumulative"], w["share"]], (12, 18, 18, 16))
    for d in progress.days:
        sheet.append([d.day, d.signed, d.cumulative, d.share])
    _formats(sheet, 1, DAY)
    _formats(sheet, 4, SHARE)
    if not progress.days:
        return
    chart = LineChart()
    chart.title = w["chart"]
    chart.height, chart.width = 9, 18
    # A date axis under a 0–100 % axis; each names the other (the ids openpyxl's own date-axis example uses).
    # delete=False: recent Excel hides an axis that does not say so.
    chart.y_axis = NumericAxis(axId=100, crossAx=500, title=w["share"], numFmt=NumFmt("0%", False), delete=False,
                               scaling=Scaling(min=0, max=1), majorGridlines=ChartLines())
    chart.x_axis = DateAxis(axId=500, crossAx=100, title=w["day"], numFmt=NumFmt("dd/mm", False), delete=False,
                            majorTimeUnit="days", axPos="b")
    last = sheet.max_row
    chart.add_data(Reference(sheet, min_col=4, min_row=1, max_row=last), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=last))
    chart.legend = None
    sheet.add_chart(chart, "F2")


def export_progress(progress: Progress, lang: str = "vi") -> bytes:
    """The workbook: "Tiến độ" (class × stage), "Đang chờ" (who is blocking), "Theo ngày" (with its chart)."""
    lang = language(lang)
    w, zone = WORDS[lang], ZoneInfo(progress.timezone)
    book = Workbook()
    first = book.active
    assert first is not None  # a new workbook has its one sheet
    first.title = w["sheet_progress"]
    _progress_sheet(first, progress, lang, zone)
    _waiting_sheet(book.create_sheet(w["sheet_waiting"]), progress, lang, zone)
    _days_sheet(book.create_sheet(w["sheet_days"]), progress, lang)
    made = progress.generated_at.astimezone(zone).strftime("%d/%m/%Y %H:%M")
    book.properties.title = w["title"].format(year=progress.year)
    book.properties.subject = w["made_at"].format(when=made)
    for sheet in book.worksheets:
        sheet.oddHeader.center.text = f"{w['title'].format(year=progress.year)} — {w['made_at'].format(when=made)}"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def progress_filename(progress: Progress, lang: str = "vi") -> str:
    """"tien-do-ky-hoc-ba-2025-2026.xlsx" (ASCII: it travels in a Content-Disposition header)."""
    stem = "signing-progress" if language(lang) == "en" else "tien-do-ky-hoc-ba"
    year = "".join(ch for ch in progress.year if ch.isascii() and (ch.isalnum() or ch == "-")) or "all"
    return f"{stem}-{year}.xlsx"
