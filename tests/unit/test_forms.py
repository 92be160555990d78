"""Form extraction as a specification: what edudesk reads from a request mail and what it reports."""

from __future__ import annotations

import csv
import importlib.util
import io
import time
import unicodedata
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from docx import Document
from docx.shared import Pt
from pypdf import PdfReader, PdfWriter

from edudesk.core.config import IntakeSettings
from edudesk.core.forms import extract_request, html_to_text
from edudesk.core.forms.values import parse_date
from edudesk.core.intake.domain import Attachment, IncomingMail, Kind, Population, Severity

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "edudesk" / "templates" / "forms"
FIXTURES = ROOT / "tests" / "fixtures" / "forms"
DOMAINS = ("hust.edu.vn", "sis.hust.edu.vn")
SETTINGS = IntakeSettings()
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

STUDENT_BODY = """Kính gửi Trung tâm Mạng Thông tin,
Em xin đề nghị cấp tài khoản email sinh viên.
Họ và tên: Nguyễn Văn An
Mã số sinh viên: 20201234
Ngày sinh: 05/03/2003
Lớp: Khoa học máy tính 01    Khóa: K65
Đơn vị: Trường Công nghệ Thông tin và Truyền thông
Số điện thoại: 0912 345 678
Email cá nhân: an.nguyen@gmail.com
Em cảm ơn ạ."""


def mail(*attachments: Attachment, subject: str = "Gửi phiếu đăng ký", text: str = "", html: str = "",
         from_addr: str = "an.nguyen@gmail.com") -> IncomingMail:
    return IncomingMail(
        message_id="<t@example>", subject=subject, from_addr=from_addr, text=text, html=html,
        attachments=attachments,
    )


def extract(m: IncomingMail, settings: IntakeSettings = SETTINGS):
    return extract_request(m, settings, DOMAINS)


def codes(result) -> list[str]:
    return [p.code for p in result.problems]


