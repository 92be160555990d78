"""Forms pasted into an HTML mail: the table cells, as the .xlsx and .docx readers see rows of cells.

Gmail wraps a pasted table in `<div dir="ltr"><table>`; Outlook writes `<table class=MsoTableGrid>` with one
or more `<p class=MsoNormal><span>` per cell and `&nbsp;` for blanks; forms are often a layout table with the
real table nested in one of its cells. Each table is read on its own (a nested table's text is not its outer
cell's text); `colspan` repeats nothing and pads with blanks, so columns keep their places.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from edudesk.core.forms.records import FormResult, is_person
from edudesk.core.forms.table import read_list, read_pairs

MAX_HTML_CHARS = 400_000  # the body reader's bound, doubled for markup
MAX_TABLES = 50
MAX_CELLS = 20_000  # a bound on work per mail; a pasted form has tens, a list a few thousand
MAX_COLSPAN = 50

Table = list[list[str]]


class _Tables(HTMLParser):
    """Collects every table's rows of cell texts; tables nested in a cell are collected separately."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self._open: list[tuple[Table, list[str] | None, list[str] | None]] = []  # (rows, row, cell parts)
        self._skip = 0
        self._cells = 0
        self._colspan = 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Tables, rows and cells open; blocks inside a cell start a new line of its text."""
        if tag in ("script", "style", "head", "title"):
            self._skip += 1
        elif tag == "table":
            self._close_cell_text(nested=True)
            self._open.append(([], None, None))
        elif not self._open:
            return
        elif tag == "tr":
            self._end_row()
            rows, _, _ = self._open[-1]
            self._open[-1] = (rows, [], None)
        elif tag in ("td", "th"):
            self._end_cell()
            rows, row, _ = self._open[-1]
            if row is None:  # a cell outside <tr> (sloppy markup): it starts a row
                row = []
            span = next((v for k, v in attrs if k == "colspan" and v), "1")
            self._colspan = min(MAX_COLSPAN, int(span)) if span.strip().isdigit() and int(span) > 0 else 1
            self._open[-1] = (rows, row, [])
        elif tag in ("br", "p", "div", "li"):
            self._text("\n")

    def handle_endtag(self, tag: str) -> None:
        """Cells, rows and tables close (a missing </td> or </tr> is closed by the next one)."""
        if tag in ("script", "style", "head", "title"):
            self._skip = max(0, self._skip - 1)
        elif not self._open:
            return
        elif tag in ("td", "th"):
            self._end_cell()
        elif tag == "tr":
            self._end_row()
        elif tag == "table":
            self._end_row()
            rows, _, _ = self._open.pop()
            if rows and len(self.tables) < MAX_TABLES:
                self.tables.append(rows)
        elif tag in ("p", "div"):
            self._text("\n")

    def handle_data(self, data: str) -> None:
        """Text of the innermost open cell."""
        if not self._skip:
            self._text(data)

    def _text(self, data: str) -> None:
        if self._open and self._open[-1][2] is not None:
            self._open[-1][2].append(data)

    def _close_cell_text(self, nested: bool) -> None:
        if nested:  # the outer cell goes on after the nested table: a line break keeps texts apart
            self._text("\n")

    def _end_cell(self) -> None:
        rows, row, parts = self._open[-1]
        if parts is None or row is None:
            return
        lines = (re.sub(r"[ \t\u00a0\u200b]+", " ", line).strip() for line in "".join(parts).split("\n"))
        text = "\n".join(line for line in lines if line)
        self._cells += 1
        if self._cells <= MAX_CELLS:
            row.append(text)
            row.extend([""] * (self._colspan - 1))
        self._colspan = 1
        self._open[-1] = (rows, row, None)

    def _end_row(self) -> None:
        self._end_cell()
        rows, row, _ = self._open[-1]
        if row is not None and any(c for c in row):
            rows.append(row)
        self._open[-1] = (rows, None, None)


def html_tables(html: str) -> list[Table]:
    """Every table of an HTML body as rows of cell texts (innermost tables first); never raises."""
    if "<t" not in html.lower():
        return []
    parser = _Tables()
    try:
        parser.feed(html[:MAX_HTML_CHARS])
        parser.close()
    except Exception:  # html.parser is lenient; an odd input costs the tables, never the mail
        return parser.tables
    while parser._open:  # unclosed tables (a truncated mail) still count
        parser.handle_endtag("table")
    return parser.tables


def read_html_tables(html: str, max_rows: int) -> tuple[FormResult, bool]:
    """(result, truncated): persons in the HTML tables of a body (lists with a header row, or label | value
    forms), and the other cell texts for classification; empty when no table holds a person."""
    result = FormResult("html")
    truncated = False
    form: dict[str, object] = {}  # a form split over several tables (a title table, then the fields)
    for rows in html_tables(html):
        found = read_list(rows, max_rows)
        if found is not None and found[0].records:
            result.records.extend(found[0].records)
            result.texts.extend(found[0].texts)
            result.is_list, truncated = True, truncated or found[1]
            result.unit = result.unit or found[0].unit
            continue
        # a cell may hold "Họ và tên: An" or several lines of label and value (Outlook's <p> per line)
        pairs = read_pairs([[line for cell in row for line in (cell.split("\n") if ":" in cell else [cell])]
                            for row in rows])
        result.texts.extend(pairs.texts)
        for key, value in (pairs.records[0] if pairs.records else {}).items():
            if value not in (None, "") and form.get(key) in (None, ""):
                form[key] = value
    if not result.records and is_person(form):
        result.records.append(form)
        result.unit = str(form.get("unit") or "")
    return result, truncated
