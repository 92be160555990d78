"""Record PDFs: the exported Học bạ page (Vietnamese text a reader can extract), the signature page with every
field made up front and locked, and a record signed in stage order that pyHanko validates — while a change
to the page after a signature, or a signature into a field an earlier signature locked, is detected."""

from __future__ import annotations

import unicodedata
from io import BytesIO

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfReader, PdfWriter

from edudesk.core.ports import SignItem
from edudesk.core.signing.pdfs import (
    RecordContent,
    RecordPdfError,
    SubjectScore,
    add_signature_fields,
    record_pdf,
    signature_field_names,
)
from edudesk.core.signing.pkcs12 import Pkcs12Error, Pkcs12Signer
from edudesk.core.signing.pki import Credential, DemoPki
from edudesk.core.signing.spec import FieldSpec, Stage, field_name

SUBJECTS = (("Toán", "Nguyễn Thị Bình"), ("Ngữ văn", "Trần Văn Đức"), ("Giáo dục kinh tế và pháp luật", "Lê Thị Hoà"))
FIELDS = [FieldSpec(field_name(Stage.SUBJECT, f"gv{n}"), Stage.SUBJECT, f"GVBM {subject} — {teacher}")
          for n, (subject, teacher) in enumerate(SUBJECTS)] + [
    FieldSpec("gvcn", Stage.HOMEROOM, "GVCN — Phạm Quốc Việt"),
    FieldSpec("bgh_1", Stage.LEADERSHIP, "Hiệu trưởng — Đỗ Thị Ngọc Ánh"),
    FieldSpec("phat_hanh", Stage.ISSUER, "Ký phát hành — Trường THPT Lê Quý Đôn")]
PASS = b"mat-khau-hoc-ba"


def content(name: str = "Nguyễn Thị Ánh Dương") -> RecordContent:
    """A yearly record of class 10A1 with three subjects."""
    scores = tuple(SubjectScore(subject, teacher, "8,5", "9,0", "8,8", "Chăm chỉ, tiến bộ rõ rệt.")
                   for subject, teacher in SUBJECTS)
    return RecordContent("Trường THPT Lê Quý Đôn", "2025–2026", "10A1", "HS0001", name, "05/03/2010", "Nữ",
                         "Phạm Quốc Việt", scores, "Tốt", "Giỏi", "Em ngoan, lễ phép, tích cực trong các phong trào.")


def text_of(pdf: bytes, page: int) -> str:
    """The text pypdf extracts from one page, NFC."""
    return unicodedata.normalize("NFC", PdfReader(BytesIO(pdf)).pages[page].extract_text())


@pytest.fixture(scope="module")
def pki() -> DemoPki:
    """A demo CA for the module."""
    return DemoPki.create()


@pytest.fixture(scope="module")
def fielded() -> bytes:
    """The record with its signature page."""
    return add_signature_fields(record_pdf(content()), FIELDS)


async def statuses(pdf: bytes, pki: DemoPki) -> list[object]:
    """pyHanko's status of every signature, trusting the demo root only."""
    roots = [asn1_x509.Certificate.load(pki.root_der)]
    return [await async_validate_pdf_signature(sig, ValidationContext(trust_roots=roots, allow_fetching=False))
            for sig in PdfFileReader(BytesIO(pdf)).embedded_signatures]


async def sign(pdf: bytes, spec: FieldSpec, cred: Credential, *, certify: bool = False) -> bytes:
    """One signature into `spec`'s field with the credential's PKCS#12 (in process)."""
    signer = Pkcs12Signer(cred.pkcs12(PASS), PASS)
    outcome = await signer.sign([SignItem(key=f"step:{spec.name}", pdf=pdf, field=spec.name, certify=certify,
                                          reason="Ký học bạ", signer_name=cred.name)])
    return outcome.signed[0]


def test_record_text_is_extractable_with_full_diacritics() -> None:
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Ánh Dương")  # as some exports write it
    text = text_of(record_pdf(content(decomposed)), 0)
    for phrase in ("HỌC BẠ", "Nguyễn Thị Ánh Dương", "Giáo dục kinh tế và pháp luật", "Trần Văn Đức",
                   "Kết quả rèn luyện: Tốt", "Nhận xét của giáo viên chủ nhiệm", "Năm học 2025–2026"):
        assert phrase in text


def test_the_same_content_gives_the_same_bytes() -> None:
    assert record_pdf(content()) == record_pdf(content())
    assert record_pdf(content()) != record_pdf(content("Trần Minh Khôi"))


def test_a_record_without_subjects_is_refused() -> None:
    with pytest.raises(RecordPdfError):
        record_pdf(RecordContent("Trường", "2025–2026", "10A1", "HS1", "An", "", "", "", (), "", "", ""))


def test_fields_are_made_with_their_names_on_a_labelled_signature_page(fielded: bytes) -> None:
    assert signature_field_names(fielded) == [f.name for f in FIELDS]
    assert len(PdfReader(BytesIO(fielded)).pages) == 2
    page = " ".join(text_of(fielded, 1).split())  # labels wrap over two lines
    for spec in FIELDS:
        assert spec.label in page
    assert "Ban giám hiệu" in page and "Ký phát hành" in page
    assert signature_field_names(record_pdf(content())) == []


def test_fields_are_listed_in_stage_order_whatever_the_input_order() -> None:
    pdf = add_signature_fields(record_pdf(content()), list(reversed(FIELDS)))
    names = signature_field_names(pdf)
    assert names[-2:] == ["bgh_1", "phat_hanh"] and names[0].startswith("gvbm_")


def test_the_stamp_font_is_embedded_once(fielded: bytes) -> None:
    assert fielded.count(b"/FontFile2") == 2  # the record's own DejaVu subset and the stamp's