def fill_docx(template: Path, values: dict[str, str]) -> bytes:
    """Fill the value cell of each row whose label starts with a key, like a user in Word."""
    doc = Document(str(template))
    for row in doc.tables[0].rows:
        for label, value in values.items():
            if row.cells[0].text.startswith(label):
                row.cells[1].text = value
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def docx_of(lines: list[str], font: str | None = None, table: list[list[str]] | None = None) -> bytes:
    doc = Document()
    for line in lines:
        run = doc.add_paragraph().add_run(line)
        if font:
            run.font.name = font
    if table:
        t = doc.add_table(rows=0, cols=len(table[0]))
        for row in table:
            for cell, text in zip(t.add_row().cells, row, strict=True):
                cell.text = text
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def xlsx_of(rows: list[list[object]], *, merge: str | None = None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    if merge:
        ws.merge_cells(merge)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# --- the body --------------------------------------------------------------------------------------


def test_body_key_value_lines_extract_one_student() -> None:
    result = extract(mail(text=STUDENT_BODY))
    assert result.kind == Kind.NEW_ACCOUNT
    assert result.population == Population.STUDENT
    assert result.source == "body"
    assert result.problems == ()
    (an,) = result.persons
    assert (an.full_name, an.family_name, an.middle_name, an.given_name) == (
        "Nguyễn Văn An", "Nguyễn", "Văn", "An"
    )
    assert an.student_id == "20201234"
    assert an.date_of_birth == date(2003, 3, 5)
    assert (an.class_name, an.cohort) == ("Khoa học máy tính 01", "K65")
    assert an.unit == "Trường Công nghệ Thông tin và Truyền thông"
    assert an.mobile == "+84912345678"
    assert an.personal_email == "an.nguyen@gmail.com"


def test_english_keys_are_read() -> None:
    text = """Dear IT office, please create a new account for me.
Full name: Tran Thi Binh
Student ID: 20225678
Date of birth: 2004-11-17
Class: ET-02
Mobile: +84 98 765 4321
Personal email: binh@example.com"""
    result = extract(mail(text=text, subject="New account request"))
    assert result.kind == Kind.NEW_ACCOUNT
    (binh,) = result.persons
    assert (binh.given_name, binh.student_id, binh.class_name) == ("Binh", "20225678", "ET-02")
    assert binh.date_of_birth == date(2004, 11, 17)
    assert binh.mobile == "+84987654321"


def test_keys_without_diacritics_or_in_capitals_are_read() -> None:
    text = "HO VA TEN: Le Thi Hoa\nma so sinh vien : 20191111\nSDT: 0987654321\nquen mat khau email"
    result = extract(mail(text=text, subject="hoa"))
    assert result.kind == Kind.PASSWORD_RESET
    (hoa,) = result.persons
    assert (hoa.full_name, hoa.student_id, hoa.mobile) == ("Le Thi Hoa", "20191111", "+84987654321")


def test_nfd_body_is_normalised() -> None:
    nfd = unicodedata.normalize("NFD", STUDENT_BODY)
    result = extract(mail(text=nfd, subject=unicodedata.normalize("NFD", "Đề nghị cấp tài khoản")))
    (an,) = result.persons
    assert an.full_name == "Nguyễn Văn An"
    assert unicodedata.is_normalized("NFC", an.full_name)
    assert unicodedata.is_normalized("NFC", an.unit)
    assert len(an.full_name) == 13
    assert result.kind == Kind.NEW_ACCOUNT


def test_html_only_body_is_read_from_its_text() -> None:
    html = (
        "<html><head><style>p{color:red}</style></head><body><p>Em xin cấp lại mật khẩu.</p>"
        "<p>Họ và tên: <b>Phạm&nbsp;Thu Trang</b><br>MSSV: 20182222<br>Số điện thoại: 0988.111.222</p>"
        "</body></html>"
    )
    result = extract(mail(html=html, subject="Quên mật khẩu"))
    assert result.kind == Kind.PASSWORD_RESET
    (trang,) = result.persons
    assert (trang.full_name, trang.student_id, trang.mobile) == ("Phạm Thu Trang", "20182222", "+84988111222")


def test_html_table_cells_become_tabs() -> None:
    text = html_to_text("<table><tr><td>Stt</td><td>MSSV</td></tr></table>")
    assert text.split("\t")[1:] == ["Stt", "MSSV"]


def test_value_on_the_next_line_is_read() -> None:
    result = extract(mail(text="Họ và tên:\nNguyễn Thị Mai\nMã số sinh viên:\n20201000\nSĐT: 0912345678"))
    (mai,) = result.persons
    assert (mai.full_name, mai.student_id) == ("Nguyễn Thị Mai", "20201000")


def test_several_people_in_the_body_make_a_bulk_request() -> None:
    text = (
        "Phòng CTSV đề nghị cấp tài khoản email cho các sinh viên sau:\n"
        "Họ và tên: Nguyễn Văn An   MSSV: 20201234\n"
        "Họ và tên: Lê Thị Hoa   MSSV: 20201235\n"
    )
    result = extract(mail(text=text, from_addr="ctsv@hust.edu.vn"))
    assert result.kind == Kind.BULK_NEW_ACCOUNTS
    assert [p.student_id for p in result.persons] == ["20201234", "20201235"]
    assert "missing_mobile" not in codes(result)


def test_table_pasted_into_the_body_is_a_list() -> None:
    text = (
        "Đề nghị cấp tài khoản email cho sinh viên theo danh sách:\n"
        "Stt\tMã số SV\tHọ và tên\tLớp\n1\t20201234\tNguyễn Văn An\tYK01\n2\t20201235\tLê Thị Hoa\tYK02\n"
    )
    result = extract(mail(text=text))
    assert result.kind == Kind.BULK_NEW_ACCOUNTS
    assert [(p.full_name, p.class_name) for p in result.persons] == [
        ("Nguyễn Văn An", "YK01"), ("Lê Thị Hoa", "YK02")
    ]


def test_quoted_earlier_mail_is_not_read() -> None:
    text = "Em gửi lại ạ.\n\nVào 10:00 ngày 1/9, Phòng MTT đã viết:\n> Họ và tên: Người Khác\n> MSSV: 1"
    result = extract(mail(text=text))
    assert result.persons == () and result.fields == ()  # the quoted fields are not this mail's


def test_a_question_without_any_form_is_a_question_not_a_broken_form() -> None:
    result = extract(mail(text="Cho em hỏi wifi của trường ạ.", subject="Hỏi wifi"))
    assert result.kind == Kind.QUESTION
    assert result.source == "none"
    assert result.problems == ()  # no "we could not read your form"


def test_a_request_without_its_form_reports_no_form() -> None:
    result = extract(mail(text="Em xin cấp lại mật khẩu email ạ.", subject="Cấp lại mật khẩu"))
    assert result.kind == Kind.PASSWORD_RESET
    (problem,) = result.problems
    assert (problem.field, problem.code) == ("form", "no_form")
    assert problem.message.startswith("Không tìm thấy thông tin đăng ký trong thư")


# --- dates, phones, ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    ["05/03/2003", "5/3/2003", "5-3-2003", "05.03.2003", "2003-03-05", "05/03/03", "5 / 3 / 2003",
     "ngày 05 tháng 03 năm 2003", "05032003", "05/03/2003 00:00:00", datetime(2003, 3, 5), 37685.0],
)
def test_day_first_dates(written: object) -> None:
    assert parse_date(written) == (date(2003, 3, 5), False)


