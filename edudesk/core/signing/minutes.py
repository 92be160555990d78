"""The minutes (biên bản) of a withdrawal or an adjustment of an issued record: one A4 page made with fpdf2 like
the record PDFs — the school, "BIÊN BẢN THU HỒI HỌC BẠ SỐ" or "BIÊN BẢN ĐIỀU CHỈNH HỌC BẠ SỐ" with its number,
the student, class and year, the revision concerned (by its SHA-256), the reason, the place-and-date line of
recordtext.py (`[records] place`, the local date the minutes were made) — and, below,
one signature box per member of the leadership, every field made before the first signature (pyHanko)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO

from fpdf import FPDF
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, SigFieldSpec, append_signature_field

from edudesk.core.signing import stamp
from edudesk.core.signing.pdfs import CREATED, FONT
from edudesk.core.signing.recordtext import date_line

TITLES = {"withdrawal": "BIÊN BẢN THU HỒI HỌC BẠ SỐ", "adjustment": "BIÊN BẢN ĐIỀU CHỈNH HỌC BẠ SỐ"}
ACTS = {"withdrawal": "thu hồi", "adjustment": "điều chỉnh"}
MM = 72 / 25.4  # PDF points per millimetre
PAGE_H_MM = 297
BOX_W, BOX_H, GAP, COLUMNS = 56.0, 17.0, 6.0, 3  # signature boxes, in mm
ROW_H = BOX_H + 12.0  # a box and its two-line label


@dataclass(frozen=True)
class Signer:
    """One member of the leadership who signs the minutes: the field's name and the label under the box."""

    field: str
    label: str  # "Hiệu trưởng — Phạm Quốc Hùng"


@dataclass(frozen=True)
class MinutesContent:
    """What the minutes say."""

    kind: str  # "withdrawal" | "adjustment"
    school: str
    number: str  # "01/2025-2026/BB-THHB"
    when: datetime  # when the minutes were made
    place: str  # `[records] place`: "Hà Nội"
    timezone: str  # `[general] timezone`: the date is the local one
    student_code: str
    student_name: str
    class_name: str
    year: str
    revision: int  # the record's revision concerned (0 = as first made)
    sha256: str  # of that revision's PDF
    reason: str
    requested_by: str
    new_sha256: str = ""  # adjustment: the corrected record's file
    principal_last: bool = True  # `[records] leadership_order`: said under the heading of the boxes


