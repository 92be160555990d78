"""Record PDFs: the page a school's records software exports (`record_pdf`, for the demo, tests and bench),
and the signature page that `add_signature_fields` appends to it (core/signing/sigpage.py): one labelled box
per signer, every field made before the first signature and locked so that, once signed, only the fields
still to come may change (the place-and-date line too, until the issuing signature fills it)."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO

from fpdf import FPDF, FontFace
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import FieldMDPAction, FieldMDPSpec, SigFieldSpec, append_signature_field, enumerate_sig_fields

from edudesk.core.errors import EdudeskError
from edudesk.core.signing import sigpage, stamp
from edudesk.core.signing.recordtext import ACADEMIC, CONDUCT, LEVELS, page_label, result_level
from edudesk.core.signing.spec import FieldSpec, Stage

# A fixed creation date: the same content gives the same bytes (records are compared and re-made).
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
FONT = "DejaVu"


class RecordPdfError(EdudeskError):
    """A record PDF that cannot be made or given signature fields (not a PDF, encrypted, already signed)."""

    code = "record_pdf"


@dataclass(frozen=True)
class SubjectScore:
    """One subject row of a record: the averages of both terms and the year, and the teacher's comment."""

    subject: str
    teacher: str
    hk1: str
    hk2: str
    whole_year: str
    comment: str = ""


@dataclass(frozen=True)
class RecordContent:
    """What a school's records software prints on a student's yearly record (Học bạ)."""

    school: str
    year: str
    class_name: str
    student_code: str
    student_name: str
    birth_date: str
    gender: str
    homeroom: str
    scores: tuple[SubjectScore, ...]
    conduct: str
    academic: str
    homeroom_comment: str


def _t(text: str) -> str:
    # NFC: fpdf2 writes precomposed letters; NFD input (mac exports) would show loose combining marks.
    return unicodedata.normalize("NFC", text)


class _RecordPage(FPDF):
    def footer(self) -> None:
        # No page number here: "Trang x/y" goes on every page when the signature page is appended
        # (sigpage.number_pages), counted over the final document.
        self.set_y(-12)
        self.set_font(FONT, size=7)
        self.set_text_color(110)
        self.cell(0, 5, "Xuất từ phần mềm quản lý học bạ", align="C")


def record_pdf(content: RecordContent) -> bytes:
    """A student's yearly record as a school's records software exports it (A4, DejaVu Sans, no fields)."""
    if not content.student_name.strip() or not content.scores:
        raise RecordPdfError("Học bạ cần có họ tên học sinh và ít nhất một môn học.", code="record_content")
    for term, level in ((CONDUCT, content.conduct), (ACADEMIC, content.academic)):
        if result_level(level) is None:
            raise RecordPdfError(f"{term} \"{level}\" không phải một mức của Thông tư 22/2021 "
                                 f"({', '.join(LEVELS)}).", code="record_content")
    pdf = _RecordPage(format="A4")
    pdf.set_creation_date(CREATED)
    pdf.set_title(_t(f"Học bạ — {content.student_name} — {content.class_name} — {content.year}"))
    pdf.set_author(_t(content.school))
    pdf.set_creator("Phần mềm quản lý học bạ")
    pdf.set_lang("vi-VN")
    pdf.add_font(FONT, "", str(stamp.font_path()))
    pdf.set_margins(15, 12, 15)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_page()
    _header(pdf, content)
    _scores(pdf, content.scores)
    _results(pdf, content)
    return bytes(pdf.output())