@pytest.mark.parametrize("written", ["31/02/2003", "13/13/2003", "00/01/2003", "không nhớ", "05/03/1850"])
def test_impossible_dates_are_invalid(written: str) -> None:
    assert parse_date(written) == (None, True)


def test_impossible_date_of_birth_is_a_problem_on_the_person() -> None:
    result = extract(mail(text=STUDENT_BODY.replace("05/03/2003", "30/02/2003")))
    (problem,) = result.problems
    assert (problem.field, problem.code, problem.row) == ("date_of_birth", "invalid_date", 0)
    assert "30/02/2003" in problem.message
    assert result.persons[0].date_of_birth is None


def test_missing_mobile_on_an_individual_form_is_an_error() -> None:
    result = extract(mail(text=STUDENT_BODY.replace("Số điện thoại: 0912 345 678\n", "")))
    (problem,) = result.problems
    assert (problem.field, problem.code, problem.severity) == ("mobile", "missing_mobile", Severity.ERROR)
    assert problem.message == "Thiếu số điện thoại di động (bắt buộc trên phiếu đăng ký)."


def test_landline_on_an_individual_form_is_an_invalid_mobile() -> None:
    result = extract(mail(text=STUDENT_BODY.replace("0912 345 678", "024 3868 2222")))
    assert codes(result) == ["invalid_mobile"]
    assert result.persons[0].mobile == "024 3868 2222"  # kept as written so staff can see it


def test_id_that_is_not_an_id_is_reported() -> None:
    result = extract(mail(text=STUDENT_BODY.replace("20201234", "chưa có")))
    assert "invalid_id" in codes(result)
    assert result.persons[0].student_id == ""


# --- kind and population ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    ["Cấp lại mật khẩu email", "cap lai mat khau", "Quên mật khẩu", "Đặt lại mật khẩu tài khoản",
     "Reset password", "Forgot my password", unicodedata.normalize("NFD", "xin cấp lại mật khẩu"),
     "QUÊN MẬT KHẨU EMAIL SINH VIÊN"],
)
def test_password_reset_wording(subject: str) -> None:
    assert extract(mail(text=STUDENT_BODY.replace("cấp tài khoản", "hỗ trợ"), subject=subject)).kind == (
        Kind.PASSWORD_RESET
    )


@pytest.mark.parametrize(
    "subject",
    ["Đề nghị xóa tài khoản email", "De nghi xoa tai khoan", "Xoá các tài khoản sinh viên",
     "Danh sách sinh viên thôi học", "Sinh viên đã ra trường", "Please delete these accounts"],
)
def test_delete_wording(subject: str) -> None:
    result = extract(mail(text="Họ và tên: Nguyễn Văn An\nMSSV: 20201234", subject=subject))
    assert result.kind == Kind.DELETE_ACCOUNTS
    assert "missing_mobile" not in codes(result)


def test_reset_for_an_alumnus_is_not_a_deletion() -> None:
    result = extract(mail(text=STUDENT_BODY, subject="Sinh viên đã ra trường xin cấp lại mật khẩu"))
    assert result.kind == Kind.PASSWORD_RESET


def test_body_fields_without_any_request_wording_are_unknown() -> None:
    result = extract(mail(text="Họ và tên: Nguyễn Văn An\nMSSV: 20201234\nSĐT: 0912345678", subject="Gửi"))
    assert result.kind == Kind.UNKNOWN
    assert len(result.persons) == 1


@pytest.mark.parametrize(
    ("text", "from_addr", "population"),
    [
        ("Họ và tên: Trần Minh\nMã cán bộ: CB1234\nSĐT: 0912345678", "minh@gmail.com", Population.STAFF),
        ("Tôi là giảng viên.\nHọ và tên: Trần Minh\nMã số: 1234", "minh@gmail.com", Population.STAFF),
        ("Họ và tên: Trần Minh\nMã số: 1234", "minh.tran@hust.edu.vn", Population.STAFF),
        ("Họ và tên: Trần Minh\nMã số: 1234", "minh.tran@sis.hust.edu.vn", Population.STUDENT),
        ("Họ và tên: Trần Minh\nMã số: 1234", "minh@gmail.com", Population.STUDENT),
        ("Phòng TCCB gửi danh sách sinh viên.\nHọ và tên: Trần Minh\nMSSV: 1234", "tccb@hust.edu.vn",
         Population.STUDENT),
    ],
)
def test_population_from_ids_wording_and_sender_domain(
    text: str, from_addr: str, population: Population
) -> None:
    result = extract(mail(text="Xin cấp tài khoản.\n" + text, from_addr=from_addr))
    assert result.population == population
    person = result.persons[0]
    assert (person.staff_id if population == Population.STAFF else person.student_id) != ""


