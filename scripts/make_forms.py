"""Generate the downloadable forms (templates/forms/) and the sample files the tests read.

Deterministic: run it twice and the bytes are equal (fixed document dates, fixed zip timestamps),
so regenerated files only show up in `git status` when the content changed.

    .venv/bin/python scripts/make_forms.py
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm, Pt
from openpyxl.styles import Alignment, Border, Font, Side
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from edudesk.core.config import InstitutionSettings  # noqa: E402  (the script runs from any directory)

INSTITUTION = InstitutionSettings()  # the built-in defaults: a school edits its copy of the files
TEMPLATES = ROOT / "edudesk" / "templates" / "forms"
FIXTURES = ROOT / "tests" / "fixtures" / "forms"
FIXED_TIME = datetime(2026, 1, 1, 0, 0, 0)
KIND_CELL = "☐ Cấp mới tài khoản        ☐ Cấp lại mật khẩu"

STAFF_ROWS = (
    "Loại yêu cầu", "Họ và tên", "Ngày sinh (ngày/tháng/năm)", "Mã cán bộ", "Đơn vị công tác",
    "Số điện thoại di động (bắt buộc)", "Email cá nhân", "Ghi chú",
)
STUDENT_ROWS = (
    "Loại yêu cầu", "Họ và tên", "Ngày sinh (ngày/tháng/năm)", "Mã số sinh viên", "Lớp", "Khóa",
    "Khoa/Viện/Trường", "Số điện thoại di động (bắt buộc)", "Email cá nhân", "Ghi chú",
)
LIST_COLUMNS = ("Stt", "Mã số SV/HV", "Họ và tên", "Lớp", "Khóa", "Ghi chú")


def deterministic_zip(data: bytes) -> bytes:
    """Rewrite an OOXML zip with fixed timestamps and document dates."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                stamp = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
                body = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", rb"\g<1>" + stamp, body)
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, body)
    return out.getvalue()


def _paragraph(doc, text: str, *, bold: bool = False, size: int = 13, align=None, italic: bool = False):
    p = doc.add_paragraph()
    run = p.add_run(text)
    run.bold, run.italic, run.font.size = bold, italic, Pt(size)
    if align is not None:
        p.alignment = align
    return p