def _header(pdf: FPDF, c: RecordContent) -> None:
    pdf.set_font(FONT, size=9)
    top = pdf.get_y()
    pdf.multi_cell(85, 5, _t(f"{c.school.upper()}\nMã học sinh: {c.student_code}"), align="C")
    pdf.set_xy(100, top)
    pdf.multi_cell(95, 5, "CỘNG HOÀ XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập – Tự do – Hạnh phúc", align="C")
    pdf.ln(6)
    pdf.set_font(FONT, size=18)
    pdf.cell(0, 10, "HỌC BẠ", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=11)
    pdf.cell(0, 6, _t(f"Năm học {c.year} — Lớp {c.class_name}"), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(FONT, size=10)
    rows = ((f"Họ và tên học sinh: {c.student_name}", f"Giới tính: {c.gender}"),
            (f"Ngày sinh: {c.birth_date}", f"Giáo viên chủ nhiệm: {c.homeroom}"))
    for left, right in rows:
        pdf.cell(95, 6, _t(left))
        pdf.cell(0, 6, _t(right), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _scores(pdf: FPDF, scores: Sequence[SubjectScore]) -> None:
    pdf.set_font(FONT, size=11)
    pdf.cell(0, 7, "1. Kết quả học tập các môn học", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=8.5)
    heading = FontFace(fill_color=(225, 230, 240))
    with pdf.table(col_widths=(8, 30, 13, 13, 13, 62, 41), text_align=("C", "L", "C", "C", "C", "L", "L"),
                   headings_style=heading, line_height=4.6, padding=1) as table:
        table.row(["STT", "Môn học", "HK I", "HK II", "Cả năm", "Nhận xét của giáo viên bộ môn",
                   "Giáo viên bộ môn"])
        for n, s in enumerate(scores, 1):
            table.row([str(n), _t(s.subject), _t(s.hk1), _t(s.hk2), _t(s.whole_year), _t(s.comment), _t(s.teacher)])
    pdf.ln(4)


def _results(pdf: FPDF, c: RecordContent) -> None:
    pdf.set_font(FONT, size=11)
    pdf.cell(0, 7, "2. Kết quả cả năm", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=10)
    for term, level in ((CONDUCT, c.conduct), (ACADEMIC, c.academic)):  # Circular 22/2021's terms and levels
        pdf.cell(0, 6, f"{term}: {result_level(level)}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font(FONT, size=11)
    pdf.cell(0, 7, "3. Nhận xét của giáo viên chủ nhiệm", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=10)
    pdf.multi_cell(0, 5.5, _t(c.homeroom_comment or "—"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(FONT, size=8.5)
    pdf.set_text_color(80)
    pdf.multi_cell(0, 4.5, "Học bạ được ký số: giáo viên bộ môn, giáo viên chủ nhiệm, ban giám hiệu, sau cùng là "
                           "chữ ký phát hành của nhà trường (xem trang chữ ký số).", new_x="LMARGIN", new_y="NEXT")


def _reader(pdf: bytes) -> PdfFileReader:
    """A reader of an unsigned, unencrypted PDF; RecordPdfError otherwise."""
    if b"%PDF-" not in pdf[:1024]:
        raise RecordPdfError("Tệp học bạ không phải là tệp PDF.", code="not_pdf")
    try:
        reader = PdfFileReader(BytesIO(pdf))
        encrypted = reader.encrypted
        signed = not encrypted and bool(reader.embedded_signatures)
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise RecordPdfError(f"Tệp PDF của học bạ bị lỗi cấu trúc, không đọc được ({type(exc).__name__}).",
                             code="not_pdf") from None
    if encrypted:
        raise RecordPdfError("Tệp PDF của học bạ đang được mã hoá (đặt mật khẩu); hãy xuất lại bản không mã hoá.",
                             code="pdf_encrypted")
    if signed:
        raise RecordPdfError("Tệp PDF của học bạ đã có chữ ký số; hãy dùng bản xuất từ phần mềm, chưa ký.",
                             code="pdf_signed")
    return reader


def signature_field_names(pdf: bytes) -> list[str]:
    """The names of the signature fields of a PDF, in document order (signed ones too)."""
    try:
        reader = PdfFileReader(BytesIO(pdf))
        return [name for name, _value, _ref in enumerate_sig_fields(reader)]
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise RecordPdfError(f"Không đọc được các ô chữ ký của tệp PDF ({type(exc).__name__}).",
                             code="not_pdf") from None


def add_signature_fields(pdf: bytes, fields: Sequence[FieldSpec]) -> bytes:
    """Append the signature page(s) with one labelled, locked field per `FieldSpec` (incremental update)."""
    if not fields:
        raise RecordPdfError("Chưa có ô chữ ký nào để tạo cho học bạ.", code="no_fields")
    names = [f.name for f in fields]
    reader = _reader(pdf)
    taken = set(signature_field_names(pdf))
    clash = sorted({n for n in names if names.count(n) > 1 or n in taken})
    if clash:
        raise RecordPdfError(f"Tên ô chữ ký bị trùng: {', '.join(clash)}.", code="duplicate_field")
    ordered = sorted(fields, key=lambda f: f.stage)  # stable: the roster's order inside a stage
    dated = any(f.stage == Stage.ISSUER for f in ordered)  # the issuing signature dates the record
    writer = IncrementalPdfFileWriter.from_reader(reader)
    root = writer.root
    if "/AcroForm" not in root:
        root[generic.NameObject("/AcroForm")] = writer.add_object(generic.DictionaryObject(
            {generic.NameObject("/Fields"): generic.ArrayObject()}))
        writer.update_root()
    font = stamp.StampFontEngine(writer, stamp.embed_stamp_font(writer))
    pages = int(root["/Pages"]["/Count"])
    layout = sigpage.layout(ordered, font, dated=dated)
    total = pages + len(layout)
    sigpage.number_pages(writer, font, pages, total)
    for page_index, page in enumerate(layout, start=pages):
        page_ref = writer.insert_page(sigpage.page_object(writer, font, page, page_label(page_index + 1, total)))
        for spec, box in page.boxes:
            append_signature_field(writer, SigFieldSpec(spec.name, on_page=page_index, box=box,
                                                        field_mdp_spec=_lock(spec, ordered, dated)))
        if page.date_box is not None:
            sigpage.add_date_field(writer, font, page_ref, page.date_box)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _lock(spec: FieldSpec, ordered: Sequence[FieldSpec], dated: bool) -> FieldMDPSpec:
    """What the field's signature locks: everything but the fields that may still be signed after it (and the
    date line, which the issuing signature fills)."""
    open_after = [f.name for f in ordered if f.stage > spec.stage or (f.stage == spec.stage and f.name != spec.name)]
    if not open_after:
        return FieldMDPSpec(FieldMDPAction.ALL)
    return FieldMDPSpec(FieldMDPAction.EXCLUDE, fields=open_after + ([sigpage.DATE_FIELD] if dated else []))