# --- docx forms ------------------------------------------------------------------------------------


def test_bm02_docx_filled_form_extracts_student() -> None:
    data = fill_docx(TEMPLATES / "BM02.docx", {
        "Loại yêu cầu": "☒ Cấp mới tài khoản        ☐ Cấp lại mật khẩu",
        "Họ và tên": "Nguyễn Văn An", "Ngày sinh": "05/03/2003", "Mã số sinh viên": "20201234",
        "Lớp": "Khoa học máy tính 01", "Khóa": "K65", "Khoa/Viện": "Trường CNTT&TT",
        "Số điện thoại": "0912.345.678", "Email cá nhân": "An.Nguyen@Gmail.com",
    })
    result = extract(mail(Attachment("BM02_NguyenVanAn.docx", DOCX, data), text="Em gửi phiếu ạ."))
    assert (result.kind, result.population, result.source) == (Kind.NEW_ACCOUNT, Population.STUDENT, "docx")
    assert result.problems == ()
    (an,) = result.persons
    assert (an.full_name, an.student_id, an.class_name, an.cohort) == (
        "Nguyễn Văn An", "20201234", "Khoa học máy tính 01", "K65"
    )
    assert (an.date_of_birth, an.mobile, an.personal_email) == (
        date(2003, 3, 5), "+84912345678", "an.nguyen@gmail.com"
    )
    assert an.unit == "Trường CNTT&TT"


def test_bm01_docx_with_reset_ticked_extracts_staff() -> None:
    data = fill_docx(TEMPLATES / "BM01.docx", {
        "Loại yêu cầu": "☐ Cấp mới tài khoản        ☒ Cấp lại mật khẩu",
        "Họ và tên": "Tôn Thất Minh", "Mã cán bộ": "CB01234", "Đơn vị công tác": "Viện Toán ứng dụng",
        "Số điện thoại": "+84 987 654 321",
    })
    # the subject says "cấp tài khoản": the ticked box on the form wins
    result = extract(mail(Attachment("BM01.docx", DOCX, data), subject="Đơn xin cấp tài khoản"))
    assert (result.kind, result.population) == (Kind.PASSWORD_RESET, Population.STAFF)
    (minh,) = result.persons
    assert (minh.family_name, minh.given_name, minh.staff_id) == ("Tôn Thất", "Minh", "CB01234")
    assert minh.unit == "Viện Toán ứng dụng"


def test_unticked_bm02_is_a_new_account_by_its_title_and_misses_the_mobile() -> None:
    data = fill_docx(TEMPLATES / "BM02.docx", {"Họ và tên": "Lê Văn Tám", "Mã số sinh viên": "20230008"})
    result = extract(mail(Attachment("don.docx", DOCX, data)))
    assert (result.kind, result.population) == (Kind.NEW_ACCOUNT, Population.STUDENT)
    assert codes(result) == ["missing_mobile"]
    assert result.problems[0].row == 0


def test_mobile_written_in_the_body_completes_the_form() -> None:
    data = fill_docx(TEMPLATES / "BM02.docx", {"Họ và tên": "Lê Văn Tám", "Mã số sinh viên": "20230008"})
    result = extract(mail(Attachment("don.docx", DOCX, data), text="SĐT của em: 0912 345 678"))
    assert result.problems == ()
    assert result.persons[0].mobile == "+84912345678"


def test_docx_with_label_colon_paragraphs() -> None:
    data = docx_of([
        "ĐƠN ĐỀ NGHỊ CẤP LẠI MẬT KHẨU",
        "Họ và tên: ……Hoàng Phủ Ngọc Tường……   Ngày sinh: 1.2.1999",
        "Mã số sinh viên: 20170001",
        "Điện thoại di động: 0904 123 456",
    ])
    result = extract(mail(Attachment("don.docx", DOCX, data)))
    assert result.kind == Kind.PASSWORD_RESET
    (tuong,) = result.persons
    assert (tuong.family_name, tuong.middle_name, tuong.given_name) == ("Hoàng Phủ", "Ngọc", "Tường")
    assert tuong.date_of_birth == date(1999, 2, 1)