def test_each_field_locks_all_but_the_fields_still_to_sign(fielded: bytes) -> None:
    reader = PdfFileReader(BytesIO(fielded))
    fields = [ref.get_object() for ref in reader.root["/AcroForm"]["/Fields"]]
    locks = {str(f["/T"]): f["/Lock"] for f in fields if f["/FT"] == "/Sig"}
    first = locks["gvbm_gv0"]
    assert first["/Action"] == "/Exclude"
    assert sorted(map(str, first["/Fields"])) == ["bgh_1", "gvbm_gv1", "gvbm_gv2", "gvcn", "ngay_phat_hanh",
                                                  "phat_hanh"]  # the date line: filled when the record is issued
    assert sorted(map(str, locks["gvcn"]["/Fields"])) == ["bgh_1", "ngay_phat_hanh", "phat_hanh"]
    assert locks["phat_hanh"]["/Action"] == "/All"  # the last signature locks everything


async def test_a_signed_pdf_is_refused(fielded: bytes, pki: DemoPki) -> None:
    signed = await sign(fielded, FIELDS[0], pki.issue("Nguyễn Thị Bình"), certify=True)
    with pytest.raises(RecordPdfError) as caught:
        add_signature_fields(signed, [FieldSpec("them", Stage.ISSUER, "Thêm")])
    assert caught.value.code == "pdf_signed"


def test_an_encrypted_pdf_and_a_non_pdf_are_refused() -> None:
    writer = PdfWriter(clone_from=BytesIO(record_pdf(content())))
    writer.encrypt("mat-khau")
    encrypted = BytesIO()
    writer.write(encrypted)
    with pytest.raises(RecordPdfError) as caught:
        add_signature_fields(encrypted.getvalue(), FIELDS)
    assert caught.value.code == "pdf_encrypted"
    with pytest.raises(RecordPdfError) as caught:
        add_signature_fields(b"PK\x03\x04 not a pdf", FIELDS)
    assert caught.value.code == "not_pdf"
    with pytest.raises(RecordPdfError):
        add_signature_fields(b"%PDF-1.7\n garbage", FIELDS)


def test_duplicate_field_names_are_refused(fielded: bytes) -> None:
    with pytest.raises(RecordPdfError) as caught:
        add_signature_fields(record_pdf(content()), [*FIELDS, FieldSpec("gvcn", Stage.HOMEROOM, "GVCN 2")])
    assert caught.value.code == "duplicate_field" and "gvcn" in caught.value.message
    with pytest.raises(RecordPdfError):
        add_signature_fields(fielded, [FieldSpec("gvcn", Stage.HOMEROOM, "GVCN")])


async def signed_in_order(fielded: bytes, pki: DemoPki, upto: int = len(FIELDS)) -> bytes:
    """The record signed field after field (the first certifies), the last by the school."""
    pdf = fielded
    for n, spec in enumerate(FIELDS[:upto]):
        cred = pki.issue_organisation() if spec.stage == Stage.ISSUER else pki.issue(spec.label.split("— ")[-1])
        pdf = await sign(pdf, spec, cred, certify=n == 0)
    return pdf


async def test_a_record_signed_in_stage_order_validates(fielded: bytes, pki: DemoPki) -> None:
    pdf = await signed_in_order(fielded, pki)
    found = await statuses(pdf, pki)
    assert [s.signing_cert.subject.native["common_name"] for s in found][-1] == pki.school
    for status in found:
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.docmdp_ok
        assert status.modification_level <= ModificationLevel.FORM_FILLING
    first = PdfFileReader(BytesIO(pdf)).embedded_signatures[0]
    assert first.docmdp_level == MDPPerm.FILL_FORMS and first.field_name == "gvbm_gv0"


async def test_a_change_to_the_page_after_a_signature_is_detected(fielded: bytes, pki: DemoPki) -> None:
    pdf = await signed_in_order(fielded, pki, upto=2)
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    patch = generic.StreamObject(stream_data=b"q 1 0 0 RG 40 700 200 40 re f Q")  # a box over the grades
    writer.add_stream_to_page(0, writer.add_object(patch))
    out = BytesIO()
    writer.write(out)
    for status in await statuses(out.getvalue(), pki):
        assert status.intact and status.valid  # the signed bytes are untouched ...
        assert not status.docmdp_ok or status.modification_level > ModificationLevel.FORM_FILLING  # ... but


async def test_signing_a_field_locked_by_a_later_stage_is_detected(fielded: bytes, pki: DemoPki) -> None:
    pdf = await sign(fielded, FIELDS[0], pki.issue("Nguyễn Thị Bình"), certify=True)
    pdf = await sign(pdf, FIELDS[3], pki.issue("Phạm Quốc Việt"))  # homeroom before two subject teachers
    pdf = await sign(pdf, FIELDS[1], pki.issue("Trần Văn Đức"))
    first, homeroom, _late = await statuses(pdf, pki)
    assert status_ok(first)  # the certification left the subject fields open
    assert not status_ok(homeroom)  # the homeroom signature locked them


def status_ok(status: object) -> bool:
    """Whether a signature's later changes are all allowed."""
    return bool(status.docmdp_ok and status.modification_level <= ModificationLevel.FORM_FILLING)  # type: ignore


async def test_signing_an_already_signed_field_fails(fielded: bytes, pki: DemoPki) -> None:
    pdf = await sign(fielded, FIELDS[0], pki.issue("Nguyễn Thị Bình"), certify=True)
    with pytest.raises(Pkcs12Error) as caught:
        await sign(pdf, FIELDS[0], pki.issue("Kẻ Giả Mạo"))
    assert caught.value.code == "field_signed" and "gvbm_gv0" in caught.value.message