def _t(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def minutes_pdf(content: MinutesContent, signers: Sequence[Signer]) -> tuple[bytes, bytes]:
    """The minutes as made (no fields) and with the leadership's signature fields, in signing-box order."""
    pdf = FPDF(format="A4")
    pdf.set_creation_date(CREATED)
    pdf.set_title(_t(f"{TITLES[content.kind].capitalize()} — {content.student_name} — {content.number}"))
    pdf.set_author(_t(content.school))
    pdf.set_lang("vi-VN")
    pdf.add_font(FONT, "", str(stamp.font_path()))
    pdf.set_margins(20, 15, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    _header(pdf, content)
    _body(pdf, content)
    pdf.ln(4)
    rows = (len(signers) + COLUMNS - 1) // COLUMNS
    if pdf.get_y() + 10 + rows * ROW_H > PAGE_H_MM - 20:
        pdf.add_page()
    pdf.set_font(FONT, size=11)
    pdf.cell(0, 7, "ĐẠI DIỆN BAN GIÁM HIỆU", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=8)
    pdf.cell(0, 5, "(ký số; hiệu trưởng ký sau cùng)" if content.principal_last else "(ký số)", align="C",
             new_x="LMARGIN", new_y="NEXT")
    page, top = pdf.page_no() - 1, pdf.get_y() + 2
    boxes = []
    for n, signer in enumerate(signers):
        row, col = divmod(n, COLUMNS)
        width = min(COLUMNS, len(signers) - row * COLUMNS) * (BOX_W + GAP) - GAP
        x = (210 - width) / 2 + col * (BOX_W + GAP)
        y = top + row * ROW_H
        pdf.set_draw_color(150)
        pdf.rect(x, y, BOX_W, BOX_H)
        pdf.set_xy(x, y + BOX_H + 1)
        pdf.multi_cell(BOX_W, 4, _t(signer.label), align="C")
        boxes.append((signer.field, (x * MM, (PAGE_H_MM - y - BOX_H) * MM, (x + BOX_W) * MM, (PAGE_H_MM - y) * MM)))
    plain = bytes(pdf.output())
    return plain, _with_fields(plain, page, boxes)


def _header(pdf: FPDF, c: MinutesContent) -> None:
    pdf.set_font(FONT, size=10)
    top = pdf.get_y()
    pdf.multi_cell(80, 5, _t(f"{c.school.upper()}\nSố: {c.number}"), align="C")
    pdf.set_xy(95, top)
    pdf.multi_cell(95, 5, "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập – Tự do – Hạnh phúc", align="C")
    pdf.set_x(95)
    pdf.set_font(FONT, size=9)
    pdf.cell(95, 6, _t(date_line(c.place or "…", c.when, c.timezone)), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font(FONT, size=15)
    pdf.cell(0, 9, TITLES[c.kind], align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _body(pdf: FPDF, c: MinutesContent) -> None:
    act = ACTS[c.kind]
    pdf.set_font(FONT, size=10.5)
    para = (
        "Căn cứ quy chế quản lý, khai thác, sử dụng học bạ số của nhà trường: mọi thay đổi sau khi học bạ đã được "
        "ký số phải được thực hiện theo quy trình điều chỉnh dữ liệu và có biên bản xác nhận của Ban giám hiệu.",
        f"Hôm nay, {date_line('', c.when, c.timezone).lower()}, Ban giám hiệu {c.school} lập biên bản {act} học bạ "
        f"số của học sinh:",
    )
    for text in para:
        pdf.multi_cell(0, 6, _t(text), new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
    for line in (f"Họ và tên học sinh: {c.student_name}", f"Mã học sinh: {c.student_code}",
                 f"Lớp: {c.class_name} — Năm học: {c.year}",
                 f"Học bạ số đã phát hành: bản lập lần {c.revision + 1}, mã băm SHA-256:"):
        pdf.cell(8)
        pdf.multi_cell(0, 6, _t(f"– {line}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=8)
    pdf.cell(12)
    pdf.cell(0, 5, c.sha256, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=10.5)
    pdf.ln(2)
    pdf.multi_cell(0, 6, _t(f"Lý do {act}: {c.reason}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    if c.kind == "withdrawal":
        after = ("Kể từ khi biên bản này được Ban giám hiệu ký số, học bạ số nêu trên bị thu hồi: không còn giá trị "
                 "sử dụng và chỉ được lưu giữ làm hồ sơ.")
    else:
        after = ("Kể từ khi biên bản này được Ban giám hiệu ký số, học bạ được lập lại từ bản đã điều chỉnh (mã băm "
                 f"SHA-256 của tệp: {c.new_sha256[:16]}…) và được ký số lại theo đúng trình tự: giáo viên bộ môn, giáo "
                 "viên chủ nhiệm, ban giám hiệu, ký phát hành. Bản học bạ trước được lưu giữ làm hồ sơ.")
    pdf.multi_cell(0, 6, _t(after), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.multi_cell(0, 6, _t(f"Người đề nghị: {c.requested_by}"), new_x="LMARGIN", new_y="NEXT")


def _with_fields(pdf: bytes, page: int, boxes: Sequence[tuple[str, tuple[float, float, float, float]]]) -> bytes:
    """The minutes with one locked signature field per box (incremental update): each signature locks the
    document but the fields still to be signed after it."""
    writer = IncrementalPdfFileWriter.from_reader(PdfFileReader(BytesIO(pdf)))
    root = writer.root
    if "/AcroForm" not in root:
        root[generic.NameObject("/AcroForm")] = writer.add_object(generic.DictionaryObject(
            {generic.NameObject("/Fields"): generic.ArrayObject()}))
        writer.update_root()
    stamp.embed_stamp_font(writer)
    names = [name for name, _box in boxes]
    for name, box in boxes:
        others = [n for n in names if n != name]
        lock = FieldMDPSpec(FieldMDPAction.EXCLUDE, fields=others) if others else FieldMDPSpec(FieldMDPAction.ALL)
        x1, y1, x2, y2 = (round(v) for v in box)
        append_signature_field(writer, SigFieldSpec(name, on_page=page, box=(x1, y1, x2, y2), field_mdp_spec=lock))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()