def test_docx_with_a_list_table_is_a_list() -> None:
    table = [["STT", "Mã số SV", "Họ và tên", "Ghi chú"], ["1", "20201234", "Nguyễn Văn An", ""],
             ["2", "20201235", "Lê Thị Hoa", "thôi học"]]
    data = docx_of(["DANH SÁCH SINH VIÊN ĐỀ NGHỊ XÓA TÀI KHOẢN", "Đơn vị: Phòng Đào tạo"], table=table)
    result = extract(mail(Attachment("ds.docx", DOCX, data)))
    assert result.kind == Kind.DELETE_ACCOUNTS
    assert result.unit == "Phòng Đào tạo"
    assert [p.student_id for p in result.persons] == ["20201234", "20201235"]


def test_tcvn3_docx_is_repaired() -> None:
    data = (FIXTURES / "bm02_tcvn3.docx").read_bytes()
    result = extract(mail(Attachment("bm02_cu.docx", DOCX, data)))
    (an,) = result.persons
    assert an.full_name == "Nguyễn Văn An"
    assert an.class_name == "Khoa học máy tính 01"
    assert an.mobile == "+84912345678"
    assert [(p.code, p.severity) for p in result.problems] == [("legacy_encoding", Severity.INFO)]


def test_vni_font_runs_are_decoded() -> None:
    data = docx_of(["Hoï vaø teân: Ñaëng Thò Thuùy", "Maõ soá sinh vieân: 20190001", "SÑT: 0912345678"],
                   font="VNI-Times")
    (thuy,) = extract(mail(Attachment("don.docx", DOCX, data), subject="cấp tài khoản")).persons
    assert (thuy.full_name, thuy.student_id) == ("Đặng Thị Thúy", "20190001")


def test_tcvn3_text_without_font_hint_is_detected() -> None:
    data = docx_of(["Hä vµ tªn: Lª ThÞ Hoa", "MSSV: 20190002", "SĐT: 0912345678"])
    (hoa,) = extract(mail(Attachment("don.docx", DOCX, data), subject="cấp tài khoản")).persons
    assert hoa.full_name == "Lê Thị Hoa"


def test_wingdings_tick_counts_as_ticked() -> None:
    doc = Document()
    p = doc.add_paragraph("Loại yêu cầu: ")
    tick = p.add_run("þ")
    tick.font.name = "Wingdings"
    p.add_run(" Cấp lại mật khẩu  ")
    box = p.add_run("¨")
    box.font.name, box.font.size = "Wingdings", Pt(12)
    p.add_run(" Cấp mới")
    doc.add_paragraph("Họ và tên: Nguyễn Văn An")
    doc.add_paragraph("MSSV: 20201234")
    doc.add_paragraph("SĐT: 0912345678")
    out = io.BytesIO()
    doc.save(out)
    assert extract(mail(Attachment("don.docx", DOCX, out.getvalue()))).kind == Kind.PASSWORD_RESET


# --- xlsx and csv lists ----------------------------------------------------------------------------


def test_bm_cntt31_filled_list() -> None:
    wb = openpyxl.load_workbook(TEMPLATES / "BM-CNTT31.xlsx")
    ws = wb.active
    ws["A2"] = "ĐƠN VỊ: Phòng Công tác sinh viên"
    rows = [(1, "20201234", "Nguyễn Văn An", "YK01", "K45", ""),
            (2, "20201235", "Lê Thị Hoa", "YK01", "K45", "Lớp trưởng"),
            (3, "20201236", "Tôn Nữ Thị Hà", "YK02", "K45", "")]
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            ws.cell(row=8 + i, column=1 + j, value=value)
    ws.cell(row=14, column=3, value="Người lập biểu")
    out = io.BytesIO()
    wb.save(out)
    result = extract(mail(Attachment("BM-CNTT31.xlsx", XLSX, out.getvalue()), from_addr="ctsv@hust.edu.vn",
                          subject="Gửi danh sách"))
    assert (result.kind, result.population, result.source) == (
        Kind.BULK_NEW_ACCOUNTS, Population.STUDENT, "xlsx"
    )
    assert result.unit == "Phòng Công tác sinh viên"
    assert result.problems == ()  # a unit's list carries no mobiles, and that is fine
    assert [(p.student_id, p.full_name, p.class_name, p.cohort, p.note) for p in result.persons] == [
        ("20201234", "Nguyễn Văn An", "YK01", "K45", ""),
        ("20201235", "Lê Thị Hoa", "YK01", "K45", "Lớp trưởng"),
        ("20201236", "Tôn Nữ Thị Hà", "YK02", "K45", ""),
    ]
    assert result.persons[2].family_name == "Tôn Nữ"


