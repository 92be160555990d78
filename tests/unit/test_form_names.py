"""Whom a form is for follows the institution's own form names ([institution] staff_form, student_form,
list_form), not one university's numbering: a school whose staff form is "QT-CB01" is read by that name."""

from __future__ import annotations

import io
from email.message import EmailMessage

import openpyxl
import pytest
from docx import Document

from edudesk.core.config import Settings, load_settings
from edudesk.core.forms import FormNames, extract_request
from edudesk.core.intake.domain import Attachment, IncomingMail, Population
from edudesk.mailer.analyse import analyse_raw

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
OWN_NAMES = {"staff_form": "QT-CB01", "student_form": "QT-SV02", "list_form": "DS-SV05"}
DOMAINS = ("truong.edu.vn", "sv.truong.edu.vn")


def school(**institution: str) -> Settings:
    """A school with its own domains and, when given, its own form names."""
    return load_settings(None, overrides={"institution": {"domains": list(DOMAINS), **institution}}, environ={})


def form_docx(heading: str) -> bytes:
    """A one-person form that says nothing of staff or students except through the form's name."""
    doc = Document()
    doc.add_paragraph(heading)
    doc.add_paragraph("ĐƠN ĐỀ NGHỊ CẤP TÀI KHOẢN")
    table = doc.add_table(rows=0, cols=2)
    for label, value in (("Họ và tên", "Trần Minh"), ("Mã số", "1234"), ("Số điện thoại", "0912 345 678")):
        cells = table.add_row().cells
        cells[0].text, cells[1].text = label, value
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def list_xlsx(heading: str) -> bytes:
    """A unit's list whose columns say nothing of staff or students; the heading names the form."""
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in ([heading], ["DANH SÁCH ĐỀ NGHỊ CẤP TÀI KHOẢN"], [], ["Stt", "Họ và tên", "Mã số"],
                [1, "Trần Minh", "1234"], [2, "Lê Hoa", "1235"]):
        ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def population(settings: Settings, attachment: Attachment, sender: str = "tran.minh@gmail.com") -> Population:
    """The population extract_request finds with the school's form names, as the intake passes them."""
    mail = IncomingMail(message_id="<f@x>", subject="Gửi đơn", from_addr=sender, text="Kính gửi Phòng CNTT.",
                        attachments=(attachment,))
    found = extract_request(mail, settings.intake, settings.institution.domains,
                            form_names=FormNames.of(settings.institution))
    assert found.persons, found.problems
    return found.population


def test_a_form_named_by_the_schools_staff_form_is_a_staff_request() -> None:
    form = Attachment("don.docx", DOCX, form_docx("Mẫu QT-CB01"))
    assert population(school(**OWN_NAMES), form) is Population.STAFF
    # The same file at a school whose staff form is BM01 names none of its forms: a personal sender's
    # request without staff or student words stays a student's.
    assert population(school(), form) is Population.STUDENT


def test_bm01_is_not_a_staff_form_where_the_school_names_its_forms_otherwise() -> None:
    form = Attachment("don.docx", DOCX, form_docx("Mẫu BM01"))
    assert population(school(), form) is Population.STAFF  # the built-in names: BM01 is the staff form
    assert population(school(**OWN_NAMES), form) is Population.STUDENT


def test_the_schools_list_form_makes_a_list_from_a_staff_address_a_students_list() -> None:
    sheet = Attachment("ds.xlsx", XLSX, list_xlsx("Mẫu DS-SV05"))
    unit = "phongdaotao@truong.edu.vn"  # a staff domain: without the form's name the list is staff's
    assert population(school(**OWN_NAMES), sheet, unit) is Population.STUDENT
    assert population(school(), sheet, unit) is Population.STAFF


@pytest.mark.parametrize(("heading", "expected"), [
    ("Mẫu BM01", Population.STAFF),
    ("Mẫu BM 1", Population.STAFF),
    ("mẫu bm-01", Population.STAFF),
    ("MTT.QT06.BM02", Population.STUDENT),
    ("Mẫu BM-CNTT 31", Population.STUDENT),
    ("bm_cntt31", Population.STUDENT),
    ("Mẫu BM02 (thay mẫu BM01 cũ)", Population.STUDENT),  # the name written first counts
    ("Mẫu BM012", None),
    ("Mẫu ABM01", None),
    ("Phiếu đăng ký", None),
])
def test_form_names_are_found_as_people_write_them(heading: str, expected: Population | None) -> None:
    names = FormNames.of(Settings().institution)
    assert names.population_named(heading) is expected


def test_an_empty_form_name_names_nothing() -> None:
    assert FormNames(("",), ("QT-SV02",)).population_named("Đơn đề nghị cấp tài khoản") is None
    assert FormNames(("",), ("QT-SV02",)).population_named("Mẫu QT SV 02") is Population.STUDENT


def test_the_intake_reads_the_form_names_from_the_settings() -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "tran.minh@gmail.com", "cntt@truong.edu.vn", "Gửi đơn"
    message["Message-ID"] = "<names@gmail.com>"
    message.set_content("Kính gửi Phòng CNTT, em gửi đơn.")
    message.add_attachment(form_docx("Mẫu QT-CB01"), maintype="application",
                           subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                           filename="don.docx")
    raw = message.as_bytes()
    own = analyse_raw(raw, school(**OWN_NAMES)).extracted
    builtin = analyse_raw(raw, school()).extracted
    assert own is not None and builtin is not None
    assert (own.population, builtin.population) == (Population.STAFF, Population.STUDENT)