def make_form_docx(code: str, title: str, rows: tuple[str, ...]) -> bytes:
    """BM01/BM02: school header, title, a label|value table, the signature block."""
    doc = Document()
    doc.core_properties.author = "edudesk"
    doc.core_properties.last_modified_by = "edudesk"
    doc.core_properties.title = title
    doc.core_properties.revision = 1
    doc.core_properties.created = doc.core_properties.modified = FIXED_TIME
    style = doc.styles["Normal"]
    style.font.name, style.font.size = "Times New Roman", Pt(13)
    for section in doc.sections:
        section.left_margin = section.right_margin = Cm(2)
    _paragraph(doc, f"{INSTITUTION.name.upper()}\n{INSTITUTION.office_unit.upper()}", bold=True, size=12)
    _paragraph(doc, f"Mẫu {code}", italic=True, size=11, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _paragraph(doc, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
    _paragraph(doc, "Độc lập – Tự do – Hạnh phúc", align=WD_ALIGN_PARAGRAPH.CENTER)
    _paragraph(doc, title, bold=True, size=15, align=WD_ALIGN_PARAGRAPH.CENTER)
    _paragraph(doc, f"Kính gửi: {INSTITUTION.office_unit}", align=WD_ALIGN_PARAGRAPH.CENTER)
    _paragraph(
        doc,
        "Đánh dấu ☒ vào ô loại yêu cầu, điền đầy đủ các dòng dưới đây và gửi tệp này "
        f"về địa chỉ {INSTITUTION.office_address}. Số điện thoại di động là bắt buộc.",
        italic=True, size=11,
    )
    table = doc.add_table(rows=0, cols=2)
    table.style = "Table Grid"
    for label in rows:
        cells = table.add_row().cells
        cells[0].text = label
        cells[0].paragraphs[0].runs[0].bold = True
        cells[1].text = KIND_CELL if label == "Loại yêu cầu" else ""
        cells[0].width, cells[1].width = Cm(6.5), Cm(10.5)
    _paragraph(doc, "")
    _paragraph(doc, "…………, ngày …… tháng …… năm 20……", italic=True, align=WD_ALIGN_PARAGRAPH.RIGHT)
    _paragraph(doc, "Người đề nghị\n(ký và ghi rõ họ tên)", bold=True, align=WD_ALIGN_PARAGRAPH.RIGHT)
    out = io.BytesIO()
    doc.save(out)
    return deterministic_zip(out.getvalue())


def make_list_xlsx() -> bytes:
    """BM-CNTT31: the unit's list of students for new accounts (seed 001)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = INSTITUTION.list_form
    wb.properties.creator = "edudesk"
    wb.properties.created = wb.properties.modified = FIXED_TIME
    bold = Font(name="Times New Roman", bold=True, size=12)
    ws["A1"], ws["D1"] = INSTITUTION.name.upper(), "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
    ws["A2"], ws["D2"] = "ĐƠN VỊ: ", "Độc lập – Tự do – Hạnh phúc"
    ws["F3"] = f"Mẫu {INSTITUTION.list_form}"
    ws["A4"] = "DANH SÁCH ĐỀ NGHỊ CẤP TÀI KHOẢN EMAIL"
    ws["A5"] = "(Kèm theo bản đề nghị ngày ..../..../20....)"
    for ref in ("A1:C1", "D1:F1", "A2:C2", "D2:F2", "A4:F4", "A5:F5"):
        ws.merge_cells(ref)
    for ref in ("A1", "D1", "A2", "A4"):
        ws[ref].font = bold
    ws["A4"].alignment = ws["A5"].alignment = Alignment(horizontal="center")
    thin = Side(style="thin")
    for col, label in enumerate(LIST_COLUMNS, start=1):
        cell = ws.cell(row=7, column=col, value=label)
        cell.font, cell.alignment = bold, Alignment(horizontal="center", vertical="center")
        cell.border = Border(top=thin, bottom=thin, left=thin, right=thin)
    for row in range(8, 58):
        for col in range(1, len(LIST_COLUMNS) + 1):
            ws.cell(row=row, column=col).border = Border(top=thin, bottom=thin, left=thin, right=thin)
            ws.cell(row=row, column=col).number_format = "@"  # IDs stay text: no 2.02E+07, no lost zeros
    for letter, width in zip("ABCDEF", (6, 16, 30, 14, 8, 20), strict=True):
        ws.column_dimensions[letter].width = width
    out = io.BytesIO()
    wb.save(out)
    return deterministic_zip(out.getvalue())


def make_legacy_docx() -> bytes:
    """A BM02 typed in the TCVN3 font .VnTime, as twenty-year-old Word files are."""
    doc = Document()
    doc.core_properties.created = doc.core_properties.modified = FIXED_TIME
    doc.core_properties.last_modified_by = doc.core_properties.author = "edudesk"
    _paragraph(doc, "MTT.QT06.BM02")
    table = doc.add_table(rows=0, cols=2)
    for label, value in (
        ("Hä vµ tªn", "NguyÔn V¨n An"), ("Ngµy sinh", "05/03/2003"), ("M· sè sinh viªn", "20201234"),
        ("Líp", "Khoa häc m¸y tÝnh 01"), ("Sè ®iÖn tho¹i di ®éng", "0912 345 678"),
    ):
        cells = table.add_row().cells
        for cell, text in zip(cells, (label, value), strict=True):
            run = cell.paragraphs[0].add_run(text)
            run.font.name = ".VnTime"
    out = io.BytesIO()
    doc.save(out)
    return deterministic_zip(out.getvalue())


def _text(x: float, y: float, text: str) -> bytes:
    return f"BT /F1 11 Tf {x} {y} Td ({text}) Tj ET\n".encode("latin-1")


def _rect(*corners: float) -> ArrayObject:
    return ArrayObject([FloatObject(c) for c in corners])


def make_pdf_form(values: dict[str, str], ticks: dict[str, bool]) -> bytes:
    """A one-page AcroForm: text fields named like the BM02 labels, two request-type boxes.

    Labels are drawn in ASCII with a standard font (no embedded Vietnamese font needed); the
    field values are real Unicode strings, which is what the extractor reads.
    """
    writer = PdfWriter()
    page = writer.add_blank_page(595, 842)
    font = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    })
    page[NameObject("/Resources")] = DictionaryObject({
        NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})
    })
    content = _text(60, 790, "DON XIN CAP TAI KHOAN THU DIEN TU CHO SINH VIEN (MTT.QT06.BM02)")
    fields, annots = ArrayObject(), ArrayObject()
    y = 740
    for name, value in values.items():
        content += _text(60, y + 5, name.replace("_", " "))
        widget = DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Tx"), NameObject("/T"): TextStringObject(name),
            NameObject("/V"): TextStringObject(value), NameObject("/F"): NumberObject(4),
            NameObject("/Rect"): _rect(230, y, 540, y + 20),
            NameObject("/DA"): TextStringObject("/F1 11 Tf 0 g"), NameObject("/P"): page.indirect_reference,
        })
        ref = writer._add_object(widget)
        fields.append(ref)
        annots.append(ref)
        y -= 34
    for name, on in ticks.items():
        content += _text(60, y + 5, name.replace("_", " "))
        state = NameObject("/Yes" if on else "/Off")
        box = DictionaryObject({
            NameObject("/Type"): NameObject("/Annot"), NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Btn"), NameObject("/T"): TextStringObject(name),
            NameObject("/V"): state, NameObject("/AS"): state, NameObject("/F"): NumberObject(4),
            NameObject("/Rect"): _rect(230, y, 248, y + 18),
            NameObject("/P"): page.indirect_reference,
        })
        ref = writer._add_object(box)
        fields.append(ref)
        annots.append(ref)
        y -= 30
    stream = DecodedStreamObject()
    stream.set_data(content)
    page[NameObject("/Contents")] = writer._add_object(stream)
    page[NameObject("/Annots")] = annots
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject({
        NameObject("/Fields"): fields, NameObject("/NeedAppearances"): BooleanObject(True),
    })
    writer.add_metadata(
        {"/Title": "MTT.QT06.BM02", "/Producer": "edudesk", "/CreationDate": "D:20260101000000Z"}
    )
    writer._ID = None  # a random file ID would make every run differ
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


SAMPLE_PDF_VALUES = {
    "ho_va_ten": "Trần Thị Bình", "ngay_sinh": "17.11.2004", "ma_so_sinh_vien": "20225678",
    "lop": "Điện tử 02", "khoa": "K67", "so_dien_thoai_di_dong": "+84 98 765 4321",
    "email_ca_nhan": "binh.tran@gmail.com",
}


def main() -> int:
    """Write templates/forms/* and tests/fixtures/forms/*."""
    TEMPLATES.mkdir(parents=True, exist_ok=True)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    files = {
        TEMPLATES / "BM01.docx": make_form_docx(
            INSTITUTION.staff_form, "ĐƠN XIN CẤP TÀI KHOẢN THƯ ĐIỆN TỬ CHO CÁN BỘ", STAFF_ROWS
        ),
        TEMPLATES / "BM02.docx": make_form_docx(
            INSTITUTION.student_form, "ĐƠN XIN CẤP TÀI KHOẢN THƯ ĐIỆN TỬ CHO SINH VIÊN", STUDENT_ROWS
        ),
        TEMPLATES / "BM-CNTT31.xlsx": make_list_xlsx(),
        FIXTURES / "bm02_tcvn3.docx": make_legacy_docx(),
        FIXTURES / "bm02_acroform.pdf": make_pdf_form(
            SAMPLE_PDF_VALUES, {"cap_moi": False, "cap_lai_mat_khau": True}
        ),
    }
    for path, data in files.items():
        path.write_bytes(data)
        print(f"{path.relative_to(ROOT)}  {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