def test_xlsx_with_two_name_columns() -> None:
    data = xlsx_of([
        ["DANH SÁCH ĐỀ NGHỊ CẤP TÀI KHOẢN EMAIL"],
        [],
        ["Stt", "Mã số SV/HV", "Họ đệm", "Tên", "Lớp", "Khóa"],
        [1, "20201234", "Nguyễn Văn", "An", "YK01", "K45"],
        [2, "20201235", "Âu Dương", "Phong", "YK01", "K45"],
    ], merge="A1:F1")
    result = extract(mail(Attachment("ds.xlsx", XLSX, data)))
    assert result.kind == Kind.BULK_NEW_ACCOUNTS
    assert [(p.full_name, p.family_name, p.middle_name, p.given_name) for p in result.persons] == [
        ("Nguyễn Văn An", "Nguyễn", "Văn", "An"),
        ("Âu Dương Phong", "Âu Dương", "", "Phong"),
    ]


def test_xlsx_merged_name_header_with_a_sub_header_row() -> None:
    data = xlsx_of([
        ["STT", "MSSV", "Họ và tên", None, "Ngày sinh"],
        [None, None, "Họ đệm", "Tên", None],
        ["(1)", "(2)", "(3)", "(4)", "(5)"],
        [1, 20181111, "Trần Văn", "Bình", "31/01/2000"],
    ], merge="C1:D1")
    (binh,) = extract(mail(Attachment("ds.xlsx", XLSX, data), subject="Cấp email")).persons
    assert (binh.full_name, binh.given_name, binh.student_id) == ("Trần Văn Bình", "Bình", "20181111")


def test_xlsx_header_found_below_titles_with_extra_columns_empty_rows_floats_and_dates() -> None:
    data = xlsx_of([
        ["TRƯỜNG ĐẠI HỌC Y DƯỢC CẦN THƠ"], ["ĐƠN VỊ: Phòng Đào tạo Sau đại học"], [], [],
        ["DANH SÁCH HỌC VIÊN ĐỀ NGHỊ CẤP EMAIL"], [],
        ["Số TT", "Giới tính", "Mã số HV", "Họ và tên học viên", "Ngày sinh", "Lớp", "Khóa học", "Ghi chú"],
        [1, "Nam", 20201234.0, "Nguyễn Văn An", datetime(2003, 3, 5), "CH01", 65.0, None],
        [None, None, None, None, None, None, None, None],
        [2, "Nữ", 20201235, "Lê Thị Hoa", "17/11/2004", "CH01", "K65", None],
        [None, None, None, "Thủ trưởng đơn vị", None, None, None, None],
    ])
    result = extract(mail(Attachment("hv.xlsx", XLSX, data)))
    assert result.unit == "Phòng Đào tạo Sau đại học"
    assert [(p.student_id, p.date_of_birth, p.cohort) for p in result.persons] == [
        ("20201234", date(2003, 3, 5), "65"),
        ("20201235", date(2004, 11, 17), "K65"),
    ]


def test_too_many_rows_are_truncated_with_a_problem() -> None:
    rows: list[list[object]] = [["Stt", "MSSV", "Họ và tên"]]
    rows += [[i, f"2020{i:04d}", f"Sinh Viên Số {chr(65 + i % 26)}"] for i in range(1, 31)]
    result = extract(mail(Attachment("ds.xlsx", XLSX, xlsx_of(rows)), subject="Cấp email"),
                     IntakeSettings(max_rows=10))
    assert len(result.persons) == 10
    assert codes(result) == ["too_many_rows"]


def test_duplicate_ids_in_a_list_are_reported() -> None:
    data = xlsx_of([
        ["Stt", "MSSV", "Họ và tên"], [1, "20201234", "Nguyễn Văn An"], [2, "20201234", "Nguyễn An"]
    ])
    result = extract(mail(Attachment("ds.xlsx", XLSX, data), subject="Cấp email"))
    (problem,) = result.problems
    assert (problem.code, problem.row, problem.severity) == ("duplicate_row", 1, Severity.WARNING)


