"""The BM03 report as a PDF (fpdf2, A4): the header of a Vietnamese administrative document (the institution
and office unit left, the nation and its motto right), the title and period, the same tables as the workbook
and its three charts as images (matplotlib PNGs), "Trang x/y" at the foot of each page.

The text is real text in DejaVu Sans (the project's font with every Vietnamese letter), so it can be searched,
copied and read back (tests extract it with pypdf).
"""

from __future__ import annotations

import io
from pathlib import Path

from fpdf import FPDF, FontFace

from edudesk.core.reports.charts import bm03_charts, bundled_font, report_words
from edudesk.core.reports.figures import Bm03Figures
from edudesk.core.reports.values import nfc as _t
from edudesk.core.reports.values import shown
from edudesk.core.reports.xlsx import Table, bm03_tables, header_lines
from edudesk.core.signing import stamp
from edudesk.core.words import Words

FONT = "DejaVu"
WIDTH = 180.0  # mm between the margins of an A4 page
CHARTS = ("by_kind", "steps", "daily")
# Column widths (mm) of each table, summing to WIDTH.
WIDTHS = {"groups": (34, 20, 38, 17.6, 17.6, 17.6, 17.6, 17.6), "by_kind": (55, 25, 25, 25, 25, 25),
          "steps": (60, 26, 22, 24, 22, 26), "slowest": (60, 20, 40, 40, 20), "accounts": (120, 60),
          "problems": (150, 30), "overdue": (16, 30, 34, 26, 26, 26, 22)}


class _ReportPage(FPDF):
    """A4 pages whose foot says "Trang x/y" (or "Page x/y")."""

    words: Words

    def footer(self) -> None:
        """The page number of the total."""
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.set_text_color(110)
        self.cell(0, 5, self.words("report.page", page=self.page_no(), pages="{nb}"), align="C")
        self.set_text_color(0)


def _bold_font() -> Path | None:
    """DejaVu Sans Bold: the system's copy, else matplotlib's (a dependency); None to use the regular face."""
    system = stamp.SYSTEM_FONT.with_name("DejaVuSans-Bold.ttf")
    if system.exists():
        return system
    bundled = bundled_font("DejaVuSans-Bold.ttf")
    return bundled if bundled.exists() else None


def bm03_pdf(fig: Bm03Figures, lang: str = "vi") -> bytes:
    """The BM03 report as PDF bytes: header, title and period, the tables, the three charts."""
    w = report_words(lang)
    charts = bm03_charts(fig, lang, "png")
    pdf = _ReportPage(format="A4")
    pdf.words = w
    pdf.set_creation_date(fig.generated_at)
    pdf.set_title(_t(f"{fig.form} — {w('report.title')}"))
    pdf.set_author(_t(fig.institution))
    pdf.set_creator("edudesk")
    pdf.set_lang("vi-VN" if w.lang == "vi" else "en")
    pdf.add_font(FONT, "", str(stamp.font_path()))
    bold = _bold_font()
    pdf.add_font(FONT, "B", str(bold or stamp.font_path()))
    pdf.set_margins(15, 12, 15)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    _header(pdf, header_lines(fig, lang))
    for table in bm03_tables(fig, lang):
        if table.key in WIDTHS:
            _table(pdf, table, w)
    _charts(pdf, charts, w)
    return bytes(pdf.output())


def _header(pdf: FPDF, lines: dict[str, str]) -> None:
    """Institution and office unit on the left, the nation and motto on the right; then title and period."""
    top = pdf.get_y()
    pdf.set_font(FONT, size=9.5)
    pdf.multi_cell(85, 5, _t(lines["institution"]), align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, "B", 9.5)
    pdf.multi_cell(85, 5, _t(lines["office_unit"]), align="C", new_x="LEFT", new_y="NEXT")
    pdf.set_font(FONT, size=8.5)
    pdf.multi_cell(85, 5, _t(lines["form"]), align="C", new_x="LEFT", new_y="NEXT")
    left_end = pdf.get_y()
    pdf.set_xy(100, top)
    pdf.set_font(FONT, "B", 9.5)
    pdf.multi_cell(95, 5, _t(lines["nation"]), align="C", new_x="LEFT", new_y="NEXT")
    motto_width = pdf.get_string_width(_t(lines["motto"]))
    pdf.multi_cell(95, 5, _t(lines["motto"]), align="C", new_x="LEFT", new_y="NEXT")
    pdf.line(147.5 - motto_width / 2, pdf.get_y(), 147.5 + motto_width / 2, pdf.get_y())  # the motto's rule
    pdf.set_xy(15, max(left_end, pdf.get_y()) + 6)
    pdf.set_font(FONT, "B", 13)
    pdf.multi_cell(WIDTH, 6.5, _t(lines["title"].upper()), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=10)
    for key in ("period", "unit"):
        pdf.cell(WIDTH, 5.5, _t(lines[key]), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=8.5)
    pdf.cell(WIDTH, 5, _t(lines["made_at"]), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _table(pdf: FPDF, table: Table, w: Words) -> None:
    """A heading, then the table (numbers right-aligned) or "none"."""
    if pdf.get_y() > pdf.h - 45:  # a heading alone at the foot of a page reads badly
        pdf.add_page()
    pdf.set_font(FONT, "B", 10.5)
    pdf.cell(WIDTH, 7, _t(table.heading), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=8)
    for note in table.notes:
        pdf.multi_cell(WIDTH, 4.5, _t(note), new_x="LMARGIN", new_y="NEXT")
    if not table.rows:
        pdf.cell(WIDTH, 5.5, _t(w("report.none")), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        return
    align = tuple("L" if c.kind == "text" else "R" for c in table.columns)
    lang = w.lang
    with pdf.table(col_widths=WIDTHS[table.key], text_align=align, line_height=4.4, padding=1,
                   headings_style=FontFace(emphasis="BOLD", fill_color=(221, 235, 247))) as grid:
        grid.row([_t(c.title) for c in table.columns])
        for values in table.rows:
            grid.row([shown(v, c.kind, lang) for v, c in zip(values, table.columns, strict=True)])
        if table.total is not None:
            pdf.set_font(FONT, "B", 8)
            grid.row([shown(v, c.kind, lang) for v, c in zip(table.total, table.columns, strict=True)])
            pdf.set_font(FONT, size=8)
    pdf.ln(3)


def _charts(pdf: FPDF, charts: dict[str, bytes], w: Words) -> None:
    """The charts, full width, each on the page where it fits whole."""
    if pdf.get_y() > pdf.h - 120:  # the heading goes with the first chart
        pdf.add_page()
    pdf.set_font(FONT, "B", 10.5)
    pdf.cell(WIDTH, 7, _t(w("report.charts")), new_x="LMARGIN", new_y="NEXT")
    for key in CHARTS:
        pdf.image(io.BytesIO(charts[key]), x=pdf.l_margin, w=WIDTH)
        pdf.ln(4)