def _cp1258(text: str) -> bytes:
    """What Excel's "CSV" writes on a Vietnamese Windows: base letters + combining tone marks."""
    out = bytearray()
    for ch in text:
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", ch)
            base = unicodedata.normalize("NFC", decomposed[:-1])
            out += base.encode("cp1258") + decomposed[-1].encode("cp1258")
    return bytes(out)


def test_csv_list_in_windows_1258_with_semicolons() -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerows([["Stt", "Mã số SV/HV", "Họ và tên", "Lớp", "Khóa", "Ghi chú"],
                      [1, "20201234", "Nguyễn Văn An", "YK01", "K45", ""],
                      [2, "20201235", "Trương Thị Hường", "YK01", "K45", ""]])
    result = extract(mail(Attachment("ds.csv", "text/csv", _cp1258(buf.getvalue())), subject="Cấp email"))
    assert result.source == "csv"
    assert [p.full_name for p in result.persons] == ["Nguyễn Văn An", "Trương Thị Hường"]
    assert unicodedata.is_normalized("NFC", result.persons[1].full_name)


# --- pdf -------------------------------------------------------------------------------------------


def test_pdf_acroform_fields_are_read() -> None:
    data = (FIXTURES / "bm02_acroform.pdf").read_bytes()
    result = extract(mail(Attachment("don.pdf", "application/pdf", data)))
    assert (result.kind, result.source, result.problems) == (Kind.PASSWORD_RESET, "pdf", ())
    (binh,) = result.persons
    assert (binh.full_name, binh.student_id, binh.cohort, binh.class_name) == (
        "Trần Thị Bình", "20225678", "K67", "Điện tử 02"
    )
    assert (binh.date_of_birth, binh.mobile) == (date(2004, 11, 17), "+84987654321")


def test_pdf_form_filled_by_the_user_is_read() -> None:
    writer = PdfWriter(clone_from=PdfReader(FIXTURES / "bm02_acroform.pdf"))
    writer.update_page_form_field_values(
        writer.pages[0],
        {"ho_va_ten": "Vũ Đức Long", "so_dien_thoai_di_dong": "0904000111"},
        auto_regenerate=False,
    )
    out = io.BytesIO()
    writer.write(out)
    (long_,) = extract(mail(Attachment("don.pdf", "application/pdf", out.getvalue()))).persons
    assert (long_.full_name, long_.mobile) == ("Vũ Đức Long", "+84904000111")


# --- hostile and broken attachments ----------------------------------------------------------------


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def test_zip_bomb_renamed_docx_is_refused_without_opening(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = _zip({"word/document.xml": b"\0" * (60 * 1024 * 1024)})  # 60 MB -> ~60 kB
    assert len(bomb) < 100_000

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a member of a hostile zip was opened")

    monkeypatch.setattr(zipfile.ZipFile, "open", never)
    started = time.process_time()
    result = extract(mail(Attachment("Don_xin_cap_email.docx", DOCX, bomb), text=STUDENT_BODY))
    assert time.process_time() - started < 1.0
    hostile = [p for p in result.problems if p.code == "hostile_attachment"]
    assert [(p.field, p.row) for p in hostile] == [("attachment", None)]
    assert "Don_xin_cap_email.docx" in hostile[0].message
    assert result.source == "body"  # the body is still read


def test_high_compression_ratio_is_hostile_under_the_size_limit() -> None:
    bomb = _zip({"xl/workbook.xml": b"a" * (5 * 1024 * 1024)})
    result = extract(mail(Attachment("ds.xlsx", XLSX, bomb)), IntakeSettings(max_compression_ratio=50))
    assert "hostile_attachment" in codes(result)


def test_zip_with_too_many_entries_is_hostile() -> None:
    many = _zip({f"word/part{i}.xml": b"" for i in range(1500)} | {"word/document.xml": b"<x/>"})
    assert "hostile_attachment" in codes(extract(mail(Attachment("a.docx", DOCX, many))))


def test_attachment_larger_than_the_limit_is_not_read() -> None:
    result = extract(mail(Attachment("big.pdf", "application/pdf", b"%PDF-1.4" + b"0" * 2000)),
                     IntakeSettings(max_attachment_bytes=1000))
    assert codes(result)[0] == "attachment_too_large"


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("don.docx", b"this is not a zip"),
        ("don.docx", _zip({"hello.txt": b"hi"})),
        ("don.docx", _zip({"word/document.xml": b"<w:document><unclosed"})),
        ("ds.xlsx", _zip({"xl/workbook.xml": b"garbage"})),
        ("don.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ntrailer garbage"),
        ("don.docx", b"PK\x03\x04" + b"\xff" * 200),
    ],
)
def test_broken_files_are_unreadable_and_never_raise(name: str, payload: bytes) -> None:
    result = extract(mail(Attachment(name, "application/octet-stream", payload), text=STUDENT_BODY))
    assert "unreadable_attachment" in codes(result)
    assert len(result.persons) == 1  # the body still counts


def test_old_word_file_is_unsupported() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 500
    result = extract(mail(Attachment("don.doc", "application/msword", ole)))
    assert codes(result)[0] == "unsupported_attachment"


def test_pictures_and_other_files_are_ignored() -> None:
    result = extract(mail(Attachment("anh.jpg", "image/jpeg", b"\xff\xd8\xff"), text=STUDENT_BODY))
    assert result.problems == ()


def test_xlsx_renamed_docx_is_read_by_its_content() -> None:
    data = xlsx_of([["Stt", "MSSV", "Họ và tên"], [1, "20201234", "Nguyễn Văn An"]])
    result = extract(mail(Attachment("danh_sach.docx", DOCX, data), subject="Cấp email"))
    assert result.source == "xlsx"


# --- templates and speed ---------------------------------------------------------------------------


def test_committed_templates_match_the_generator() -> None:
    spec = importlib.util.spec_from_file_location("make_forms", ROOT / "scripts" / "make_forms.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.make_list_xlsx() == (TEMPLATES / "BM-CNTT31.xlsx").read_bytes()
    title = "ĐƠN XIN CẤP TÀI KHOẢN THƯ ĐIỆN TỬ CHO SINH VIÊN"
    generated = module.make_form_docx("BM02", title, module.STUDENT_ROWS)
    assert generated == (TEMPLATES / "BM02.docx").read_bytes()


def test_extracting_a_docx_mail_is_fast() -> None:
    data = fill_docx(TEMPLATES / "BM02.docx", {"Họ và tên": "Nguyễn Văn An", "Mã số sinh viên": "20201234",
                                               "Số điện thoại": "0912345678"})
    m = mail(Attachment("BM02.docx", DOCX, data), text=STUDENT_BODY)
    started = time.process_time()
    for _ in range(50):
        extract(m)
    assert (time.process_time() - started) / 50 < 0.02  # the benchmark needs >100 mails/s on 2 cores


def test_forwarded_request_is_read() -> None:
    text = (
        "Văn phòng Viện chuyển tiếp đơn của sinh viên.\n\n"
        "---------- Forwarded message ---------\nFrom: Nguyễn Văn An <an.nguyen@gmail.com>\n"
        "Subject: Đề nghị cấp lại mật khẩu\n\n" + STUDENT_BODY
    )
    result = extract(mail(text=text, subject="Fwd: Đề nghị cấp lại mật khẩu", from_addr="vp@hust.edu.vn"))
    assert result.kind == Kind.PASSWORD_RESET
    assert [p.student_id for p in result.persons] == ["20201234"]


@pytest.mark.parametrize(
    "text",
    [
        ":" * 200_000, "Họ và tên:" * 20_000, "a " * 100_000 + ":", "\t|" * 50_000,
        "Stt\tMSSV\tHọ và tên\n" * 20_000,
    ],
)
def test_pathological_bodies_finish_quickly(text: str) -> None:
    # CPU time of this process, not the wall clock: a loaded machine must not fail it, a quadratic parser must.
    started = time.process_time()
    extract(mail(text=text))
    assert time.process_time() - started < 2.0


def test_damaged_files_never_reach_the_last_resort_handler(caplog: pytest.LogCaptureFixture) -> None:
    import random

    seeds = {
        "a.docx": (TEMPLATES / "BM02.docx").read_bytes(),
        "a.xlsx": (TEMPLATES / "BM-CNTT31.xlsx").read_bytes(),
        "a.pdf": (FIXTURES / "bm02_acroform.pdf").read_bytes(),
        "b.docx": (FIXTURES / "bm02_tcvn3.docx").read_bytes(),
    }
    rnd = random.Random(20260101)
    for _ in range(150):
        name, data = rnd.choice(sorted(seeds.items()))
        damaged = bytearray(data)
        for _ in range(rnd.randint(1, 30)):
            damaged[rnd.randrange(len(damaged))] = rnd.randrange(256)
        if rnd.random() < 0.2:
            damaged = damaged[: rnd.randrange(len(damaged))]
        result = extract(mail(Attachment(name, "", bytes(damaged))))
        assert result.persons or result.problems
    assert not [r for r in caplog.records if r.levelname == "ERROR" and "extraction failed" in r.getMessage()]
